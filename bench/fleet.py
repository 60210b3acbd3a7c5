"""Benchmark: what a fleet of sidecars costs a big Kong when nothing happens, and rollback-all.

Kong is the local Kong-compatible server (profile 3.9) in a process of its own, holding
``--upstreams`` upstreams (10,000) of which ``--managed`` (500) carry the sidecar's tag and
a canary at 10 % with no lease (nothing expires). In front of it ``--replicas`` (3)
``kong-canary serve`` processes with ``--workers`` (2) gunicorn workers each, as production
runs them, each worker with its own lease sweeper.

1. Idle cost: every request the local Kong receives during ``--window`` seconds once all
   replicas are ready, counted at the server. Every worker's sweep lists the managed
   upstreams; the count is reported per minute and per second at ``--interval`` (the
   lease check interval, 15 s by default). Target: <= 1 request/s in total at 15 s. With
   a shorter ``--interval`` (quick runs) the sweep requests are also projected to 15 s
   (requests per sweep do not depend on the interval; anything else is shown unscaled).
2. ``POST /v1/rollback-all`` on one replica: every managed upstream back to stable, timed;
   then the same writes (found by comparing Kong before and after) sent directly, one by
   one in the same order, with one plain ``httpx.Client`` after Kong is put back: the
   ratio is the sidecar's time over Kong's own write rate. The sidecar also reads each
   upstream, takes its lock in Kong (issue 13: a create and a delete) and reads back, so
   the ratio is not expected near 1.

    python bench/fleet.py                   # the full fleet: ~5 minutes (seeding 10,000)
    python bench/fleet.py --quick           # 1,500 upstreams, 50 managed, 2 s sweeps

Prints a table; writes nothing to the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from split_api import REPO, TOKEN, KongCalls, cli_process, free_port, local_kong

sys.path.insert(0, str(REPO))  # run from a checkout

from sidecar.core.tags import MANAGED_TAG, VARIANT_TAG_PREFIX

PAGE = 1000  # the sweep's page size (sidecar.kong.pages)
TARGET_PER_SECOND = 1.0
REAL_INTERVAL = 15.0


def seed(upstreams: int, managed: int) -> dict[str, Any]:
    """``managed`` upstreams at 90/0/10 with our tags, the rest someone else's."""
    rows: list[dict[str, Any]] = []
    for i in range(upstreams):
        if i < managed:
            host = f"10.{i // 250}.{i % 250}"
            rows.append(
                {
                    "name": f"managed-{i:05d}",
                    "tags": [MANAGED_TAG],
                    "targets": [
                        _target(f"{host}.1:80", 90, "stable"),
                        _target(f"{host}.2:80", 10, "canary"),
                    ],
                }
            )
        else:
            rows.append({"name": f"other-{i:05d}", "tags": ["team=elsewhere"]})
    return {"upstreams": rows}


def _target(address: str, weight: int, variant: str) -> dict[str, Any]:
    return {
        "target": address,
        "weight": weight,
        "tags": [f"{VARIANT_TAG_PREFIX}{variant}", MANAGED_TAG],
    }


