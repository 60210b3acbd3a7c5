"""A real Prometheus scrapes the sidecar while Kong's http-log batches arrive, and the library's
``kong-canary-sidecar-gateway`` queries, expanded as Kayenta expands them, return the
per-variant 5xx ratio and P99s of exactly what was posted.

The flow is the production one: a canary split opens the window (http-log attached to the
upstream's Kong service on the local Kong 3.4 and the series primed at 0), Prometheus
(``/usr/bin/prometheus``, loopback, ``scrape_interval: 1s``) scrapes ``/metrics`` of the
sidecar (single process: ``PROMETHEUS_MULTIPROC_DIR`` unset), then the batches Kong 3.4.2
recorded plus synthetic ones for a bad canary are POSTed to the plugin's own
``http_endpoint`` with the plugin's own headers, and Prometheus scrapes again.

Series carry a ``route`` label (the entry's route); a route's series are primed, for every
variant, when its first entry arrives. In production that first entry is stable traffic: the
window is live before any traffic moves (``sidecar.gateway.window``), so here a stable-only
warm-up batch comes first and is scraped before the canary's entries; it is counted in the
raw counters, and left out of the ``rate()`` expectations (its own series started at it).

Why the numbers are exact: every series was scraped at 0 before any entry came, so each
one's ``rate()`` is its increase times the same extrapolation factor (Prometheus
``extrapolatedRate``: the counter-reset-to-zero bound stops extrapolation at a first sample
of 0, and all series share the scrape timestamps) – the factor cancels in the ratio and in
``histogram_quantile``, whose interpolation (``bucketQuantile`` in promql/quantile.go:
linear inside the bucket the rank falls in, lower bound 0 for the first) is recomputed
here from the raw latencies. Query building: sidecar.kayenta.template (kayenta-core
``QueryConfigUtils``, kayenta-prometheus ``PrometheusMetricsService.buildQuery``).
"""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from sidecar.app import close_app, create_app
from sidecar.kayenta.library import load_rendered
from sidecar.kayenta.prometheus import fetch_metric, query_range
from sidecar.kayenta.template import CanaryScope
from sidecar.kong_local.server import RunningServer, serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.gateway.conftest import load
from tests.kayenta.conftest import _binary, _free_port

pytestmark = pytest.mark.slow

CONFIG = "kong-canary-sidecar-gateway"
SPINNAKER = ApiToken("spinnaker", "spinnaker-token-0123456789", "write")
INGEST = ApiToken("kong-ingest", "kong-ingest-token-0123456789", "write")
PORTS = {9111: "stable", 9112: "baseline", 9113: "canary"}  # as in the 3.4.2 recording
SCRAPE_WAIT = 10.0  # seconds, for both scrapes together
BUCKETS = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300,
    400, 500, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000,
    15000, 20000, 30000, 60000,
)  # fmt: skip  # the contract with the Kayenta configs, written out independently


@dataclass
class Sidecar:
    url: str
    app: Any
    client: httpx.Client


@pytest.fixture
def kong() -> Iterator[RunningServer]:
    with serve_in_thread(
        "3.4", configuration={"worker_state_update_frequency": 0.1, "db_update_frequency": 0.1}
    ) as server:
        yield server


