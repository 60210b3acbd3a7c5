"""Benchmark: the generated cohort Lua's cost per request under LuaJIT (issue 14).

The post-function chunk the sidecar renders (``sidecar/core/cohort_lua.py``) runs on every
proxied request of the upstream's services. This measures its handler, loaded the way Kong's
serverless handler loads it, inside the model of Kong's sandbox and PDK
(``sidecar/kong_local/serverless_runtime.py``, LuaJIT 2.1 from lupa), with ``--ids``
never-canary consumers (10,000 by default) and the override header configured, for:

- a consumer not in any cohort and no header (the common case: two lookups, untouched);
- a never-canary consumer (a set hit and ``kong.service.set_upstream``);
- a request with the ``never`` header;

against the baseline measured in the same run: an empty post-function
(``return function() end``) called the same way (the ratio column), and, to tell the PDK
model's cost from the cohort code's, a function making only the same two PDK reads
(``get_header`` + ``get_consumer``; the "pdk µs" column). Target: < 5 µs per request.

    python bench/cohort_lua.py [--ids 10000] [--requests 200000] [--rounds 5]

Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

from sidecar.core.cohort_lua import CohortRouting, HeaderOverride, render_access_lua
from sidecar.kong_local.serverless_runtime import Consumer, Headers, ServerlessRuntime

STABLE, CANARY = "orders--stable", "orders--canary"
TARGET_US = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=10_000, help="never-canary consumers")
    parser.add_argument("--requests", type=int, default=200_000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="measurements (median kept)")
    args = parser.parse_args()

    never = frozenset(f"{i:08d}-0000-4000-8000-000000000000" for i in range(args.ids))
    always = frozenset(f"{i:08d}-1111-4000-8000-000000000000" for i in range(100))
    header = HeaderOverride("X-Canary", "always", "never")
    routing = CohortRouting(never, always, header, STABLE, CANARY, True, '{"bench": true}')
    code = render_access_lua(routing)

    runtime = ServerlessRuntime([STABLE, CANARY])
    cohort = runtime.load(code)
    empty = runtime.load("return function() end")
    pdk_only = runtime.load(
        "return function() kong.request.get_header('X-Canary') kong.client.get_consumer() end"
    )
    outsider = Consumer("ffffffff-ffff-4fff-8fff-ffffffffffff", username="outsider")
    excluded = Consumer(min(never), username="merchant")
    cases: list[tuple[str, Consumer | None, Headers]] = [
        ("consumer in no cohort, no header", outsider, {}),
        ("never-canary consumer", excluded, {}),
        ("header X-Canary: never", outsider, {"x-canary": "never"}),
    ]
    assert runtime.request(cohort, outsider, {}) is None
    assert runtime.request(cohort, excluded, {}) == STABLE

    def median_us(measure: Callable[[], float]) -> float:
        return statistics.median(measure() for _ in range(args.rounds)) * 1e6

    print(
        f"cohort Lua: {args.ids:,} never-canary ids, {len(code) / 1024:,.0f} KiB of code, "
        f"{args.requests:,} requests x {args.rounds} rounds (median), LuaJIT"
    )
    print(
        f"{'request':<36} {'cohort µs':>10} {'empty µs':>10} {'ratio':>7} {'added µs':>9} "
        f"{'pdk µs':>8}"
    )
    worst = 0.0
    for name, consumer, headers in cases:
        cohort_us = median_us(
            lambda c=consumer, h=headers: runtime.seconds_per_request(cohort, c, h, args.requests)
        )
        empty_us = median_us(
            lambda c=consumer, h=headers: runtime.seconds_per_request(empty, c, h, args.requests)
        )
        pdk_us = median_us(
            lambda c=consumer, h=headers: runtime.seconds_per_request(pdk_only, c, h, args.requests)
        )
        worst = max(worst, cohort_us)
        print(
            f"{name:<36} {cohort_us:>10.3f} {empty_us:>10.3f} "
            f"{cohort_us / empty_us:>6.1f}x {cohort_us - empty_us:>9.3f} {pdk_us:>8.3f}"
        )
    verdict = "met" if worst < TARGET_US else "MISSED"
    print(f"target < {TARGET_US:g} µs per request: {verdict} (worst {worst:.3f} µs)")


if __name__ == "__main__":
    main()
