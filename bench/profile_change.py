"""Profile: where a ramp step's CPU goes in the sidecar, beside every Kong call it must make.

Issue 17 item 8 asks for the sidecar's own cost per change found with a profiler. Wall-clock
ratios need a quiet machine (``split_api.py``); CPU time per step does not, so this reports
both, for one client and one upstream (1 stable target, 90/5/5 <-> 95/2.5/2.5):

- ``sidecar``: ``PUT …/split`` through the app in this process (Flask's test client: no
  HTTP server in front, so a little less than under gunicorn);
- ``kong calls``: ``split_api.change_calls_direct``, every Kong call the sidecar makes for
  the step (reads, lock, reads under it, the write, read-back, unlock) sent directly with one
  ``httpx.Client``;

then cProfile's top entries for the sidecar's steps by internal CPU time of the request's
thread (``time.thread_time``: waiting for Kong is not counted), and the sidecar's own
functions by cumulative time. Kong is the local server in a process of its own.

    python bench/profile_change.py [--steps 300] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from split_api import (
    RAMP_STEP,
    TOKEN,
    KongCalls,
    change_calls_direct,
    local_kong,
    small_upstream,
    to_kong_writes,
)

from sidecar.app import close_app, create_app
from sidecar.settings import ApiToken, KongSettings, Settings

UPSTREAM = "bench-a-00"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per path")
    parser.add_argument("--top", type=int, default=25, help="profile entries shown")
    args = parser.parse_args(argv)
    with local_kong({"upstreams": [small_upstream("bench-a", 0, 1, 18, 1)]}) as url:
        settings = Settings(
            tokens=(ApiToken("bench", TOKEN, "admin"),), kong=KongSettings(admin_url=url)
        )
        app = create_app(settings, sweep_leases=False)
        client = app.test_client()
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def put(index: int, dry_run: bool = False) -> dict:
            body: dict = {"split": RAMP_STEP[index % 2], **({"dry_run": True} if dry_run else {})}
            answer = client.put(f"/v1/upstreams/{UPSTREAM}/split", json=body, headers=auth)
            if answer.status_code != 200:
                raise SystemExit(f"PUT: {answer.status_code} {answer.get_data(as_text=True)}")
            return answer.json

        put(0)
        writes = []  # writes[i]: from split i to the other; each learnt where Kong then is
        for i in (1, 0):
            writes.append(to_kong_writes(put(i, dry_run=True)["writes"]))
            put(i)
        with (
            ThreadPoolExecutor(8, "direct") as pool,
            httpx.Client(base_url=url, timeout=30) as kong,
        ):
            paths: dict[str, Callable[[int], object]] = {
                "sidecar": lambda i: put(i + 1),
                "kong calls": lambda i: change_calls_direct(kong, UPSTREAM, writes[i % 2], pool),
            }
            cpu: dict[str, list[float]] = {name: [] for name in paths}
            wall: dict[str, list[float]] = {name: [] for name in paths}
            counted = KongCalls(url)
            calls: dict[str, tuple[int, int]] = {}
            for name, step in paths.items():
                for i in range(10):  # warm up; an even count leaves Kong at split 0
                    step(i)
                mark = counted.mark()
                for i in range(2):
                    step(i)
                gets, written = counted.count(mark)
                calls[name] = (gets // 2, written // 2)
            counted.http.close()
            for _ in range(4):  # rounds alternate the paths, so drift hits both
                for name, step in paths.items():
                    for i in range(args.steps // 4 // 2 * 2):
                        started_cpu, started = time.process_time(), time.perf_counter()
                        step(i)
                        cpu[name].append(time.process_time() - started_cpu)
                        wall[name].append(time.perf_counter() - started)
            profile = cProfile.Profile(time.thread_time)
            for i in range(args.steps // 2 * 2):
                profile.enable()
                paths["sidecar"](i)
                profile.disable()
        close_app(app)

    print("One ramp step, 1 client (process CPU and wall time per step, p50; Kong calls")
    print("per step as the local Kong counted them)")
    print(f"{'path':<12} {'steps':>6} {'CPU ms':>8} {'wall ms':>8} {'Kong GETs':>9} {'writes':>6}")
    for name in paths:
        print(
            f"{name:<12} {len(cpu[name]):>6} {statistics.median(cpu[name]) * 1000:>8.2f} "
            f"{statistics.median(wall[name]) * 1000:>8.2f} {calls[name][0]:>9} "
            f"{calls[name][1]:>6}"
        )
    print(
        "ratio sidecar/(kong calls): CPU "
        f"{statistics.median(cpu['sidecar']) / statistics.median(cpu['kong calls']):.2f}x, wall "
        f"{statistics.median(wall['sidecar']) / statistics.median(wall['kong calls']):.2f}x"
    )
    for title, order, restriction in (
        ("internal CPU time", "tottime", ()),
        ("the sidecar's functions, cumulative CPU time", "cumulative", ("sidecar/",)),
    ):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(order).print_stats(*restriction, args.top)
        print(f"\nprofile of the sidecar's steps, by {title}:")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
