"""Benchmark: ``PUT /v1/upstreams/{u}/split`` end to end vs the same Kong writes sent directly.

Three processes, as in production: Kong is the local Kong-compatible server (profile 3.9,
``kong-canary kong-local``, keep-alive connections) or a real Kong (``--kong-admin-url``);
the sidecar runs as ``kong-canary serve`` (gunicorn, gthread, 2 workers x 4 threads); the
clients run here. ``--in-process`` serves the app with werkzeug in a thread here instead
(cProfile/py-spy see the sidecar, but it then shares this process's GIL with the clients).

1. Latency of one ramp step (90/5/5 <-> 95/2.5/2.5), 1 client and ``--clients`` (32)
   concurrent clients, each on its own upstream (one upstream's changes are serialised).
   The baseline is the exact list of writes the sidecar reports for the same step
   (``dry_run``; checked equal to what it then applies), sent to Kong with one plain
   ``httpx.Client`` in the sidecar's order and batches; a second baseline makes the two
   GETs the sidecar reads first (the upstream and /health, at once) and then those writes.
   Rounds alternate the three paths so drift hits all. With baseline = canary the sidecar
   rewrites only stable's weights, so two upstream shapes: 1 stable target (1 write) and 4
   (4 writes, one parallel batch). Target: p50 and p99 ratio sidecar/direct <= 1.3.
2. Canary 5% -> 10% on an upstream with 1,000 targets (800 stable, 100 baseline, 100
   canary): 90/5/5 -> 80/10/10 end to end, writes in parallel batches of 8. Target < 1 s.
   The same writes sent directly (same batches, 8 parallel; and one by one) are shown too;
   ``batches`` counts the groups the planner's order allows to go out in parallel.

    python bench/split_api.py [--quick] [--clients 32] [--in-process] [--workers 2]
    python bench/split_api.py --kong-admin-url http://kong:8001 [--kong-admin-token T]

Prints a table; writes nothing to the repository (on a real Kong it creates upstreams
named ``bench-…-<random>`` and deletes them).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import secrets
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

from sidecar.core.tags import COHORT_TAG_PREFIX  # noqa: E402
from sidecar.core.upstream_lock import Claim, lock_name  # noqa: E402
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
TARGET_OWN = 1.15  # issue 17 item 8: sidecar p50 / every Kong call it makes, sent directly
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


def big_upstream(name: str) -> dict[str, Any]:
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
    return {"name": name, "targets": targets}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn_sidecar(kong_url: str, workers: int, admin_token: str | None) -> Iterator[str]:
    """``kong-canary serve`` as production runs it; access log to /dev/null."""
    port = free_port()
    env = {"KONG_CANARY_TOKENS": f"bench:admin={TOKEN}", "KONG_CANARY_LOG_LEVEL": "warning"}
    if admin_token:
        env["KONG_CANARY_KONG_ADMIN_TOKEN"] = admin_token
    args = ["serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    args += ["--kong-admin-url", kong_url]
    with cli_process(args, env, f"http://127.0.0.1:{port}", "/readyz", "the sidecar") as url:
        yield url


@contextlib.contextmanager
def cli_process(
    args: list[str],
    env: dict[str, str],
    url: str,
    ready_path: str,
    what: str,
    ready_within: float = 30.0,
) -> Iterator[str]:
    """``python -m sidecar <args>`` from this checkout, once ``url + ready_path`` answers
    200 (within ``ready_within`` seconds); stopped on exit."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": path, **env}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve makes and removes its own
    command = [sys.executable, "-m", "sidecar", *args]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command, env=full_env, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            alive = lambda: proc.poll() is None  # noqa: E731
            wait_until(url + ready_path, alive, errors, what=what, within=ready_within)
            yield url
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def werkzeug_sidecar(kong_url: str, admin_token: str | None) -> Iterator[str]:
    """The app under werkzeug's threaded server in this process (like tests/api)."""
    from werkzeug.serving import make_server

    from sidecar.app import close_app, create_app
    from sidecar.kong_local.keepalive import KeepAliveHandler, close_open_connections
    from sidecar.settings import ApiToken, KongSettings, Settings

    settings = Settings(
        tokens=(ApiToken("bench", TOKEN, "admin"),),
        kong=KongSettings(admin_url=kong_url, admin_token=admin_token),
    )

    class Quiet(KeepAliveHandler):  # keep-alive, as gunicorn gives the clients
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # gunicorn's access log goes to /dev/null too

    app = create_app(settings, sweep_leases=False)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        wait_until(f"{url}/readyz", lambda: True, None, what="the sidecar")
        yield url
    finally:
        server.shutdown()
        close_open_connections(server)
        server.server_close()
        close_app(app)


