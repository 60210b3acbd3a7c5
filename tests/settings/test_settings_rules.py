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


SHARED = "shared-token-0123456789"


@pytest.mark.parametrize(
    "environ",
    [
        {"KONG_CANARY_TOKENS": f"spinnaker={SHARED},oncall:admin={SHARED}"},
        {"KONG_CANARY_TOKENS": f"a:read={SHARED},b:read={SHARED}"},
    ],
)
def test_one_token_value_under_two_names_is_refused(environ, tmp_path):
    """Issue 13 item 13: the caller would be whichever name matched last (auth compares every
    token), so audit lines, roles and upstream scopes would belong to the wrong name."""
    found = problems({**KONG, **environ})
    assert any(p.startswith("tokens:") and "same token value" in p for p in found), found
    assert not any("shared-token" in p for p in found), "the token itself is never echoed"


def test_one_token_value_in_tokens_and_tokens_file_is_refused(tmp_path):
    file = tmp_path / "tokens"
    file.write_text("oncall:admin=shared-token-0123456789\n")
    found = problems(
        {
            **KONG,
            "KONG_CANARY_TOKENS": "spinnaker=shared-token-0123456789",
            "KONG_CANARY_TOKENS_FILE": str(file),
        }
    )
    assert any("'spinnaker'" in p and "'oncall'" in p for p in found), found
