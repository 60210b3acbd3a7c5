"""``normalise_target`` must spell a target exactly as Kong stores it, or lookups by
``host:port`` 404. Expected values are worked out from Kong's source:
``kong/tools/ip.lua`` (``normalize_ip``, ``normalize_ipv4``, ``normalize_ipv6``,
``check_hostname``, ``format_host``; in ``kong/tools/utils.lua`` in older releases) as used by
``format_target`` in ``kong/db/dao/targets.lua`` with ``DEFAULT_PORT = 8000``.
"""

from __future__ import annotations

import json

import pytest

from sidecar.kong.models import normalise_target

LOOPBACK6 = "[0000:0000:0000:0000:0000:0000:0000:0001]"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("10.0.0.1:80", "10.0.0.1:80"),
        ("10.0.0.2", "10.0.0.2:8000"),  # DEFAULT_PORT
        ("010.000.000.001:80", "10.0.0.1:80"),  # fmt("%d.%d.%d.%d", tonumber(...))
        (" 10.0.0.1:80 ", "10.0.0.1:80"),
        ("::1", f"{LOOPBACK6}:8000"),  # bare IPv6 cannot carry a port
        ("[::1]:80", f"{LOOPBACK6}:80"),
        ("[::1]", f"{LOOPBACK6}:8000"),
        ("2001:DB8::A", "[2001:0db8:0000:0000:0000:0000:0000:000a]:8000"),  # lower(fmt(...))
        ("fe80::", "[fe80:0000:0000:0000:0000:0000:0000:0000]:8000"),
        ("localhost:9001", "localhost:9001"),
        ("orders.svc", "orders.svc:8000"),
        ("Orders.SVC:80", "Orders.SVC:80"),  # "Note: a name will not be normalized!"
        ("orders.svc.:80", "orders.svc.:80"),  # FQDN trailing dot allowed (3.x check_hostname)
        ("my_host-1:65535", "my_host-1:65535"),
    ],
)
def test_spelling_matches_kong(given: str, stored: str) -> None:
    assert normalise_target(given) == stored


def test_hostnames_differing_in_case_stay_different() -> None:
    # Kong stores names verbatim, so these are two targets to Kong (two cache keys).
    assert normalise_target("api.local:80") != normalise_target("API.local:80")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "not a host!:80",  # the recorded 400 "Invalid target; not a valid hostname or ip address"
        "10.0.0.1:70000",
        "1.2.3.256",
        "1.2.3",  # digits and dots only => ipv4 type => invalid
        "::ffff:1.2.3.4",  # Kong's ipv6 pattern has no embedded IPv4
        "fe80::1%eth0",
        "1::2::3",
        "[::1",
        "[::1]80",
        "a..b",
        "bad-.example",
        "host:port",
    ],
)
def test_rejects_what_kong_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_target(bad)


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2", "3.9.3"])
def test_recorded_kong_spellings_are_fixed_points(fixtures_dir, version: str) -> None:
    """Every target string a real Kong returned must normalise to itself."""
    steps = json.loads((fixtures_dir / "kong" / f"kong-{version}-admin-targets.json").read_text())
    seen = set()
    for step in steps["steps"]:
        response = step["response"]
        rows = response.get("data") if isinstance(response, dict) else None
        for row in rows if isinstance(rows, list) else [response]:
            if isinstance(row, dict) and isinstance(row.get("target"), str):
                seen.add(row["target"])
    assert "10.0.0.2:8000" in seen  # the one Kong completed with the default port
    for stored in seen:
        assert normalise_target(stored) == stored