@contextlib.contextmanager
def fleet(kong_url: str, replicas: int, workers: int, interval: float) -> Iterator[list[str]]:
    """``replicas`` ``kong-canary serve`` processes, started together."""
    env = {
        "KONG_CANARY_TOKENS": f"bench:admin={TOKEN}",
        "KONG_CANARY_LOG_LEVEL": "warning",
        "KONG_CANARY_LEASE_CHECK_INTERVAL": str(interval),
    }
    with contextlib.ExitStack() as stack:
        urls = []
        for _ in range(replicas):
            port = free_port()
            args = ["serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
            args += ["--kong-admin-url", kong_url]
            url = f"http://127.0.0.1:{port}"
            urls.append(stack.enter_context(cli_process(args, env, url, "/readyz", "a replica")))
        yield urls


def kind(method: str, path: str) -> str:
    """A label for a counted request: the sweep's filtered listing, or method + path shape."""
    parts = urlsplit(path)
    if method == "GET" and parts.path == "/upstreams":
        tags = [unquote(v) for k, _, v in (q.partition("=") for q in parts.query.split("&"))
                if k == "tags"]  # fmt: skip
        return "GET /upstreams?tags=(ours)" if tags == [MANAGED_TAG] else "GET /upstreams (all)"
    shape = "/".join("{x}" if i > 1 else p for i, p in enumerate(parts.path.split("/")))
    return f"{method} {shape}"


def idle(kong: KongCalls, window: float, interval: float) -> Counter[str]:
    """What Kong receives in ``window`` seconds, after one interval to let start-up settle."""
    time.sleep(interval)
    mark = kong.mark()
    time.sleep(window)
    return Counter(kind(m, p) for m, p in kong._calls()[mark:])


def snapshot(kong: httpx.Client, names: list[str]) -> dict[str, tuple[list[str], dict[str, int]]]:
    """Each upstream's tags and target weights."""
    state = {}
    for name in names:
        tags = kong.get(f"/upstreams/{name}").raise_for_status().json()["tags"] or []
        data = kong.get(f"/upstreams/{name}/targets", params={"size": 1000}).json()["data"]
        state[name] = (sorted(tags), {t["target"]: t["weight"] for t in data})
    return state


def writes_between(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(path, field, value) PATCHes that take Kong from ``before`` to ``after``."""
    writes: list[tuple[str, str, Any]] = []
    for name, (tags, weights) in after.items():
        old_tags, old_weights = before[name]
        for target, weight in weights.items():
            if old_weights.get(target) != weight:
                writes.append(
                    (f"/upstreams/{name}/targets/{quote(target, safe=':')}", "weight", weight)
                )
        if old_tags != tags:
            writes.append((f"/upstreams/{name}", "tags", tags))
    return writes


def send(kong: httpx.Client, writes: list[tuple[str, str, Any]]) -> float:
    started = time.perf_counter()
    for path, field, value in writes:
        kong.patch(path, json={field: value}).raise_for_status()
    return time.perf_counter() - started


def rollback_all(sidecar_url: str, kong: httpx.Client, names: list[str]) -> dict[str, Any]:
    before = snapshot(kong, names)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=sidecar_url, headers=auth, timeout=600) as sidecar:
        started = time.perf_counter()
        answer = sidecar.post("/v1/rollback-all")
        seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"rollback-all: {answer.status_code} {answer.text[:500]}")
    results = answer.json()["results"]
    after = snapshot(kong, names)
    forward = writes_between(before, after)
    send(kong, writes_between(after, before))  # Kong back where the sidecar found it
    if snapshot(kong, names) != before:
        raise SystemExit("putting Kong back before the direct run failed")
    direct = send(kong, forward)
    if snapshot(kong, names) != after:
        raise SystemExit("the direct writes did not leave Kong where the sidecar left it")
    return {
        "upstreams": len(results),
        "sidecar_writes": sum(int(r.get("writes", 0)) for r in results),
        "direct_writes": len(forward),
        "sidecar_seconds": seconds,
        "direct_seconds": direct,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500/50 upstreams, 2 s sweeps")
    parser.add_argument("--upstreams", type=int, default=None, help="upstreams in Kong")
    parser.add_argument("--managed", type=int, default=None, help="of which managed")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per replica")
    parser.add_argument("--interval", type=float, default=None, help="lease check interval, s")
    parser.add_argument("--window", type=float, default=None, help="seconds counted")
    args = parser.parse_args(argv)
    quick = {"upstreams": 1500, "managed": 50, "interval": 2.0, "window": 6.0}
    full = {"upstreams": 10_000, "managed": 500, "interval": REAL_INTERVAL, "window": 60.0}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = [f"managed-{i:05d}" for i in range(args.managed)]
    processes = args.replicas * args.workers

    with local_kong(seed(args.upstreams, args.managed), ready_within=300) as kong_url:
        calls = KongCalls(kong_url)
        with (
            fleet(kong_url, args.replicas, args.workers, args.interval) as urls,
            httpx.Client(base_url=kong_url, timeout=60) as kong,
        ):
            counted = idle(calls, args.window, args.interval)
            rollback = rollback_all(urls[0], kong, names)
        calls.http.close()

    total = sum(counted.values())
    per_second = total / args.window
    print(
        f"Idle fleet: {args.replicas} replicas x {args.workers} workers, Kong with "
        f"{args.upstreams:,} upstreams ({args.managed:,} managed, nothing expiring), "
        f"lease check every {args.interval:g} s, {args.window:g} s counted at the server"
    )
    print(f"{'request':<34} {'count':>7} {'per min':>9} {'per s':>7}")
    for label, count in sorted(counted.items()):
        print(
            f"{label:<34} {count:>7} {count / args.window * 60:>9.1f} {count / args.window:>7.2f}"
        )
    print(f"{'total':<34} {total:>7} {per_second * 60:>9.1f} {per_second:>7.2f}")
    sweeps = processes * args.window / args.interval
    print(f"sweeps expected in the window: {sweeps:.0f} ({processes} processes)")
    sweep_calls = counted["GET /upstreams?tags=(ours)"] + counted["GET /upstreams (all)"]
    others = total - sweep_calls
    at_real = sweep_calls / args.window * args.interval / REAL_INTERVAL + others / args.window
    if args.interval != REAL_INTERVAL:
        print(f"projected to {REAL_INTERVAL:g} s sweeps: {at_real:.2f} requests/s")
    unfiltered_pages = math.ceil(args.upstreams / PAGE)
    print(
        f"listing every upstream instead (no tag filter): {unfiltered_pages} pages per sweep, "
        f"{processes * unfiltered_pages / REAL_INTERVAL:.2f} requests/s at {REAL_INTERVAL:g} s"
    )
    met = "yes" if at_real <= TARGET_PER_SECOND else "no"
    print(f"target <= {TARGET_PER_SECOND:g} request/s at {REAL_INTERVAL:g} s sweeps: {met}")

    r = rollback
    print(
        f"\nrollback-all over {r['upstreams']} upstreams: sidecar {r['sidecar_seconds']:.2f} s "
        f"({r['sidecar_writes']} writes reported); the same {r['direct_writes']} writes sent "
        f"directly one by one: {r['direct_seconds']:.2f} s "
        f"({r['direct_writes'] / r['direct_seconds']:.0f} writes/s)"
    )
    print(f"ratio sidecar/direct writes: {r['sidecar_seconds'] / r['direct_seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
