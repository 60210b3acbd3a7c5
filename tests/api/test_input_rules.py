"""Issue 13 item 13: the input rules hold to the last character.

Python's ``$`` also matches before a trailing newline, so ``^name$`` checked with
``re.match`` (or as a JSON Schema pattern, which jsonschema searches with ``re.search``)
let ``orders\\n`` and ``X-Canary\\n`` through to Kong.
"""

from __future__ import annotations

import pytest

from sidecar.api.auth import check_upstream_name
from sidecar.core.names import UPSTREAM_NAME_PATTERN
from sidecar.errors import ApiError


@pytest.mark.parametrize("name", ["orders\n", "orders\r\n", "\norders", "orders\n\n", ""])
def test_upstream_names_with_a_newline_are_refused(name):
    with pytest.raises(ApiError) as caught:
        check_upstream_name(name)
    assert caught.value.status == 422
    assert caught.value.field == "upstream"


def test_the_documented_pattern_is_the_same_rule():
    import re

    for good in ("orders", "a", "orders.prod-1_x", "a" * 255):
        assert re.search(UPSTREAM_NAME_PATTERN, good)
        assert check_upstream_name(good) == good
    for bad in ("orders\n", "-orders", "a" * 256, "or/ders", ".."):
        assert not re.search(UPSTREAM_NAME_PATTERN, bad)


@pytest.mark.parametrize("method", ["get", "put"])
def test_an_upstream_with_an_encoded_newline_never_reaches_kong(sidecar, upstream, method):
    client = sidecar.client()
    before = sidecar.kong_weights(upstream)
    body = {"split": {"stable": 95, "baseline": 2.5, "canary": 2.5}} if method == "put" else None
    response = client.request(method.upper(), f"/v1/upstreams/{upstream}%0A/split", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_upstream"
    assert sidecar.kong_weights(upstream) == before


def test_a_hash_header_name_with_a_trailing_newline_is_refused(sidecar, upstream):
    before = sidecar.kong_client().get(f"/upstreams/{upstream}").json()
    response = sidecar.client().put(
        f"/v1/upstreams/{upstream}/hashing",
        json={"hash_on": "header", "hash_on_header": "X-Canary\n"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "hash_on_header"
    after = sidecar.kong_client().get(f"/upstreams/{upstream}").json()
    assert after["hash_on"] == before["hash_on"]


SCHEDULE = [
    {"stable": 95, "baseline": 2.5, "canary": 2.5},
    {"stable": 90, "baseline": 5, "canary": 5},
]


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8443", "[::1]:1"])
def test_the_host_header_never_reaches_a_returned_url(sidecar, upstream, host):
    """Issue 13 item 12: without public_url the request's Host made statusUrl, cancelUrl and
    Location, so anyone who could reach the sidecar chose the URLs Orca would call next."""
    client = sidecar.client()
    response = client.post(
        f"/v1/upstreams/{upstream}/ramps",
        json={
            "schedule": SCHEDULE,
            "interval": 60,
            "targets": {"canary": ["10.0.0.3:80"], "baseline": ["10.0.0.2:80"]},
        },
        headers={"Host": host},
    )
    assert response.status_code == 202, response.text
    ramp = response.json()
    returned = [ramp["statusUrl"], ramp["cancelUrl"], response.headers["Location"]]
    assert not any("attacker" in url or "[::1]" in url for url in returned), returned
    # without public_url the links name the socket the sidecar listens on, which works
    assert all(url.startswith(f"{sidecar.url}/v1/ramps/") for url in returned), returned
    assert client.get(ramp["statusUrl"]).json()["status"] == "RUNNING"
