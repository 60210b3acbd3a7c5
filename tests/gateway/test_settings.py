"""The gateway settings: the ingest token Kong will carry must be one we accept for writes,
and switching the window on needs a URL Kong's proxies can reach (default ``public_url``)."""

from __future__ import annotations

import pytest

from sidecar.gateway.window import IngestConfig
from sidecar.settings import SettingsError, load_settings

KONG = "http://kong:8001"
TOKENS = "spinnaker=spinnaker-token-0123456789,viewer:read=viewer-token-0123456789abc"
INGEST = "kong:write@orders*=kong-ingest-token-0123456789"


def env(**values: str) -> dict[str, str]:
    base = {"KONG_CANARY_KONG_ADMIN_URL": KONG, "KONG_CANARY_TOKENS": f"{TOKENS},{INGEST}"}
    return {**base, **{f"KONG_CANARY_{k.upper()}": v for k, v in values.items()}}


def problems(**values: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=env(**values))
    return caught.value.problems


def test_on_from_the_environment_with_the_public_url_as_default() -> None:
    settings = load_settings(
        environ=env(
            gateway_metrics="true",
            gateway_ingest_token="kong-ingest-token-0123456789",
            public_url="https://canary.example.com/",
        )
    )
    assert settings.gateway_metrics is True
    assert "kong-ingest-token" not in repr(settings)
    ingest = IngestConfig.from_settings(settings)
    assert ingest is not None
    assert ingest.endpoint == "https://canary.example.com/v1/kong-log"
    assert ingest.token.name == "kong" and ingest.token.upstreams == ("orders*",)


def test_an_explicit_ingest_url_wins_and_off_is_the_default() -> None:
    settings = load_settings(
        environ=env(
            gateway_ingest_url="http://kong-canary.canary.svc:8080",
            gateway_ingest_token="kong-ingest-token-0123456789",
            public_url="https://canary.example.com",
        )
    )
    assert settings.gateway_metrics is False
    ingest = IngestConfig.from_settings(settings)
    assert ingest is not None and ingest.endpoint.startswith("http://kong-canary.canary.svc")
    assert IngestConfig.from_settings(load_settings(environ=env())) is None


def test_the_ingest_token_must_be_a_configured_write_token() -> None:
    (problem,) = problems(gateway_ingest_token="not-a-configured-token-123")
    assert problem.startswith("gateway_ingest_token: must be one of the configured API tokens")
    assert "not-a-configured" not in problem  # never echoed
    (problem,) = problems(gateway_ingest_token="viewer-token-0123456789abc")
    assert "needs role write" in problem


def test_switching_it_on_needs_a_token_and_a_url() -> None:
    found = problems(gateway_metrics="yes")
    assert any(p.startswith("gateway_ingest_token: required") for p in found)
    assert any(p.startswith("gateway_ingest_url: required") for p in found)
    (problem,) = problems(
        gateway_ingest_url="kong-canary:8080", gateway_ingest_token="kong-ingest-token-0123456789"
    )
    assert problem.startswith("gateway_ingest_url:") and "absolute http(s) URL" in problem
    (problem,) = problems(gateway_metrics="maybe")
    assert problem == "gateway_metrics: expected true or false"


def test_body_caps_come_from_the_environment_and_are_bounded() -> None:
    settings = load_settings(
        environ=env(max_body_bytes="1048576", kong_log_max_body_bytes="67108864")
    )
    assert (settings.max_body_bytes, settings.kong_log_max_body_bytes) == (1048576, 67108864)
    assert problems(max_body_bytes="1000", kong_log_max_body_bytes="2147483648") == [
        "max_body_bytes: must be between 65536 and 1073741824 bytes",
        "kong_log_max_body_bytes: must be between 65536 and 1073741824 bytes",
    ]


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("gateway_max_routes", "0", "gateway_max_routes: must be between 1 and 1000"),
        ("gateway_max_routes", "1001", "gateway_max_routes: must be between 1 and 1000"),
        ("gateway_live_wait", "-1", "gateway_live_wait: must be between 0 and 120 seconds"),
        ("gateway_live_wait", "121", "gateway_live_wait: must be between 0 and 120 seconds"),
    ],
)
def test_route_cap_and_live_wait_are_bounded(name: str, value: str, rule: str) -> None:
    assert rule in problems(**{name: value})


def test_route_cap_and_live_wait_defaults_and_environment() -> None:
    default = load_settings(environ=env())
    assert (default.gateway_max_routes, default.gateway_live_wait) == (50, 20.0)
    chosen = load_settings(environ=env(gateway_max_routes="7", gateway_live_wait="3.5"))
    assert (chosen.gateway_max_routes, chosen.gateway_live_wait) == (7, 3.5)
