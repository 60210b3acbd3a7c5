"""The suite judges version-dependent behaviour by the version Kong reports (issue 13 item 14).

A real-Kong run's profile is "real", so ``profile == "2.8"`` took the 3.x branch on a real
2.8.5 (``test_kong_3_only_hashing_is_refused_on_kong_2``). To run the real-Kong cases against
a Kong-compatible server of a given version: ``kong-canary kong-local --kong-version 2.8
--bind 127.0.0.1:8001`` and ``KONG_ADMIN_URL=http://127.0.0.1:8001 pytest -m real_kong``.
"""

from __future__ import annotations

import httpx
import pytest

from sidecar.kong_local.server import serve_in_thread
from tests.api.conftest import detect_kong_version

REPORTED = {"2.8": (2, 8), "3.4": (3, 4), "3.9": (3, 9), "konnect": None}


@pytest.mark.parametrize("profile", sorted(REPORTED))
def test_the_version_is_read_from_kongs_root(profile):
    server = serve_in_thread(profile, konnect_token="kpat_x" if profile == "konnect" else None)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as kong:
            assert detect_kong_version(kong) == REPORTED[profile]
    finally:
        server.stop()


def test_every_sidecar_run_knows_its_kong_version(sidecar):
    if sidecar.profile in REPORTED:
        assert sidecar.kong_version == REPORTED[sidecar.profile]
    else:  # a real Kong: whatever it reports, never the profile's name
        assert sidecar.kong_version is not None
    assert sidecar.kong_2 == (sidecar.kong_version is not None and sidecar.kong_version[0] == 2)
