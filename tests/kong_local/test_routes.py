"""The local Kong's route table answers 404 and 405 where Kong's does.

Sources: ``kong/api/routes/upstreams.lua`` (the health overrides: POST in 2.x, PUT from 3.0 with
an optional ``/{address}``, not registered when ``role = control_plane``; ``/targets/all`` is
GET only, so other methods reach the target named ``all``), ``kong/api/routes/targets.lua``
(global ``/targets`` disabled), ``kong/api/endpoints.lua`` (405 for a method a route lacks).
The recordings (``test_replay.py``) hold the common cases to real Kong; these are the rest.
"""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from sidecar.kong_local.server import DEFAULT_SEED, create_wsgi_app

TARGET = "/upstreams/orders/targets/127.0.0.1:9111"


@pytest.mark.parametrize(
    ("profile", "method", "path", "status"),
    [
        ("3.9", "HEAD", "/", 405),  # Kong's routes declare no HEAD
        ("3.9", "HEAD", "/upstreams/orders", 405),
        ("3.9", "OPTIONS", "/upstreams", 405),
        ("3.9", "DELETE", "/upstreams", 405),
        ("3.9", "GET", "/targets", 404),
        ("3.9", "GET", "/nope", 404),
        ("3.9", "PUT", "/upstreams/orders/health", 405),
        ("3.9", "GET", "/upstreams/orders/health/x", 404),
        ("3.9", "GET", "/upstreams/orders/other", 404),
        ("3.9", "GET", "/upstreams/orders/targets/all", 200),
        ("3.9", "PATCH", "/upstreams/orders/targets/all", 404),  # the target named "all"
        ("3.9", "POST", f"{TARGET}", 405),
        ("3.9", "GET", f"{TARGET}/x", 404),
        ("3.9", "PUT", f"{TARGET}/healthy", 204),
        ("3.9", "POST", f"{TARGET}/healthy", 405),
        ("3.9", "PUT", f"{TARGET}/127.0.0.1:9111/unhealthy", 204),
        ("3.9", "PUT", f"{TARGET}/a/b/healthy", 404),
        ("2.8", "POST", f"{TARGET}/healthy", 204),
        ("2.8", "PUT", f"{TARGET}/healthy", 405),
        ("2.8", "POST", f"{TARGET}/127.0.0.1:9111/healthy", 404),  # 3.0+ only
        ("hybrid", "PUT", f"{TARGET}/healthy", 404),  # not registered on a control plane
        ("hybrid", "GET", "/clustering/data-planes", 200),
        ("3.9", "GET", "/clustering/data-planes", 404),
        ("3.9", "GET", "/upstreams//orders/", 200),  # empty segments are dropped
    ],
)
def test_route_table_should_answer_like_kong(
    profile: str, method: str, path: str, status: int
) -> None:
    client = Client(create_wsgi_app(profile, seed=DEFAULT_SEED))
    assert client.open(path, method=method).status_code == status


CP = "/v2/control-planes/cp-local"


@pytest.mark.parametrize(
    ("profile", "method", "path", "status"),
    [
        ("3.9", "GET", "/services/missing/plugins", 404),
        ("3.9", "PATCH", "/services/missing/plugins", 404),  # the service is looked up first
        ("3.9", "PATCH", "/services", 405),
        ("3.9", "GET", "/services/missing/other", 404),
        ("3.9", "GET", "/plugins/a/b", 404),
        ("konnect", "GET", f"{CP}/expected-config-hash", 200),
        ("konnect", "POST", f"{CP}/expected-config-hash", 404),  # no such route, not 405
        ("konnect", "POST", f"{CP}/nodes", 404),
        ("konnect", "POST", f"{CP}/core-entities/targets", 404),
        ("konnect", "PATCH", f"{CP}/core-entities/upstreams", 405),
        ("konnect", "PATCH", f"{CP}/core-entities/upstreams/orders", 405),  # Konnect: no PATCH
        ("konnect", "PATCH", f"{CP}/core-entities/upstreams/missing/targets", 404),
        ("konnect", "PATCH", f"{CP}/core-entities/upstreams/orders/targets", 405),
        ("konnect", "GET", f"{CP}/core-entities/upstreams/orders/health", 404),
        ("konnect", "PATCH", f"{CP}/core-entities/services/x", 405),
    ],
)
def test_service_and_konnect_routes_should_answer_like_kong(
    profile: str, method: str, path: str, status: int
) -> None:
    client = Client(create_wsgi_app(profile, seed=DEFAULT_SEED))
    assert client.open(path, method=method).status_code == status
