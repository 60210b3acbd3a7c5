"""Throughput and memory of the http-log ingest path (``POST /v1/kong-log``).

    python bench/gateway_ingest.py                # ~10 s: rates + memory after 200k entries
    python bench/gateway_ingest.py --full         # memory after 10 million entries
    python bench/gateway_ingest.py --multiprocess # metrics in prometheus multiprocess mode

Rates are entries per CPU second of this one process (= per core), for batches of 100 and
1,000 built from the entries Kong 3.9.3 really posted. Three paths over the same bytes:
bare ``json.loads`` (the floor), ``GatewayIngest.ingest`` (parse + tally + metrics) and the
Flask test client (auth, routing, response JSON on top). Memory: RSS and tracemalloc-free
checkpoints while ingesting N entries through the pure path; it must stay flat.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "kong"
TOKEN = "bench-ingest-token-0123456789"


def load_entries(version: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    batches = json.loads((FIXTURES / f"kong-{version}-http-log-batches.json").read_text())
    health = json.loads((FIXTURES / f"kong-{version}-upstream-health.json").read_text())
    entries = [e for b in batches["first_batches"] for e in b["body"]]
    return entries, health


def make_body(entries: list[dict[str, Any]], size: int, start: int = 0) -> bytes:
    picked = [entries[(start + i) % len(entries)] for i in range(size)]
    return json.dumps(picked, separators=(",", ":")).encode()


def rate(run: Callable[[bytes], Any], body: bytes, entries: int, min_seconds: float) -> float:
    """Entries per CPU second, repeating until ``min_seconds`` of CPU time were spent."""
    run(body)  # warm caches: address map, metric children
    done = 0
    started = time.process_time()
    while True:
        run(body)
        done += entries
        spent = time.process_time() - started
        if spent >= min_seconds:
            return done / spent


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    """High-water RSS per getrusage (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="memory run over 10 million entries")
    parser.add_argument("--entries", type=int, help="entries for the memory run (default 200k)")
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per rate")
    parser.add_argument("--version", default="3.9.3", choices=["2.8.5", "3.4.2", "3.9.3"])
    parser.add_argument(
        "--multiprocess", action="store_true", help="prometheus_client multiprocess mode"
    )
    args = parser.parse_args()
    if args.multiprocess:  # must be set before prometheus_client is imported
        directory = tempfile.mkdtemp(prefix="bench-prom-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    sys.path.insert(0, str(REPO))

    import httpx
    from prometheus_client import CollectorRegistry

    from sidecar.api import kong_log
    from sidecar.app import create_app
    from sidecar.gateway.addresses import VariantResolver
    from sidecar.gateway.ingest import GatewayIngest
    from sidecar.gateway.metrics import GatewayMetrics
    from sidecar.kong.client import KongAdmin
    from sidecar.kong.models import Flavour
    from sidecar.kong.parse import Call, upstream_health
    from sidecar.settings import ApiToken, KongSettings, Settings

    entries, health = load_entries(args.version)
    parsed = upstream_health(health["data"], None, Call("GET", "/upstreams/orders/health"))
    metrics = GatewayMetrics.in_registry(CollectorRegistry())
    gateway = GatewayIngest(VariantResolver(lambda u: parsed), metrics)

    def kong_handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=health)

    http = httpx.Client(base_url="http://kong.bench", transport=httpx.MockTransport(kong_handler))
    settings = Settings(
        tokens=(ApiToken("kong", TOKEN, "write"),), kong=KongSettings(admin_url="http://kong")
    )
    app = create_app(settings, kong=KongAdmin(http, flavour=Flavour.KONG_3), sweep_leases=False)
    if kong_log.bp.name not in app.blueprints:
        app.register_blueprint(kong_log.bp)
    kong_log.install(app, GatewayIngest(VariantResolver(lambda u: parsed), metrics))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def via_flask(body: bytes) -> None:
        response = client.post("/v1/kong-log", data=body, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"ingest failed: {response.status_code} {response.get_data()!r}")

    mode = "multiprocess" if args.multiprocess else "single-process"
    print(f"http-log ingest, Kong {args.version} entries, metrics {mode}, one core")
    print(f"{'batch':>6} {'json.loads':>14} {'ingest()':>14} {'flask':>14} "
          f"{'ingest/loads':>13} {'flask/ingest':>13}")  # fmt: skip
    for size in (100, 1000):
        body = make_body(entries, size)
        loads = rate(json.loads, body, size, args.seconds)
        pure = rate(gateway.ingest, body, size, args.seconds)
        flask = rate(via_flask, body, size, args.seconds)
        print(
            f"{size:>6} {loads:>12,.0f}/s {pure:>12,.0f}/s {flask:>12,.0f}/s "
            f"{pure / loads:>13.2f} {flask / pure:>13.2f}"
        )

    total = args.entries or (10_000_000 if args.full else 200_000)
    size = 1000
    checkpoints = 8
    every = max(size, (total // checkpoints) // size * size)
    bodies = [make_body(entries, size, start) for start in range(0, len(entries), 7)][:16]
    print(f"\nmemory while ingesting {total:,} entries in batches of {size} (pure path)")
    print(f"{'entries':>12} {'rss MiB':>9} {'peak MiB':>9} {'entries/s':>11}")
    print(f"{0:>12,} {rss_mib():>9.1f} {peak_mib():>9.1f} {'-':>11}")
    done = 0
    started = time.process_time()
    while done < total:
        gateway.ingest(bodies[(done // size) % len(bodies)])
        done += size
        if done % every == 0 or done >= total:
            speed = done / max(time.process_time() - started, 1e-9)
            print(f"{done:>12,} {rss_mib():>9.1f} {peak_mib():>9.1f} {speed:>11,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
