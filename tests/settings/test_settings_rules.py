"""Start-up rules on settings that protect what the sidecar hands out (issue 13 items 12, 13)."""

from __future__ import annotations

import pytest

from sidecar.settings import SettingsError, load_settings

KONG = {"KONG_CANARY_KONG_ADMIN_URL": "http://kong:8001"}
TOKENS = {"KONG_CANARY_TOKENS": "spinnaker=spinnaker-token-0123456789"}


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    return caught.value.problems


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "[::]:8080"])
def test_a_wildcard_bind_with_a_real_kong_needs_public_url(bind):
    """Links handed to Orca never come from the request's Host; without public_url they name
    the listening socket, which on a wildcard address nobody else can call."""
    found = problems({**KONG, **TOKENS, "KONG_CANARY_BIND": bind})
    assert [p for p in found if p.startswith("public_url:")], found
    settings = load_settings(
        environ={
            **KONG,
            **TOKENS,
            "KONG_CANARY_BIND": bind,
            "KONG_CANARY_PUBLIC_URL": "https://kong-canary.example.com",
        }
    )
    assert settings.public_url == "https://kong-canary.example.com"


def test_a_specific_bind_or_the_embedded_demo_needs_no_public_url():
    assert load_settings(environ={**KONG, **TOKENS, "KONG_CANARY_BIND": "10.1.2.3:8080"})
    assert load_settings(environ={"KONG_CANARY_BIND": "0.0.0.0:8080"}).embedded_kong
