"""The bulk feed equals one ``observe`` per entry, the buckets are fine enough, and the
series add up across forked workers in prometheus_client's multiprocess mode."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sidecar.gateway.entries import Series, Tally
from sidecar.gateway.metrics import BOUNDS, LATENCY_BUCKETS_MS, GatewayMetrics
from tests.gateway.conftest import entries_of, parse_exposition, sample, variant_by_port

REPO = Path(__file__).resolve().parents[2]


def test_bulk_feed_matches_observe_sample_for_sample() -> None:
    rng = random.Random(7)
    values = [rng.choice([0, 1, 3.5, 60000, 70000]) or rng.expovariate(1 / 40) for _ in range(500)]
    reference = CollectorRegistry()
    hist = Histogram(
        "h_ms",
        "h",
        ["upstream", "variant", "route"],
        buckets=LATENCY_BUCKETS_MS,
        registry=reference,
    )
    for v in values:
        hist.labels("orders", "canary", "refunds").observe(v)

    series = Series.empty(len(BOUNDS))
    from bisect import bisect_left

    for v in values:
        series.request[bisect_left(BOUNDS, v)] += 1
        series.request_sum += v
    series.codes["2xx"] = len(values)
    registry = CollectorRegistry()
    GatewayMetrics.in_registry(registry).record(
        Tally(series={("orders", "canary", "refunds"): series})
    )

    want = parse_exposition(generate_latest(reference).decode())
    got = parse_exposition(generate_latest(registry).decode())
    compared = 0
    for (name, labels), value in want.items():
        if name.startswith("h_ms_") and not name.endswith("_created"):
            ours = name.replace("h_ms", "kong_canary_gateway_request_latency_ms")
            assert got[(ours, labels)] == pytest.approx(value), (ours, labels)
            compared += 1
    assert compared == len(BOUNDS) + 2  # every bucket, _count and _sum
    assert (
        sample(
            got,
            "kong_canary_gateway_requests_total",
            upstream="orders",
            variant="canary",
            code_class="2xx",
        )
        == 500
    )


def test_buckets_are_fine_enough_for_a_p99_between_3_ms_and_10_s() -> None:
    bounds = list(LATENCY_BUCKETS_MS)
    assert bounds == sorted(set(bounds))
    ratios = [b / a for a, b in itertools.pairwise(bounds) if a >= 3 and b <= 10000]
    assert max(ratios) <= 1.34
    assert bounds[0] <= 1 and bounds[-1] >= 60000  # Kong's default proxy timeouts


def test_children_are_cached_not_looked_up_per_batch() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics.in_registry(registry)
    series = Series.empty(len(BOUNDS))
    series.codes["2xx"] = 1
    series.request[0] = 1
    for _ in range(3):
        metrics.record(Tally(series={("orders", "stable", ""): series}, rejected={"bad_tries": 1}))
    assert len(metrics._children) == 3  # requests, request latency, rejected
    values = parse_exposition(generate_latest(registry).decode())
    assert sample(values, "kong_canary_gateway_rejected_total", reason="bad_tries") == 3


WORKERS = textwrap.dedent(
    """
    import json, os, sys
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    from sidecar.gateway.addresses import VariantResolver
    from sidecar.gateway.ingest import GatewayIngest
    from sidecar.kong.parse import Call, upstream_health

    health = json.load(open(sys.argv[1]))
    body = open(sys.argv[2], "rb").read()
    parsed = upstream_health(health["data"], None, Call("GET", "/h"))
    gateway = GatewayIngest(VariantResolver(lambda u: parsed))
    gateway.ingest(body)  # the parent caches its children before forking, as with --preload
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            gateway.ingest(body)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    sys.stdout.write(generate_latest(registry).decode())
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    version = "3.9.3"
    entries = entries_of(version)
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(entries))
    health = REPO / "tests" / "fixtures" / "kong" / f"kong-{version}-upstream-health.json"
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", WORKERS, str(health), str(batch)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(list(multiproc.glob("counter_*.db"))) == 3  # one file per process
    values = parse_exposition(done.stdout)
    ports = variant_by_port(version)
    expected: dict[tuple[str, str], int] = {}
    for e in entries:
        key = (ports[e["tries"][-1]["port"]], f"{e['response']['status'] // 100}xx")
        expected[key] = expected.get(key, 0) + 1
    for (variant, code_class), count in expected.items():
        got = sample(
            values,
            "kong_canary_gateway_requests_total",
            upstream="orders",
            variant=variant,
            code_class=code_class,
        )
        assert got == 3 * count, (variant, code_class)
        n = sample(
            values,
            "kong_canary_gateway_request_latency_ms_count",
            upstream="orders",
            variant=variant,
        )
        assert n == 3 * sum(c for (v, _), c in expected.items() if v == variant)


def test_prime_creates_every_series_of_an_upstream_at_zero_once() -> None:
    """rate() only counts increases between samples: a series must exist at 0 before its
    first increment (Prometheus' ``extrapolatedRate`` has nothing to compare a first
    sample with), so a canary's first 5xx are not lost."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics.in_registry(registry)
    metrics.prime("orders")
    values = parse_exposition(generate_latest(registry).decode())
    requests = {
        dict(labels)["variant"] + "/" + dict(labels)["code_class"]: v
        for (name, labels), v in values.items()
        if name == "kong_canary_gateway_requests_total"
    }
    assert requests == {
        f"{v}/{c}xx": 0.0 for v in ("stable", "baseline", "canary") for c in range(1, 6)
    }
    for histogram in ("request", "upstream"):
        name = f"kong_canary_gateway_{histogram}_latency_ms_count"
        counts = {dict(labels)["variant"]: v for (n, labels), v in values.items() if n == name}
        assert counts == {"stable": 0.0, "baseline": 0.0, "canary": 0.0}
    before = len(metrics._children)
    metrics.prime("orders")
    assert len(metrics._children) == before
