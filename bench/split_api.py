"""Benchmark: ``PUT /v1/upstreams/{u}/split`` end to end vs the same Kong writes sent directly.

Kong is the local Kong-compatible server (profile 3.9) in a thread of this process. The
sidecar runs as ``kong-canary serve`` (gunicorn, gthread, 2 workers x 4 threads: what
production runs) in a subprocess pointed at it; ``--in-process`` serves the app with
werkzeug in a thread here instead (quicker start, and cProfile/py-spy see the sidecar, but
the sidecar then shares this process's GIL with Kong and the clients).

1. Latency of one ramp step (90/5/5 <-> 95/2.5/2.5), 1 client and ``--clients`` (32)
   concurrent clients, each on its own upstream (one upstream's changes are serialised).
   The baseline is the exact list of writes the sidecar reports for the same step
   (``dry_run``; checked equal to what it then applies), sent to Kong with one plain
   ``httpx.Client`` in the sidecar's order and batches; rounds alternate sidecar / direct so
   drift hits both sides. With baseline = canary the sidecar rewrites only stable's
   weights, so two upstream shapes: 1 stable target (1 write) and 4 (4 writes, one parallel
   batch). The sidecar also reads upstream, targets and health before writing and again
   after ("Kong GET/op"). Target: p50 and p99 ratio <= 1.3.
2. Canary 5% -> 10% on an upstream with 1,000 targets (800 stable, 100 baseline, 100
   canary): 90/5/5 -> 80/10/10 end to end, writes in parallel batches of 8. Target < 1 s.
   The same writes sent directly (same batches, 8 parallel; and one by one) are shown too;
   ``batches`` counts the groups the planner's order allows to go out in parallel.

    python bench/split_api.py [--quick] [--clients 32] [--in-process] [--workers 2]

Prints a table; writes nothing to the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout

from sidecar.kong_local.server import RunningServer, serve_in_thread  # noqa: E402
from sidecar.traffic import KongWrite, write_batches  # noqa: E402

TOKEN = "bench-split-token-0123456789abcdef"
TAGS = ("managed-by=kong-canary",)
Weights = dict[str, int]
Split = dict[str, float]

# A ramp step, back and forth: between non-stable splits with baseline = canary the sidecar
# moves stable's weight only (fewest writes), so writes/op = number of stable targets.
RAMP_STEP: tuple[Split, Split] = (
    {"stable": 90, "baseline": 5, "canary": 5},
    {"stable": 95, "baseline": 2.5, "canary": 2.5},
)
# label -> (upstream name prefix, stable targets, their weight at 90/5/5, baseline/canary's)
SHAPES = {"1 stable target": ("bench-a", 1, 18, 1), "4 stable targets": ("bench-b", 4, 9, 2)}
BIG = "bench-1000"
BIG_FROM = {"stable": 90, "baseline": 5, "canary": 5}
BIG_TO = {"stable": 80, "baseline": 10, "canary": 10}
PARALLEL_WRITES = 8  # TrafficService's default, which create_app keeps
TARGET_RATIO = 1.3
TARGET_SECONDS = 1.0


def small_upstream(prefix: str, index: int, stables: int, weight: int, other: int) -> Any:
    """``stables`` stable targets, one baseline, one canary, at 90/5/5."""
    variants = [("stable", weight)] * stables + [("baseline", other), ("canary", other)]
    return {
        "name": f"{prefix}-{index:02d}",
        "targets": [
            {"target": f"10.0.{index}.{n}:80", "weight": w, "tags": [f"variant={v}", *TAGS]}
            for n, (v, w) in enumerate(variants, 1)
        ],
    }


def big_upstream() -> dict[str, Any]:
    """800 stable / 100 baseline / 100 canary targets at 90/5/5 (weights 9/4/4)."""
    targets = []
    for i in range(1000):
        variant = "stable" if i < 800 else "baseline" if i < 900 else "canary"
        weight = 9 if variant == "stable" else 4
        targets.append(
            {
                "target": f"10.1.{i // 250}.{i % 250 + 1}:80",
                "weight": weight,
                "tags": [f"variant={variant}", *TAGS],
            }
        )
    return {"name": BIG, "targets": targets}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn_sidecar(kong_url: str, workers: int) -> Iterator[str]:
    """``kong-canary serve`` as production runs it; access log to /dev/null."""
    port = free_port()
    env = {
        **os.environ,
        "KONG_CANARY_TOKENS": f"bench:admin={TOKEN}",
        "KONG_CANARY_LOG_LEVEL": "warning",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve makes and removes its own
    command = [sys.executable, "-m", "sidecar", "serve", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--kong-admin-url", kong_url]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, lambda: proc.poll() is None, errors)
            yield url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextlib.contextmanager
def werkzeug_sidecar(kong_url: str) -> Iterator[str]:
    """The app under werkzeug's threaded server in this process (like tests/api)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    from sidecar.app import create_app
    from sidecar.settings import ApiToken, KongSettings, Settings

    settings = Settings(
        tokens=(ApiToken("bench", TOKEN, "admin"),), kong=KongSettings(admin_url=kong_url)
    )

    class Quiet(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # gunicorn's access log goes to /dev/null too

    app = create_app(settings, sweep_leases=False)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        wait_ready(url, lambda: True, None)
        yield url
    finally:
        server.shutdown()
        server.server_close()


def wait_ready(url: str, alive: Callable[[], bool], errors: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not alive():
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    tail = ""
    if errors is not None:
        errors.seek(0)
        tail = errors.read().decode(errors="replace")[-2000:]
    raise SystemExit(f"the sidecar at {url} did not become ready:\n{tail}")


# ---- the two paths ----------------------------------------------------------------------


def to_kong_writes(writes: list[dict[str, Any]]) -> list[KongWrite]:
    return [
        KongWrite(
            w["action"],
            w["target"],
            w["variant"],
            w["weight_before"],
            w["weight_after"],
            None,
            tuple(w["tags"]) if "tags" in w else None,
        )
        for w in writes
    ]


def send_direct(kong: httpx.Client, upstream: str, write: KongWrite) -> None:
    """What KongAdmin sends to Kong 3.x for one write (see sidecar/kong/client.py)."""
    base = f"/upstreams/{quote(upstream, safe='')}/targets"
    if write.action == "create":
        body: dict[str, Any] = {"target": write.target, "weight": write.weight_after or 0}
        if write.tags_after:
            body["tags"] = list(write.tags_after)
        response = kong.post(base, json=body)
    elif write.action == "update":
        body = {"weight": write.weight_after}
        if write.tags_after is not None:
            body["tags"] = list(write.tags_after)
        response = kong.patch(f"{base}/{quote(write.target, safe=':')}", json=body)
    else:
        response = kong.delete(f"{base}/{quote(write.target, safe=':')}")
    response.raise_for_status()
    if response.content:
        response.json()


def apply_direct(
    kong: httpx.Client, upstream: str, writes: list[KongWrite], parallel: int = 1
) -> None:
    """The writes in the sidecar's order; with ``parallel`` > 1 in its batches, like it."""
    if parallel == 1:
        for write in writes:
            send_direct(kong, upstream, write)
        return
    for batch in write_batches(writes):
        if len(batch) == 1:
            send_direct(kong, upstream, batch[0])
            continue
        with ThreadPoolExecutor(min(parallel, len(batch))) as pool:
            list(pool.map(lambda w: send_direct(kong, upstream, w), batch))


def put_split(sidecar: httpx.Client, upstream: str, split: Split, dry_run: bool = False) -> Any:
    body: dict[str, Any] = {"split": split}
    if dry_run:
        body["dry_run"] = True
    response = sidecar.put(f"/v1/upstreams/{upstream}/split", json=body)
    if response.status_code != 200:
        raise SystemExit(f"PUT {upstream} {split}: {response.status_code} {response.text[:500]}")
    return response.json()


def weights_of(result: dict[str, Any]) -> Weights:
    return {t["target"]: t["weight"] for t in result["targets"]}


@dataclass
class Lane:
    """One upstream going back and forth between two splits, via the sidecar or directly."""

    upstream: str
    splits: tuple[Split, Split]
    writes: tuple[list[KongWrite], list[KongWrite]] = field(default_factory=lambda: ([], []))
    weights: tuple[Weights, Weights] = field(default_factory=lambda: ({}, {}))
    at: int = 0  # index of the split Kong holds now

    def calibrate(self, sidecar: httpx.Client) -> None:
        """Learn each direction's writes from a dry run, check the real PUT makes exactly
        those, and that the cycle is stable (a third dry run repeats the first)."""
        put_split(sidecar, self.upstream, self.splits[0])  # scale settles on the sidecar's
        self.at = 0
        plans, weights = [], []
        for step in (1, 0):
            plan = put_split(sidecar, self.upstream, self.splits[step], dry_run=True)["writes"]
            done = put_split(sidecar, self.upstream, self.splits[step])
            if done["writes"] != plan:
                raise SystemExit(f"{self.upstream}: dry run {plan} != applied {done['writes']}")
            plans.append(to_kong_writes(plan))
            weights.append(weights_of(done))
        again = put_split(sidecar, self.upstream, self.splits[1], dry_run=True)["writes"]
        if to_kong_writes(again) != plans[0]:
            raise SystemExit(f"{self.upstream}: the move's writes are not stable: {again}")
        self.writes = (plans[0], plans[1])  # writes[i]: from split i to the other one
        self.weights = (weights[1], weights[0])  # weights[i]: Kong's at split i

    def via_sidecar(self, sidecar: httpx.Client) -> None:
        put_split(sidecar, self.upstream, self.splits[1 - self.at])
        self.at = 1 - self.at

    def direct(self, kong: httpx.Client) -> None:
        apply_direct(kong, self.upstream, self.writes[self.at], parallel=PARALLEL_WRITES)
        self.at = 1 - self.at


# ---- measuring --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    gets: int = 0
    writes: int = 0


def run_lanes(lanes: list[Lane], op: Callable[[Lane], None], ops: int, into: Sample) -> None:
    """Every lane on its own thread does ``ops`` changes one after the other."""
    lock = threading.Lock()

    def drive(lane: Lane) -> None:
        mine = []
        for _ in range(ops):
            started = time.perf_counter()
            op(lane)
            mine.append(time.perf_counter() - started)
        with lock:
            into.latencies.extend(mine)

    if len(lanes) == 1:
        drive(lanes[0])
    else:
        with ThreadPoolExecutor(len(lanes)) as pool:
            list(pool.map(drive, lanes))


def count_calls(kong: RunningServer, since: int) -> tuple[int, int]:
    """(GETs, writes) Kong got about upstreams' own paths (the sweeper's list is not ours)."""
    calls = [c for c in kong.app.calls[since:] if c[1].startswith("/upstreams/")]
    gets = sum(1 for method, _ in calls if method == "GET")
    return gets, len(calls) - gets


@dataclass
class Context:
    kong: RunningServer
    sidecar: httpx.Client
    direct: httpx.Client


def latency(ctx: Context, lanes: list[Lane], rounds: int, ops: int) -> dict[str, Sample]:
    paths: dict[str, Callable[[Lane], None]] = {
        "sidecar": lambda lane: lane.via_sidecar(ctx.sidecar),
        "direct": lambda lane: lane.direct(ctx.direct),
    }
    for op in paths.values():  # warm up: connections, each gunicorn worker's first call
        run_lanes(lanes, op, 2, Sample())
    samples = {name: Sample() for name in paths}
    for _ in range(rounds):
        for name, op in paths.items():
            mark = len(ctx.kong.app.calls)
            run_lanes(lanes, op, ops, samples[name])
            gets, writes = count_calls(ctx.kong, mark)
            samples[name].gets += gets
            samples[name].writes += writes
    for lane in lanes:  # both paths must have left Kong exactly where the sidecar would
        got = {
            t["target"]: t["weight"]
            for t in ctx.direct.get(f"/upstreams/{lane.upstream}/targets?size=1000").json()["data"]
        }
        if got != lane.weights[lane.at]:
            raise SystemExit(f"{lane.upstream}: Kong has {got}, expected {lane.weights[lane.at]}")
    return samples


@dataclass
class BigRun:
    path: str
    parallel: int  # direct paths: writes in flight at once
    writes: int
    batches: int  # groups sent one after the other (a group goes out 8 at a time)
    gets: int
    seconds: list[float]


def undo(writes: list[KongWrite]) -> list[KongWrite]:
    """The writes that walk back through the same states (updates only here)."""
    return [
        KongWrite(w.action, w.target, w.variant, w.weight_after, w.weight_before)
        for w in reversed(writes)
    ]


def kong_weights(kong: httpx.Client, upstream: str) -> Weights:
    data = kong.get(f"/upstreams/{upstream}/targets", params={"size": 1000}).json()["data"]
    return {t["target"]: t["weight"] for t in data}


def thousand_targets(ctx: Context, repeats: int) -> list[BigRun]:
    """90/5/5 -> 80/10/10 on 1,000 targets, each path ``repeats`` times; between runs Kong
    is put back by the reverse writes (untimed), and checked after every run."""
    before = kong_weights(ctx.direct, BIG)
    plan = to_kong_writes(put_split(ctx.sidecar, BIG, BIG_TO, dry_run=True)["writes"])
    batches = len(write_batches(plan))
    runs = [
        BigRun("sidecar PUT", PARALLEL_WRITES, len(plan), batches, 0, []),
        BigRun("direct, 8 parallel", PARALLEL_WRITES, len(plan), batches, 0, []),
        BigRun("direct, one by one", 1, len(plan), len(plan), 0, []),
    ]
    back = undo(plan)
    after: Weights = {}
    for _ in range(repeats):
        for run in runs:
            mark = len(ctx.kong.app.calls)
            started = time.perf_counter()
            if run.path == "sidecar PUT":
                result = put_split(ctx.sidecar, BIG, BIG_TO)
                run.writes = len(result["writes"])
                after = after or weights_of(result)  # where every path must leave Kong
            else:
                apply_direct(ctx.direct, BIG, plan, parallel=run.parallel)
            run.seconds.append(time.perf_counter() - started)
            run.gets, _ = count_calls(ctx.kong, mark)
            if kong_weights(ctx.direct, BIG) != after:
                raise SystemExit(f"{run.path}: Kong is not at the sidecar's 80/10/10 weights")
            apply_direct(ctx.direct, BIG, back, parallel=PARALLEL_WRITES)
            if kong_weights(ctx.direct, BIG) != before:
                raise SystemExit("putting the 1,000 targets back to 90/5/5 failed")
    return runs


@contextlib.contextmanager
def environment(seed: dict[str, Any], args: argparse.Namespace) -> Iterator[Context]:
    """A seeded local Kong, the sidecar in front of it, and a client for each."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with serve_in_thread("3.9", seed=seed) as kong:
        serving = (
            werkzeug_sidecar(kong.url)
            if args.in_process
            else gunicorn_sidecar(kong.url, args.workers)
        )
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with (
            serving as url,
            httpx.Client(base_url=url, headers=auth, limits=limits, timeout=30) as sidecar,
            httpx.Client(base_url=kong.url, limits=limits, timeout=30) as direct,
        ):
            yield Context(kong, sidecar, direct)


# ---- report -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (a few seconds)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--in-process", action="store_true", help="werkzeug in this process, not gunicorn"
    )
    args = parser.parse_args(argv)
    # (rounds, ops per round) for 1 client and for N clients; repeats of the 1,000-target move
    single, multi, repeats = ((2, 5), (2, 1), 1) if args.quick else ((5, 30), (5, 2), 3)

    smalls = [
        small_upstream(prefix, i, *shape)
        for prefix, *shape in SHAPES.values()
        for i in range(args.clients)
    ]
    rows = []
    with environment({"upstreams": smalls}, args) as ctx:
        for shape, (prefix, *_) in SHAPES.items():
            lanes = [Lane(f"{prefix}-{i:02d}", RAMP_STEP) for i in range(args.clients)]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda lane: lane.calibrate(ctx.sidecar), lanes))
            for clients, (rounds, ops) in ((1, single), (args.clients, multi)):
                samples = latency(ctx, lanes[:clients], rounds, ops)
                rows.append((shape, clients, samples))
    # A Kong of its own: the local server's per-write cost may grow with its whole store.
    with environment({"upstreams": [big_upstream()]}, args) as ctx:
        big = thousand_targets(ctx, repeats)

    server = "in-process werkzeug" if args.in_process else f"gunicorn {args.workers}x4 threads"
    print(f"PUT /v1/upstreams/{{u}}/split (sidecar: {server}) vs the same Kong writes sent")
    print("directly with one httpx client; Kong: local 3.9 server on loopback")
    print(
        f"{'upstream':<16} {'clients':>7} {'path':<8} {'ops':>5} "
        f"{'Kong GET/op':>11} {'writes/op':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    ratios = []
    for shape, clients, samples in rows:
        for name, s in samples.items():
            n = len(s.latencies)
            print(
                f"{shape:<16} {clients:>7} {name:<8} {n:>5} {s.gets / n:>11.1f} "
                f"{s.writes / n:>9.1f} {statistics.median(s.latencies) * 1000:>8.2f} "
                f"{percentile(s.latencies, 0.99) * 1000:>8.2f}"
            )
        side, base = samples["sidecar"].latencies, samples["direct"].latencies
        p50 = statistics.median(side) / statistics.median(base)
        p99 = percentile(side, 0.99) / percentile(base, 0.99)
        ratios.append((shape, clients, p50, p99))
    print(f"\nratio sidecar/direct (target <= {TARGET_RATIO})")
    print(f"{'upstream':<16} {'clients':>7} {'p50':>7} {'p99':>7} {'met':>4}")
    for shape, clients, p50, p99 in ratios:
        met = "yes" if max(p50, p99) <= TARGET_RATIO else "no"
        print(f"{shape:<16} {clients:>7} {p50:>6.2f}x {p99:>6.2f}x {met:>4}")

    print(
        "\n1,000 targets (800 stable, 100 baseline, 100 canary): 90/5/5 -> 80/10/10, "
        f"{repeats} run(s)"
    )
    print(
        f"{'path':<20} {'writes':>6} {'batches':>7} {'Kong GET':>8} {'median s':>9} {'max s':>7} "
        f"{'< ' + str(TARGET_SECONDS) + ' s':>7}"
    )
    for run in big:
        worst = max(run.seconds)
        met = "yes" if worst < TARGET_SECONDS else "no"
        print(
            f"{run.path:<20} {run.writes:>6} {run.batches:>7} {run.gets:>8} "
            f"{statistics.median(run.seconds):>9.3f} {worst:>7.3f} {met:>7}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