@pytest.fixture
def sidecar(kong: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sidecar]:
    """The app on a loopback WSGI server; its port is known before the app is built, since
    the ingest URL (what Kong's plugin posts to) is that server."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    holder: dict[str, Callable[..., Any]] = {}
    server = make_server(
        "127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True
    )
    url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings(
        tokens=(SPINNAKER, INGEST),
        kong=KongSettings(admin_url=kong.url),
        gateway_metrics=True,
        gateway_ingest_url=url,
        gateway_ingest_token=INGEST.token,
    )
    app = holder["app"] = create_app(settings, sweep_leases=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    headers = {"Authorization": f"Bearer {SPINNAKER.token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        try:
            yield Sidecar(url, app, client)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            close_app(app)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], httpx.Client]]:
    """``start(target)``: Prometheus scraping ``target``'s /metrics every second, under
    ``timeout`` so it ends on its own even if this process is killed."""
    binary = _binary("prometheus")
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []
    log_path = tmp_path / "prometheus.log"

    def start(target: str) -> httpx.Client:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: kong-canary\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n",
            encoding="utf-8",
        )
        port = _free_port()
        log = log_path.open("wb")
        procs.append(
            subprocess.Popen(
                [
                    "timeout",
                    "120",
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        clients.append(client)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.get("/-/ready").status_code == 200:
                    return client
            except httpx.TransportError:
                pass
            if procs[-1].poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start: {log_path.read_text()}")
            time.sleep(0.05)

    try:
        yield start
    finally:
        for client in clients:
            client.close()
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- what Kong sends ----------------------------------------------------------------------


def _synthetic(
    rng: random.Random, template: dict[str, Any], port: int, n: int, errors: int, extra_ms: float
) -> list[dict[str, Any]]:
    """A bad canary's traffic in Kong 3.4.2's entry shape: ``errors`` 500s, slower by
    ``extra_ms`` (the recording's canary answered ~5 % 500s and ~40 ms slower)."""
    out = []
    for i in range(n):
        entry = copy.deepcopy(template)
        proxy = round(rng.lognormvariate(2.6, 0.45) + extra_ms)
        kong_ms = rng.randint(0, 3)
        status = 500 if i < errors else 200
        entry["response"]["status"] = status
        entry["upstream_status"] = str(status)
        entry["latencies"] = {"request": proxy + kong_ms, "proxy": proxy, "kong": kong_ms}
        entry["tries"][-1]["port"] = port
        out.append(entry)
    rng.shuffle(out)
    return out


def _batches() -> list[list[dict[str, Any]]]:
    recorded = [b["body"] for b in load("3.4.2", "http-log-batches")["first_batches"]]
    template = recorded[0][0]
    rng = random.Random(20260601)
    extra = [
        _synthetic(rng, template, 9111, 300, 1, 0),
        _synthetic(rng, template, 9112, 200, 1, 0),
        _synthetic(rng, template, 9113, 200, 24, 40),
    ]
    mixed = [e for batch in extra for e in batch]
    rng.shuffle(mixed)
    return [*recorded, *(mixed[i : i + 200] for i in range(0, len(mixed), 200))]


def _expected(batches: list[list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """5xx ratio and P99s per variant, from the entries alone."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for entry in (e for batch in batches for e in batch):
        by_variant.setdefault(PORTS[entry["tries"][-1]["port"]], []).append(entry)
    out = {}
    for variant, entries in by_variant.items():
        errors = sum(1 for e in entries if 500 <= e["response"]["status"] < 600)
        proxy = [e["latencies"]["proxy"] for e in entries if e["latencies"]["proxy"] >= 0]
        out[variant] = {
            "ratio": errors / len(entries),
            "request": _bucket_quantile(0.99, [e["latencies"]["request"] for e in entries]),
            "upstream": _bucket_quantile(0.99, proxy),
            "entries": len(entries),
        }
    return out


def _bucket_quantile(q: float, values: list[float]) -> float:
    """Prometheus' ``bucketQuantile`` over cumulative ``le`` buckets of ``values``."""
    cumulative = [sum(1 for v in values if v <= bound) for bound in BUCKETS]
    rank = q * len(values)
    b = next(i for i, c in enumerate(cumulative) if c >= rank)
    lower = 0.0 if b == 0 else BUCKETS[b - 1]
    below = 0 if b == 0 else cumulative[b - 1]
    inside = cumulative[b] - below
    estimate = lower + (BUCKETS[b] - lower) * (rank - below) / inside
    ordered = sorted(values)
    exact = ordered[max(0, math.ceil(rank) - 1)]  # nearest-rank P99
    assert lower <= exact <= BUCKETS[b]  # the estimate is off by less than one bucket
    return estimate


# ---- waiting on Prometheus ----------------------------------------------------------------


def _instant(prom: httpx.Client, query: str) -> list[dict[str, Any]]:
    body = prom.get("/api/v1/query", params={"query": query}).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _wait(what: str, deadline: float, check: Callable[[], bool]) -> None:
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus did not {what} within {SCRAPE_WAIT} s")
        time.sleep(0.1)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- the test -----------------------------------------------------------------------------


def test_kayenta_queries_on_scraped_sidecar_metrics_match_what_kong_posted(
    kong: RunningServer, sidecar: Sidecar, prometheus: Callable[[str], httpx.Client]
) -> None:
    upstream = f"orders-{uuid.uuid4().hex[:8]}"  # fresh series in this process's registry
    admin = httpx.Client(base_url=kong.url, timeout=10)
    admin.post("/upstreams", json={"name": upstream}).raise_for_status()
    admin.post(
        f"/upstreams/{upstream}/targets",
        json={"target": "127.0.0.1:9111", "weight": 100, "tags": ["variant=stable"]},
    ).raise_for_status()
    admin.post("/services", json={"name": upstream, "host": upstream}).raise_for_status()

    # The pipeline's canary split opens the window: the plugin says where Kong will post.
    split = {"stable": 80, "baseline": 10, "canary": 10}
    targets = {"baseline": ["127.0.0.1:9112"], "canary": ["127.0.0.1:9113"]}
    answer = sidecar.client.put(
        f"/v1/upstreams/{upstream}/split", json={"split": split, "targets": targets}
    )
    assert answer.status_code == 200, answer.text
    assert not [w for w in answer.json()["warnings"] if w.startswith("gateway metrics")]
    (plugin,) = admin.get("/plugins").json()["data"]
    endpoint, headers = plugin["config"]["http_endpoint"], plugin["config"]["headers"]
    assert endpoint == f"{sidecar.url}/v1/kong-log"
    kong.app.mark_balancer_ready(upstream)  # traffic flows: /health reports addresses

    prom = prometheus(sidecar.url.removeprefix("http://"))
    deadline = time.monotonic() + SCRAPE_WAIT
    series = f'kong_canary_gateway_requests_total{{upstream="{upstream}"}}'
    template = load("3.4.2", "http-log-batches")["first_batches"][0]["body"][0]
    warm_up = _synthetic(random.Random(1), template, 9111, 20, 0, 0)  # stable, route orders
    posted = httpx.post(
        endpoint,
        content=json.dumps(warm_up).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert posted.status_code == 200, posted.text
    routed = f'kong_canary_gateway_requests_total{{upstream="{upstream}",route="orders"}}'
    _wait("scrape the primed series", deadline, lambda: len(_instant(prom, routed)) == 15)
    values = {(s["metric"]["variant"], float(s["value"][1])) for s in _instant(prom, routed)}
    assert {v for variant, v in values if variant != "stable"} == {0.0}

    batches = _batches()
    for batch in batches:
        posted = httpx.post(
            endpoint,
            content=json.dumps(batch).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert posted.status_code == 200, posted.text
        assert posted.json()["accepted"] == len(batch)
    total = sum(len(b) for b in batches) + len(warm_up)
    _wait(
        "scrape the posted batches",
        deadline,
        lambda: [float(s["value"][1]) for s in _instant(prom, f"sum({series})")] == [total],
    )

    expected = _expected(batches)
    assert expected["canary"]["ratio"] > 3 * expected["baseline"]["ratio"] > 0
    at = time.time()
    config = load_rendered()[CONFIG]
    metrics = {m["name"]: m for m in config["metrics"]}
    assert set(metrics) == {
        "gateway_5xx_ratio",
        "gateway_p99_request_latency_ms",
        "gateway_p99_upstream_latency_ms",
    }
    want = {"gateway_5xx_ratio": "ratio", "gateway_p99_request_latency_ms": "request"}
    want["gateway_p99_upstream_latency_ms"] = "upstream"
    # Kayenta judges baseline against canary; stable's route series started at the warm-up's
    # count (not 0), so its rate() is extrapolated differently and is not compared here.
    for variant in ("baseline", "canary"):
        scope = CanaryScope(
            scope=variant,
            start=_iso(at),
            end=_iso(at),
            step=1,
            extended_scope_params={"upstream": upstream},
        )
        for name, metric in metrics.items():
            (result,) = fetch_metric(prom, metric, config.get("templates"), scope)
            assert dict(result.tags) == {}, name  # aggregated to one series per side
            (value,) = result.values
            assert value == pytest.approx(expected[variant][want[name]], rel=1e-9), (
                variant,
                name,
            )

    # The raw counters agree with the entries too (no extrapolation involved).
    raw = query_range(prom, f"sum by (variant) ({series})", _iso(at), _iso(at), 1)["data"]["result"]
    counted = {r["metric"]["variant"]: float(r["values"][0][1]) for r in raw}
    expected["stable"]["entries"] += len(warm_up)
    assert counted == {v: float(e["entries"]) for v, e in expected.items()}

    # The canary ends: nothing is left attached.
    rolled = sidecar.client.post(f"/v1/upstreams/{upstream}/rollback")
    assert rolled.status_code == 200
    assert admin.get("/plugins").json()["data"] == []
    admin.close()