def wait_until(
    url: str, alive: Callable[[], bool], errors: Any, *, what: str, within: float = 30.0
) -> None:
    """Until ``url`` answers 200 (``within`` seconds at most, and only while the process is
    alive)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive():
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    tail = ""
    if errors is not None:
        errors.seek(0)
        tail = errors.read().decode(errors="replace")[-2000:]
    raise SystemExit(f"{what} at {url} did not become ready:\n{tail}")


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
    kong: httpx.Client,
    upstream: str,
    writes: list[KongWrite],
    pool: ThreadPoolExecutor | None = None,
) -> None:
    """The writes in the sidecar's order; with a ``pool``, in its parallel batches, like it
    (a pool kept for the run, as the sidecar keeps one: no thread start-up per batch)."""
    if pool is None:
        for write in writes:
            send_direct(kong, upstream, write)
        return
    for batch in write_batches(writes):  # as TrafficService._apply: chunks of 8, one by one
        for start in range(0, len(batch), PARALLEL_WRITES):
            chunk = batch[start : start + PARALLEL_WRITES]
            if len(chunk) == 1:
                send_direct(kong, upstream, chunk[0])
            else:
                list(pool.map(lambda w: send_direct(kong, upstream, w), chunk))


def read_direct(kong: httpx.Client, upstream: str, pool: ThreadPoolExecutor) -> None:
    """What the sidecar reads before a change: the upstream and its /health (the target
    list with health), at once."""
    calls = [pool.submit(kong.get, f"/upstreams/{upstream}{tail}") for tail in ("", "/health")]
    for call in calls:
        response = call.result()
        response.raise_for_status()
        response.json()


def read_pair(kong: httpx.Client, pool: ThreadPoolExecutor, *paths: str) -> list[Any]:
    """GETs sent at once (as the sidecar reads an upstream and its targets), all answered."""
    calls = [pool.submit(kong.get, path) for path in paths]
    answers = [call.result().raise_for_status() for call in calls]
    return [answer.json() for answer in answers]


def change_calls_direct(
    kong: httpx.Client, upstream: str, writes: list[KongWrite], pool: ThreadPoolExecutor
) -> None:
    """Every Kong call a writing change must make, as the sidecar makes them (issue 13):
    read the upstream and its health (at once), take the lock (create the lock entity),
    read both again under it, the writes, read back the upstream and its targets (at
    once), list the upstream's cohort post-functions, release the lock (delete it by id).
    Nothing of the sidecar's own work.

    The cohort listing (``GET /plugins?tags=kong-canary-cohorts=<u>``, Kong's server-side
    tag filter: one short page) is required: the cohorts' post-functions and shadow
    upstreams live only in Kong, any replica may create them (under the upstream's lock),
    and the upstream itself carries no mark of them, so only this read tells whether the
    shadows must follow the change (``sidecar.cohorts.CohortService.observe``). Nothing
    seen before the change can stand in for it: it is read under the lock, after the
    writes (the preparer may have just switched the post-functions)."""
    u = quote(upstream, safe="")
    state = (f"/upstreams/{u}", f"/upstreams/{u}/health?size=1000")
    read_pair(kong, pool, *state)
    claim = Claim(upstream, "bench", time.time() + 30)
    lock = kong.post("/upstreams", json={"name": lock_name(upstream), "tags": list(claim.tags())})
    lock_id = lock.raise_for_status().json()["id"]
    try:
        read_pair(kong, pool, *state)
        apply_direct(kong, upstream, writes, pool)
        read_pair(kong, pool, f"/upstreams/{u}", f"/upstreams/{u}/targets?size=1000")
        cohorts = quote(f"{COHORT_TAG_PREFIX}{upstream}", safe="")
        kong.get(f"/plugins?tags={cohorts}&size=1000").raise_for_status().json()
    finally:
        kong.delete(f"/upstreams/{lock_id}").raise_for_status()


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


class Caller:
    """The sidecar's caller as the bench plays it in the ``sidecar`` path: one keep-alive
    HTTP/1.1 connection per upstream (``http.client``; a lane is driven by one thread at a
    time, and its connection outlives the rounds' thread pools), the body encoded and the
    answer read and decoded on every call. Orca calls the sidecar from the JVM (OkHttp),
    where a request costs a small fraction of what ``httpx`` costs in Python: measured
    here, an ``httpx`` PUT spends ~1.2 ms of the caller's own CPU, this ~0.4 ms. That is
    the caller's cost, not the sidecar's; with ``httpx`` in front the own ratio would
    count ~0.8 ms of it as the sidecar's. The ``sidecar (httpx)`` path keeps the httpx
    figure in the table."""

    def __init__(self, url: str, token: str) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connections: dict[str, http.client.HTTPConnection] = {}

    def put_split(self, upstream: str, split: Split) -> Any:
        body = json.dumps({"split": split}).encode()
        try:
            answer, data = self._send(upstream, body)
        except (ConnectionError, http.client.HTTPException):
            # the sidecar closed the connection while it sat idle (gunicorn's keep-alive is
            # 5 s; other paths' rounds may last longer): a PUT of a split is idempotent
            self.connections.pop(upstream).close()
            answer, data = self._send(upstream, body)
        if answer.status != 200:
            raise SystemExit(f"PUT {upstream} {split}: {answer.status} {data[:500]!r}")
        return json.loads(data)

    def _send(self, upstream: str, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self.connections.get(upstream)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.connections[upstream] = conn
        conn.request("PUT", f"/v1/upstreams/{upstream}/split", body=body, headers=self.headers)
        answer = conn.getresponse()
        return answer, answer.read()

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()


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

    def via_caller(self, caller: Caller) -> None:
        """The same PUT as :meth:`via_sidecar`, from a lean caller (see :class:`Caller`)."""
        caller.put_split(self.upstream, self.splits[1 - self.at])
        self.at = 1 - self.at

    def direct(self, kong: httpx.Client, read_first: bool = False) -> None:
        if read_first:
            read_direct(kong, self.upstream, self.pool)
        apply_direct(kong, self.upstream, self.writes[self.at], self.pool)
        self.at = 1 - self.at

    def calls_direct(self, kong: httpx.Client) -> None:
        change_calls_direct(kong, self.upstream, self.writes[self.at], self.pool)
        self.at = 1 - self.at

    @functools.cached_property
    def pool(self) -> ThreadPoolExecutor:
        """This client's threads for parallel calls, kept for the run."""
        return ThreadPoolExecutor(PARALLEL_WRITES, f"direct-{self.upstream}")

    def close(self) -> None:
        if "pool" in self.__dict__:
            self.pool.shutdown()


# ---- measuring --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    gets: int | None = 0  # None: not counted (a real Kong)
    writes: int | None = 0
    renewals: int = 0  # lease renewals (an upstream tag write) among the timed ops


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


class KongCalls:
    """The calls the local Kong received, from its test controls (it runs in a process of
    its own)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def _calls(self) -> list[list[str]]:
        return self.http.get("/_kong_local/calls").raise_for_status().json()["calls"]

    def mark(self) -> int:
        return len(self._calls())

    def count(self, since: int) -> tuple[int, int]:
        """(GETs, writes): every call a change makes (upstream paths, the lock's create
        and delete, the cohort listing), not the periodic sweeps' unfiltered or
        managed-tag listings (``GET /upstreams?…``, ``GET /plugins?size=…``) nor ``GET /``."""
        calls = [c for c in self._calls()[since:] if not background(*c)]
        gets = sum(1 for method, _ in calls if method == "GET")
        return gets, len(calls) - gets


def background(method: str, path: str) -> bool:
    """A call of the sidecar's timers (lease sweeper, cohort refresh), not of a change."""
    if method != "GET":
        return False
    route, _, query = path.partition("?")
    if route == "/":
        return True
    return route in ("/upstreams", "/plugins") and "kong-canary-cohorts" not in query


def lease_tags(kong: httpx.Client, lanes: list[Lane]) -> list[list[str]]:
    """Each lane's lease tag: the sidecar rewrites it when a lease is renewed (at most once a
    minute), a write the direct paths do not make."""
    tags = [kong.get(f"/upstreams/{lane.upstream}").json()["tags"] or [] for lane in lanes]
    return [[t for t in ts if t.startswith("kong-canary-lease=")] for ts in tags]


def call_mark(kong: KongCalls | None) -> int:
    return kong.mark() if kong is not None else 0


def count_calls(kong: KongCalls | None, since: int) -> tuple[int, int] | None:
    """None for a real Kong, which does not tell."""
    return kong.count(since) if kong is not None else None


@dataclass
class Context:
    kong: KongCalls | None  # None: a real Kong (--kong-admin-url)
    sidecar: httpx.Client  # dry runs, checks and the ``sidecar (httpx)`` path
    caller: Caller  # the ``sidecar`` path
    direct: httpx.Client


def latency(ctx: Context, lanes: list[Lane], rounds: int, ops: int) -> dict[str, Sample]:
    paths: dict[str, Callable[[Lane], None]] = {
        "sidecar": lambda lane: lane.via_caller(ctx.caller),
        "sidecar (httpx)": lambda lane: lane.via_sidecar(ctx.sidecar),
        "direct": lambda lane: lane.direct(ctx.direct),
        "reads+direct": lambda lane: lane.direct(ctx.direct, read_first=True),
        "kong calls": lambda lane: lane.calls_direct(ctx.direct),
    }
    for op in paths.values():  # warm up: connections, each gunicorn worker's first call
        run_lanes(lanes, op, 2, Sample())
    samples = {name: Sample() for name in paths}
    for _ in range(rounds):
        for name, op in paths.items():
            leases = lease_tags(ctx.direct, lanes) if name.startswith("sidecar") else None
            mark = call_mark(ctx.kong)
            run_lanes(lanes, op, ops, samples[name])
            counted = count_calls(ctx.kong, mark)
            if leases is not None:  # a renewal is one more write (the upstream's tag)
                after = lease_tags(ctx.direct, lanes)
                samples[name].renewals += sum(a != b for a, b in zip(leases, after, strict=True))
            if counted is None:
                samples[name].gets = samples[name].writes = None
            else:
                samples[name].gets += counted[0]  # type: ignore[operator]
                samples[name].writes += counted[1]  # type: ignore[operator]
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
    gets: int | None
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


def thousand_targets(ctx: Context, repeats: int, big: str) -> list[BigRun]:
    """90/5/5 -> 80/10/10 on 1,000 targets, each path ``repeats`` times; between runs Kong
    is put back by the reverse writes (untimed), and checked after every run."""
    before = kong_weights(ctx.direct, big)
    plan = to_kong_writes(put_split(ctx.sidecar, big, BIG_TO, dry_run=True)["writes"])
    after: Weights = {}  # Kong's weights after the sidecar's PUT (the first run of each round)
    batches = len(write_batches(plan))
    runs = [
        BigRun("sidecar PUT", PARALLEL_WRITES, len(plan), batches, 0, []),
        BigRun("direct, 8 parallel", PARALLEL_WRITES, len(plan), batches, 0, []),
        BigRun("direct, one by one", 1, len(plan), len(plan), 0, []),
    ]
    back = undo(plan)
    with ThreadPoolExecutor(PARALLEL_WRITES, "direct-big") as pool:
        for _ in range(repeats):
            for run in runs:
                mark = call_mark(ctx.kong)
                started = time.perf_counter()
                if run.path == "sidecar PUT":
                    result = put_split(ctx.sidecar, big, BIG_TO)
                    if to_kong_writes(result["writes"]) != plan:
                        raise SystemExit("the sidecar's writes are not its dry run's")
                    run.writes = len(result["writes"])
                    after = after or weights_of(result)
                else:
                    apply_direct(ctx.direct, big, plan, pool if run.parallel > 1 else None)
                run.seconds.append(time.perf_counter() - started)
                counted = count_calls(ctx.kong, mark)
                run.gets = counted[0] if counted is not None else None
                if kong_weights(ctx.direct, big) != after:
                    raise SystemExit(f"{run.path}: Kong is not at the sidecar's 80/10/10 weights")
                apply_direct(ctx.direct, big, back, pool)
                if kong_weights(ctx.direct, big) != before:
                    raise SystemExit("putting the 1,000 targets back to 90/5/5 failed")
    return runs


@contextlib.contextmanager
def environment(seed: dict[str, Any], args: argparse.Namespace) -> Iterator[Context]:
    """A seeded Kong, the sidecar in front of it, and a client for each."""
    # every client's writes may all be in flight at once, plus its reads
    most = max(64, args.clients * (PARALLEL_WRITES + 1))
    limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)
    with kong_seeded(seed, args) as (kong_url, local):
        serving = (
            werkzeug_sidecar(kong_url, args.kong_admin_token)
            if args.in_process
            else gunicorn_sidecar(kong_url, args.workers, args.kong_admin_token)
        )
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with (
            serving as url,
            httpx.Client(base_url=url, headers=auth, limits=limits, timeout=30) as sidecar,
            httpx.Client(
                base_url=kong_url, headers=admin_headers(args), limits=limits, timeout=30
            ) as direct,
        ):
            caller = Caller(url, TOKEN)
            try:
                yield Context(local, sidecar, caller, direct)
            finally:
                caller.close()


def admin_headers(args: argparse.Namespace) -> dict[str, str]:
    return {"Kong-Admin-Token": args.kong_admin_token} if args.kong_admin_token else {}


@contextlib.contextmanager
def local_kong(seed: dict[str, Any], ready_within: float = 30.0) -> Iterator[str]:
    """``kong-canary kong-local`` (profile 3.9) in a process of its own: its GIL is not the
    benchmark clients' (the direct path's latency would include waiting for Kong's
    threads, and Kong's for the clients'), as a real Kong is not. It loads its seed one
    upstream at a time: give a big one ``ready_within`` seconds (10,000: about a minute)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        seed_file = Path(tmp) / "seed.json"
        seed_file.write_text(json.dumps(seed))
        args = ["kong-local", "--bind", f"127.0.0.1:{port}", "--seed", str(seed_file)]
        args += ["--test-controls", "--quiet"]
        url = f"http://127.0.0.1:{port}"
        with cli_process(args, {}, url, "/", "the local Kong", ready_within) as url:
            yield url


@contextlib.contextmanager
def kong_seeded(
    seed: dict[str, Any], args: argparse.Namespace
) -> Iterator[tuple[str, KongCalls | None]]:
    """The local Kong (profile 3.9) holding ``seed``; or, with ``--kong-admin-url``, a real
    Kong where the bench creates the seed's upstreams (refusing names already taken) and
    deletes them at the end."""
    if args.kong_admin_url is None:
        with local_kong(seed) as url:
            calls = KongCalls(url)
            try:
                yield url, calls
            finally:
                calls.http.close()
        return
    created: list[str] = []
    with httpx.Client(
        base_url=args.kong_admin_url, headers=admin_headers(args), timeout=30
    ) as kong:
        try:
            for upstream in seed["upstreams"]:
                name = upstream["name"]
                status = kong.get(f"/upstreams/{name}").status_code
                if status != 404:
                    found = "exists" if status == 200 else f"answers {status}"
                    raise SystemExit(f"upstream {name} {found} on that Kong: not touching it")
                kong.post("/upstreams", json={"name": name}).raise_for_status()
                created.append(name)
                with ThreadPoolExecutor(PARALLEL_WRITES) as pool:
                    for answer in pool.map(
                        lambda t, name=name: kong.post(f"/upstreams/{name}/targets", json=t),
                        upstream["targets"],
                    ):
                        answer.raise_for_status()
            yield args.kong_admin_url, None
        finally:
            for name in created:
                if kong.delete(f"/upstreams/{name}").status_code not in (204, 404):
                    print(f"could not delete upstream {name}: delete it by hand", file=sys.stderr)


# ---- report -----------------------------------------------------------------------------


def per_op(count: int | None, ops: int) -> str:
    """Calls per operation, or "-" where Kong does not tell (a real one)."""
    if count is None:
        return "-"
    return f"{count / ops:.1f}" if ops > 1 else str(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (a few seconds)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--in-process", action="store_true", help="werkzeug in this process, not gunicorn"
    )
    parser.add_argument(
        "--kong-admin-url",
        default=os.environ.get("KONG_ADMIN_URL"),
        help="a real Kong's Admin API (default $KONG_ADMIN_URL; unset: the local server). "
        "The bench creates its own upstreams there and deletes them.",
    )
    parser.add_argument(
        "--kong-admin-token",
        default=os.environ.get("KONG_ADMIN_TOKEN"),
        help="RBAC token for that Kong (default $KONG_ADMIN_TOKEN)",
    )
    args = parser.parse_args(argv)
    # (rounds, ops per round) for 1 client and for N clients; repeats of the 1,000-target move
    single, multi, repeats = ((2, 5), (2, 1), 1) if args.quick else ((50, 3), (5, 2), 3)
    # on a real Kong, names nobody else uses
    run = f"-{secrets.token_hex(3)}" if args.kong_admin_url else ""
    shapes = {label: (f"{prefix}{run}", *rest) for label, (prefix, *rest) in SHAPES.items()}
    big_name = f"{BIG}{run}"

    smalls = [
        small_upstream(prefix, i, *shape)
        for prefix, *shape in shapes.values()
        for i in range(args.clients)
    ]
    rows = []
    with environment({"upstreams": smalls}, args) as ctx:
        for shape, (prefix, *_) in shapes.items():
            lanes = [Lane(f"{prefix}-{i:02d}", RAMP_STEP) for i in range(args.clients)]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda lane: lane.calibrate(ctx.sidecar), lanes))
            for clients, (rounds, ops) in ((1, single), (args.clients, multi)):
                samples = latency(ctx, lanes[:clients], rounds, ops)
                rows.append((shape, clients, samples))
            for lane in lanes:
                lane.close()
    # A Kong of its own: the local server's per-write cost may grow with its whole store.
    with environment({"upstreams": [big_upstream(big_name)]}, args) as ctx:
        big = thousand_targets(ctx, repeats, big_name)

    server = "in-process werkzeug" if args.in_process else f"gunicorn {args.workers}x4 threads"
    print(f"PUT /v1/upstreams/{{u}}/split (sidecar: {server}; its caller: one keep-alive")
    print("http.client connection per client, or httpx in 'sidecar (httpx)') vs the same Kong")
    print("writes sent directly with one httpx client (direct), vs the reads the sidecar makes")
    print("first plus those writes (reads+direct), and vs every Kong call it makes (kong calls)")
    print(f"Kong: {args.kong_admin_url or 'local 3.9 server on loopback'}")
    print(
        f"{'upstream':<16} {'clients':>7} {'path':<15} {'ops':>5} "
        f"{'Kong GET/op':>11} {'writes/op':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    ratios = []
    for shape, clients, samples in rows:
        for name, s in samples.items():
            n = len(s.latencies)
            print(
                f"{shape:<16} {clients:>7} {name:<15} {n:>5} {per_op(s.gets, n):>11} "
                f"{per_op(s.writes, n):>9} {statistics.median(s.latencies) * 1000:>8.2f} "
                f"{percentile(s.latencies, 0.99) * 1000:>8.2f}"
            )
        side = samples["sidecar"].latencies
        against = [samples[b].latencies for b in ("direct", "reads+direct", "kong calls")]
        with_httpx = statistics.median(samples["sidecar (httpx)"].latencies)
        ratios.append(
            (
                shape,
                clients,
                [statistics.median(side) / statistics.median(b) for b in against]
                + [with_httpx / statistics.median(against[-1])],
                [percentile(side, 0.99) / percentile(b, 0.99) for b in against],
            )
        )
    print(
        f"\nratio sidecar/direct (target <= {TARGET_RATIO}); sidecar/(reads+direct); "
        "sidecar/(kong calls): the sidecar's own cost beyond every Kong call it must make "
        f"(target p50 <= {TARGET_OWN} with 1 client); httpx own: the same with an httpx caller"
    )
    print(
        f"{'upstream':<16} {'clients':>7} {'p50':>7} {'p99':>7} {'met':>4} "
        f"{'reads p50':>9} {'reads p99':>9} {'own p50':>8} {'own p99':>8} {'met':>4} "
        f"{'httpx own p50':>13}"
    )
    for shape, clients, p50, p99 in ratios:
        met = "yes" if max(p50[0], p99[0]) <= TARGET_RATIO else "no"
        own_met = "yes" if p50[2] <= TARGET_OWN else "no"
        print(
            f"{shape:<16} {clients:>7} {p50[0]:>6.2f}x {p99[0]:>6.2f}x {met:>4} "
            f"{p50[1]:>8.2f}x {p99[1]:>8.2f}x {p50[2]:>7.2f}x {p99[2]:>7.2f}x {own_met:>4} "
            f"{p50[3]:>12.2f}x"
        )
    renewals = sum(
        s.renewals for _, _, samples in rows for name, s in samples.items() if "sidecar" in name
    )
    if renewals:
        print(
            f"({renewals} timed sidecar op(s) also renewed a lease: one more Kong write each, "
            "which the direct paths do not make)"
        )

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
            f"{run.path:<20} {run.writes:>6} {run.batches:>7} {per_op(run.gets, 1):>8} "
            f"{statistics.median(run.seconds):>9.3f} {worst:>7.3f} {met:>7}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
