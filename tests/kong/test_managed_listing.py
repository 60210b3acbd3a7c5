"""Finding the managed upstreams among many: Kong filters by our tag on its side.

Every worker of every replica looks for managed upstreams on each lease sweep; listing every
upstream would cost ceil(N/1000) pages of everyone's upstreams each time. With
``?tags=managed-by=kong-canary`` (``kong/api/endpoints.lua``) one page of ours suffices.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from sidecar.core.tags import MANAGED_TAG
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong_local.server import RunningServer, serve_in_thread
from sidecar.settings import KongSettings
from sidecar.traffic import TrafficService

UNMANAGED = 1500  # more than one page of 1000
MANAGED = ("orders", "payments")


def _seed() -> dict:
    upstreams = [{"name": f"other-{i:04d}", "tags": ["team=x"]} for i in range(UNMANAGED)]
    upstreams += [{"name": name, "tags": [MANAGED_TAG]} for name in MANAGED]
    return {"upstreams": upstreams}


@pytest.fixture(params=["2.8", "3.9", "konnect"])
def kong(request) -> Iterator[tuple[KongAdmin, RunningServer]]:
    server = serve_in_thread(request.param, seed=_seed())
    settings = KongSettings(admin_url=server.url, read_timeout=2.0)
    if request.param == "konnect":
        settings = KongSettings(
            admin_url=server.url,
            flavour="konnect",
            konnect_token="kpat_test_token",
            konnect_control_plane_id=server.app.control_plane_id,
            read_timeout=2.0,
        )
    admin = KongAdmin(build_http_client(settings))
    try:
        yield admin, server
    finally:
        admin.close()
        server.stop()


def test_managed_upstreams_are_one_filtered_page(kong) -> None:
    admin, server = kong
    service = TrafficService(admin)
    try:
        server.app.calls.clear()
        names = sorted(u.name for u in service.managed_upstreams())
    finally:
        service.close()
    assert names == sorted(MANAGED)
    listings = [path for method, path in server.app.calls if method == "GET"]
    assert len(listings) == 1, listings
    query = parse_qs(urlsplit(listings[0]).query)
    assert query["tags"] == [MANAGED_TAG]
