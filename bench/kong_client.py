"""Benchmark: target weight updates through KongAdmin vs. the same PATCH with bare httpx.

Starts the local Kong-compatible server (profile 3.9) in a thread, then measures requests/s and
p50/p99 latency, sequentially and with 32 threads sharing one client. The baseline sends the
identical PATCH with a plain ``httpx.Client`` in the same run, so the ratio shows what the
KongAdmin layer (normalising, validation, streaming with a deadline, parsing) costs.

Then the CPU one Admin API GET costs the calling thread (``time.thread_time``, so waiting for
the server is not counted): through the client the app builds (``build_kong``: metrics event
hooks, the process's request gate, the cookie jar; Prometheus in multiprocess mode as under
``serve``) vs the same GET with a plain ``httpx.Client`` (issue 17 item 8: the per-call cost
on top of plain httpx).

    python bench/kong_client.py [--quick] [--threads 32]

Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import KongSettings

UPSTREAM = "orders"
ROUNDS = 5
CPU_ROUNDS = 10
TARGETS = [f"10.0.0.{i}:80" for i in range(1, 9)]
SEED = {
    "upstreams": [{"name": UPSTREAM, "targets": [{"target": t, "weight": 100} for t in TARGETS]}]
}


def measure(op: Callable[[int], None], count: int, threads: int) -> tuple[float, list[float]]:
    """Run ``op(i)`` ``count`` times on ``threads`` threads; (wall seconds, latencies in s)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(i: int) -> None:
        start = time.perf_counter()
        op(i)
        elapsed = time.perf_counter() - start
        with lock:
            latencies.append(elapsed)

    started = time.perf_counter()
    if threads == 1:
        for i in range(count):
            timed(i)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(timed, range(count)))
    return time.perf_counter() - started, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_per_call(ops: dict[str, Callable[[], object]], count: int) -> dict[str, list[float]]:
    """CPU seconds of the calling thread per call of each op, one figure per round; rounds
    alternate the ops so drift (a busy neighbour, the server's GC) hits them alike."""
    for op in ops.values():  # warm up: connections, caches
        for _ in range(50):
            op()
    per_round = max(1, count // CPU_ROUNDS)
    figures: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(CPU_ROUNDS):
        for name, op in ops.items():
            started = time.thread_time()
            for _ in range(per_round):
                op()
            figures[name].append((time.thread_time() - started) / per_round)
    return figures


def get_cost(server_url: str, count: int) -> dict[str, list[float]]:
    """CPU per ``GET /upstreams/{u}`` through the app's client vs a plain ``httpx.Client``.
    Metrics go to a temporary multiprocess directory, as each ``serve`` worker writes them."""
    directory = tempfile.mkdtemp(prefix="bench-kong-client-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from sidecar.kong.build import build_kong  # imports prometheus_client: after the env
    from sidecar.settings import Settings

    kong = build_kong(Settings(kong=KongSettings(admin_url=server_url)))
    try:
        with httpx.Client(base_url=server_url, timeout=5.0) as bare:
            kong.info()

            def plain() -> None:
                bare.get(f"/upstreams/{UPSTREAM}").raise_for_status().json()

            return cpu_per_call(
                {"KongAdmin": lambda: kong.upstream(UPSTREAM), "bare httpx": plain}, count
            )
    finally:
        kong.close()
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a few seconds)")
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args(argv)
    sequential, concurrent = (150, 300) if args.quick else (1500, 3000)

    with serve_in_thread("3.9", seed=SEED) as server:
        settings = KongSettings(admin_url=server.url, max_connections=max(64, args.threads))
        weights = itertools.cycle(range(1, 1000))
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        with (
            build_http_client(settings) as http,
            httpx.Client(base_url=server.url, limits=limits, timeout=5.0) as bare,
        ):
            admin = KongAdmin(http)
            admin.info()  # flavour detection is a one-off, not part of the steady state

            def via_client(i: int) -> None:
                admin.update_target(UPSTREAM, TARGETS[i % len(TARGETS)], weight=next(weights))

            def via_httpx(i: int) -> None:
                target = TARGETS[i % len(TARGETS)]
                response = bare.patch(
                    f"/upstreams/{UPSTREAM}/targets/{target}", json={"weight": next(weights)}
                )
                response.raise_for_status()
                response.json()

            ops = {"KongAdmin": via_client, "bare httpx": via_httpx}
            rows = []
            for threads, count in ((1, sequential), (args.threads, concurrent)):
                for op in ops.values():  # warm up: connections, caches
                    measure(op, min(count, 50), threads)
                # alternate in rounds: the server shares our 2 cores, so drift hits both sides
                totals = {name: (0.0, []) for name in ops}
                for _ in range(ROUNDS):
                    for name, op in ops.items():
                        wall, lat = measure(op, count // ROUNDS, threads)
                        totals[name] = (totals[name][0] + wall, totals[name][1] + lat)
                rows += [(name, threads, *totals[name]) for name in ops]
        gets = get_cost(server.url, sequential * 2)

    print(f"{'client':<11} {'threads':>7} {'requests':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    rates: dict[tuple[str, int], float] = {}
    p50s: dict[tuple[str, int], float] = {}
    for name, threads, wall, lat in rows:
        rates[(name, threads)] = len(lat) / wall
        p50s[(name, threads)] = statistics.median(lat) * 1000
        print(
            f"{name:<11} {threads:>7} {len(lat):>8} {len(lat) / wall:>8.0f} "
            f"{statistics.median(lat) * 1000:>7.2f} {percentile(lat, 0.99) * 1000:>7.2f}"
        )
    for threads in (1, args.threads):
        ratio = rates[("KongAdmin", threads)] / rates[("bare httpx", threads)]
        p50 = p50s[("KongAdmin", threads)] / p50s[("bare httpx", threads)]
        print(f"ratio KongAdmin/baseline, {threads:>2} thread(s): "
              f"throughput {ratio:.2f}x, p50 latency {p50:.2f}x")  # fmt: skip
    print(f"\n{'GET /upstreams/{u}':<18} {'calls':>6} {'CPU ms/call':>11}")
    cpu = {name: statistics.median(figures) * 1000 for name, figures in gets.items()}
    for name, figures in gets.items():
        calls = len(figures) * max(1, sequential * 2 // CPU_ROUNDS)
        print(f"{name:<18} {calls:>6} {cpu[name]:>11.3f}")
    print(f"CPU per GET KongAdmin/baseline: {cpu['KongAdmin'] / cpu['bare httpx']:.2f}x "
          f"({cpu['KongAdmin'] - cpu['bare httpx']:+.3f} ms/call)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
