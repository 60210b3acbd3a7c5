"""``POST /v1/kong-log`` in the real app, fed the batches Kong 2.8.5, 3.4.2 and 3.9.3 posted,
with the metrics read back from ``/metrics`` through Prometheus's text parser."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from sidecar.api import kong_log
from sidecar.app import create_app
from sidecar.gateway.addresses import VariantResolver
from sidecar.gateway.ingest import GatewayIngest
from sidecar.gateway.metrics import LATENCY_BUCKETS_MS
from sidecar.gateway.plugin import MAX_BATCH
from sidecar.kong.models import Flavour
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.gateway.conftest import (
    VERSIONS,
    FakeKong,
    health_body,
    load,
    sample,
    variant_by_port,
)

WRITE = ApiToken("kong", "kong-ingest-token-0123456789", "write")
READ = ApiToken("viewer", "viewer-token-0123456789abc", "read")
SCOPED = ApiToken("payments", "payments-token-0123456789ab", "write", ("payments*",))
FLAVOUR = {"2.8.5": Flavour.KONG_2, "3.4.2": Flavour.KONG_3, "3.9.3": Flavour.KONG_3}


def auth(token: ApiToken = WRITE) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.token}"}


def make_app(kong: FakeKong, flavour: Flavour, clock, **settings: Any) -> Flask:  # type: ignore[no-untyped-def]
    config = Settings(
        tokens=(WRITE, READ, SCOPED),
        kong=KongSettings(admin_url="http://kong.test:8001"),
        **settings,
    )
    app = create_app(config, kong=kong.admin(flavour), sweep_leases=False)
    if kong_log.bp.name not in app.blueprints:  # the lead registers it in create_app
        app.register_blueprint(kong_log.bp)
    admin = app.extensions["kong_canary"].kong
    kong_log.install(
        app, GatewayIngest(VariantResolver(admin.health, upstream=admin.upstream, clock=clock))
    )
    return app


@pytest.fixture(params=VERSIONS)
def version(request) -> str:  # type: ignore[no-untyped-def]
    return request.param


@pytest.fixture
def kong(version: str) -> FakeKong:
    return FakeKong({"orders": health_body(version)})


@pytest.fixture
def client(kong: FakeKong, version: str, clock, scrape_delta) -> Iterator[FlaskClient]:  # type: ignore[no-untyped-def]
    app = make_app(kong, FLAVOUR[version], clock)
    with app.test_client() as c:
        scrape_delta.start(lambda: c.get("/metrics").get_data(as_text=True))
        yield c


def recount(version: str) -> tuple[dict[tuple[str, str], int], dict[str, list[float]]]:
    """Per (variant, class) counts and per-variant request latencies, straight from the file."""
    ports = variant_by_port(version)
    counts: dict[tuple[str, str], int] = {}
    latencies: dict[str, list[float]] = {}
    for batch in load(version, "http-log-batches")["first_batches"]:
        for e in batch["body"]:
            variant = ports[e["tries"][-1]["port"]]
            key = (variant, f"{e['response']['status'] // 100}xx")
            counts[key] = counts.get(key, 0) + 1
            latencies.setdefault(variant, []).append(e["latencies"]["request"])
    return counts, latencies


def test_recorded_batches_give_per_variant_counts_and_buckets(
    client: FlaskClient, version: str, scrape_delta
) -> None:  # type: ignore[no-untyped-def]
    recorded = load(version, "http-log-batches")
    total = 0
    for batch in recorded["first_batches"]:
        # byte for byte what Kong sent, with Kong's own headers plus the token it was given
        raw = json.dumps(batch["body"]).encode()
        headers = {k: v for k, v in batch["headers"].items() if k not in ("Content-Length", "Host")}
        response = client.post("/v1/kong-log", data=raw, headers={**headers, **auth()})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["accepted"] == body["entries"] == len(batch["body"])
        assert body["unmapped"] == body["rejected"] == 0
        total += len(batch["body"])

    delta = scrape_delta.delta()
    counts, latencies = recount(version)
    assert sum(counts.values()) == total
    for (variant, code_class), count in counts.items():
        got = sample(
            delta,
            "kong_canary_gateway_requests_total",
            upstream="orders",
            variant=variant,
            code_class=code_class,
        )
        assert got == count, (variant, code_class)
    counted = sum(v for (n, _), v in delta.items() if n == "kong_canary_gateway_requests_total")
    assert counted == total  # nothing counted twice or elsewhere
    for variant, values in latencies.items():
        for bound in (*LATENCY_BUCKETS_MS, float("inf")):
            le = "+Inf" if bound == float("inf") else str(float(bound))
            got = sample(
                delta,
                "kong_canary_gateway_request_latency_ms_bucket",
                upstream="orders",
                variant=variant,
                le=le,
            )
            assert got == sum(1 for v in values if v <= bound), (variant, le)
        got_sum = sample(
            delta, "kong_canary_gateway_request_latency_ms_sum", upstream="orders", variant=variant
        )
        assert got_sum == pytest.approx(sum(values))


def test_split_agrees_loosely_with_what_the_backends_saw(
    client: FlaskClient, version: str, scrape_delta
) -> None:  # type: ignore[no-untyped-def]
    """The batches hold the first ~200/66/65 of 3,000 requests, so only proportions and
    which (variant, status class) pairs exist can be checked against the summary."""
    for batch in load(version, "http-log-batches")["first_batches"]:
        assert client.post("/v1/kong-log", json=batch["body"], headers=auth()).status_code == 200
    delta = scrape_delta.delta()
    summary = load(version, "traffic-summary")
    per_variant: dict[str, float] = {}
    for (name, labels), value in delta.items():
        if name == "kong_canary_gateway_requests_total":
            label = dict(labels)
            per_variant[label["variant"]] = per_variant.get(label["variant"], 0) + value
            classes = {f"{int(s) // 100}xx" for s in summary["observed"][label["variant"]]}
            assert label["code_class"] in classes, label
    total = sum(per_variant.values())
    weights = summary["weights"]
    for variant, weight in weights.items():
        share = weight / sum(weights.values())
        assert per_variant.get(variant, 0) / total == pytest.approx(share, abs=0.1), variant


def test_one_entry_per_request_when_batching_is_off(
    client: FlaskClient, version: str, scrape_delta
) -> None:  # type: ignore[no-untyped-def]
    entry = load(version, "http-log-batches")["first_batches"][0]["body"][0]
    response = client.post("/v1/kong-log", data=json.dumps(entry), headers=auth())
    assert response.status_code == 200 and response.get_json()["accepted"] == 1
    variant = variant_by_port(version)[entry["tries"][-1]["port"]]
    delta = scrape_delta.delta()
    assert (
        sample(
            delta,
            "kong_canary_gateway_requests_total",
            upstream="orders",
            variant=variant,
            code_class="2xx",
        )
        == 1
    )


def test_a_batch_with_some_bad_entries_is_still_200(
    client: FlaskClient, version: str, scrape_delta
) -> None:  # type: ignore[no-untyped-def]
    good = load(version, "http-log-batches")["first_batches"][0]["body"][0]
    no_tries = copy.deepcopy(good)
    del no_tries["tries"]
    stranger = copy.deepcopy(good)
    stranger["tries"][-1]["port"] = 9999
    response = client.post(
        "/v1/kong-log", json=[good, "junk", no_tries, stranger, {}], headers=auth()
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "entries": 5,
        "accepted": 1,
        "unmapped": 2,
        "rejected": 2,
        "unmapped_reasons": {"no_tries": 1, "unknown_address": 1},
        "rejected_reasons": {"not_an_object": 1, "no_service": 1},
    }
    delta = scrape_delta.delta()
    assert (
        sample(delta, "kong_canary_gateway_unmapped_total", upstream="orders", reason="no_tries")
        == 1
    )
    assert (
        sample(
            delta, "kong_canary_gateway_unmapped_total", upstream="orders", reason="unknown_address"
        )
        == 1
    )
    assert sample(delta, "kong_canary_gateway_rejected_total", reason="not_an_object") == 1


@pytest.mark.parametrize("version", ["3.9.3"], indirect=True)
@pytest.mark.parametrize(
    ("data", "status", "code", "reason"),
    [
        (b"<html>oops</html>", 400, "invalid_json", "batch_invalid_json"),
        (b'{"a": 1', 400, "invalid_json", "batch_invalid_json"),
        (b"[]", 400, "empty_batch", "batch_empty_batch"),
        (b"[1, 2, 3]", 422, "no_valid_entries", "not_an_object"),
    ],
)
def test_bad_batches_get_a_clear_4xx_and_are_counted(
    client: FlaskClient, data: bytes, status: int, code: str, reason: str, scrape_delta
) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/kong-log", data=data, headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert sample(scrape_delta.delta(), "kong_canary_gateway_rejected_total", reason=reason) >= 1


@pytest.mark.parametrize("version", ["3.4.2"], indirect=True)
def test_upstream_override_from_query_or_header(client: FlaskClient, kong: FakeKong) -> None:
    entry = copy.deepcopy(load("3.4.2", "http-log-batches")["first_batches"][0]["body"][0])
    entry["service"]["host"] = "orders.internal"  # not an upstream name
    assert client.post("/v1/kong-log", json=entry, headers=auth()).status_code == 422
    ok = client.post("/v1/kong-log?upstream=orders", json=entry, headers=auth())
    assert ok.status_code == 200 and ok.get_json()["accepted"] == 1
    via_header = client.post(
        "/v1/kong-log", json=entry, headers={**auth(), "X-Kong-Canary-Upstream": "orders"}
    )
    assert via_header.get_json()["accepted"] == 1
    unknown = client.post("/v1/kong-log?upstream=payments", json=entry, headers=auth())
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "unknown_upstream"
    bad = client.post("/v1/kong-log?upstream=../x", json=entry, headers=auth())
    assert bad.status_code == 422
    assert "GET /upstreams/payments/health" in kong.calls


@pytest.mark.parametrize("version", ["2.8.5"], indirect=True)
def test_tokens(client: FlaskClient) -> None:
    entry = load("2.8.5", "http-log-batches")["first_batches"][0]["body"][0]
    assert client.post("/v1/kong-log", json=entry).status_code == 401
    assert client.post("/v1/kong-log", json=entry, headers=auth(READ)).status_code == 403
    scoped = client.post("/v1/kong-log?upstream=orders", json=entry, headers=auth(SCOPED))
    assert scoped.status_code == 403
    # without an override the entry's own upstream is checked against the token's patterns
    denied = client.post("/v1/kong-log", json=entry, headers=auth(SCOPED))
    assert denied.status_code == 422
    assert denied.get_json()["error"]["details"]["rejected_reasons"] == {"upstream_not_allowed": 1}


@pytest.mark.parametrize("version", ["3.9.3"], indirect=True)
def test_kong_unreachable_before_any_map_is_503_so_kong_retries(
    client: FlaskClient, kong: FakeKong
) -> None:  # type: ignore[no-untyped-def]
    kong.down = True
    entry = load("3.9.3", "http-log-batches")["first_batches"][0]["body"][0]
    response = client.post("/v1/kong-log", json=entry, headers=auth())
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "kong_unavailable"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_batch_past_its_own_limit_is_413_and_reaches_no_kong(
    clock, chunked: bool, scrape_delta
) -> None:  # type: ignore[no-untyped-def]
    """``kong_log_max_body_bytes``, not the API's ``max_body_bytes``: batches are larger."""
    kong = FakeKong({"orders": health_body("3.9.3")})
    limit = 64 * 1024
    app = make_app(kong, Flavour.KONG_3, clock, kong_log_max_body_bytes=limit)
    entry = load("3.9.3", "http-log-batches")["first_batches"][0]["body"][0]
    fits = json.dumps([entry] * (limit // len(json.dumps(entry)) - 1)).encode()
    too_large = json.dumps([entry] * (limit // len(json.dumps(entry)) + 1)).encode()
    assert len(fits) < limit < len(too_large)
    with app.test_client() as client:
        assert client.post("/v1/kong-log", data=fits, headers=auth()).status_code == 200
        kong.calls.clear()
        scrape_delta.start(lambda: client.get("/metrics").get_data(as_text=True))
        if chunked:  # no Content-Length; gunicorn marks a chunked body wsgi.input_terminated
            environ = EnvironBuilder(
                "/v1/kong-log", method="POST", input_stream=io.BytesIO(too_large), headers=auth()
            ).get_environ()
            del environ["CONTENT_LENGTH"]
            environ["wsgi.input_terminated"] = True
            response = client.open(environ)
        else:
            response = client.post("/v1/kong-log", data=too_large, headers=auth())
    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "body_too_large",
        "message": f"the request body is larger than {limit} bytes "
        "(setting kong_log_max_body_bytes)",
        "field": "body",
    }
    assert kong.calls == []
    assert (
        sample(
            scrape_delta.delta(),
            "kong_canary_gateway_rejected_total",
            reason="batch_body_too_large",
        )
        == 1
    )


def test_the_default_batch_limit_fits_the_largest_batch_we_ask_kong_for() -> None:
    """The window asks for up to ``MAX_BATCH`` entries a batch; with entries ten times the
    recorded ones (large headers), such a batch still fits the default."""
    defaults = Settings()
    assert defaults.kong_log_max_body_bytes > defaults.max_body_bytes
    entry = load("3.9.3", "http-log-batches")["first_batches"][0]["body"][0]
    largest_batch_we_configure = len(json.dumps([entry] * MAX_BATCH))
    assert 10 * largest_batch_we_configure < defaults.kong_log_max_body_bytes


@pytest.mark.parametrize("version", ["3.9.3"], indirect=True)
def test_entries_whose_host_would_climb_out_of_the_upstream_path_make_no_kong_call(
    client: FlaskClient, kong: FakeKong
) -> None:
    """``..`` made ``GET /upstreams/../health`` = Kong's ``GET /health``; ``.`` made
    ``GET /upstreams/./health`` = ``GET /upstreams/health``."""
    good = load("3.9.3", "http-log-batches")["first_batches"][0]["body"][0]
    bad = []
    for host in ("..", ".", "../status", "orders/../..", "-"):
        e = copy.deepcopy(good)
        e["service"]["host"] = host
        bad.append(e)
    response = client.post("/v1/kong-log", json=bad, headers=auth())
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["rejected_reasons"] == {"invalid_upstream": 5}
    assert kong.calls == []
    assert client.post("/v1/kong-log", json=[*bad, good], headers=auth()).status_code == 200
    assert kong.calls == ["GET /upstreams/orders/health"]
