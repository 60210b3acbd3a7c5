"""Benchmark: write planning (``sidecar.core.plan.plan_writes``) at the API's limits.

The API takes up to 1,000 targets per variant (``TARGET_LIST`` in ``sidecar/api/schemas.py``).
Issue 13 item 7: 500 + 500 new targets used to fail with RecursionError and 480 + 480 took
15 s while the upstream's lock was held. Each row plans one change over ``--targets``
baseline and as many canary targets (1 stable target unless said) and reports the median
planning time, the writes, the plan's excursion, and the ratio to a baseline measured in the
same run: ``compute_weights`` for the same upstream, the linear pass every change makes
anyway. Rows cover every strategy: the direct search, the pivot, the phased drain, and the
fallbacks (greedy, interleaved, batched) for changes no order makes excursion-free, with
arbitrary distinct weights as the worst case for the searches.

    python bench/plan.py [--targets 1000] [--repeat 3]

Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from sidecar.core.plan import max_excursion, plan_writes
from sidecar.core.split import Split
from sidecar.core.weights import compute_weights


def split(stable: float, baseline: float, canary: float) -> Split:
    return Split.from_percentages({"stable": stable, "baseline": baseline, "canary": canary})


def median_seconds(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000, help="baseline (= canary) targets")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median)")
    args = parser.parse_args(argv)
    n = args.targets
    layout = {
        "stable": ["stable-0.svc:8000"],
        "baseline": [f"baseline-{i}.svc:8000" for i in range(n)],
        "canary": [f"canary-{i}.svc:8000" for i in range(n)],
    }
    of = {t: v for v, ts in layout.items() for t in ts}
    only = compute_weights(Split.STABLE_ONLY, layout)
    canary5 = compute_weights(split(90, 5, 5), layout)
    canary10 = compute_weights(split(80, 10, 10), layout, current=canary5)
    majority = compute_weights(split(0, 56.27, 43.73), layout)
    rng = random.Random(13)
    noise = {t: rng.randint(1, 65535) for t in of}
    noise2 = {t: rng.randint(1, 65535) for t in of}
    full = {t: 65534 if of[t] == "stable" else 65535 for t in of}
    rows: list[tuple[str, dict[str, int], dict[str, int]]] = [
        ("stable-only -> 90/5/5 (new targets)", {"stable-0.svc:8000": 1}, canary5),
        ("90/5/5 -> 80/10/10", canary5, canary10),
        ("rollback 80/10/10 -> stable-only", canary10, only),
        ("rollback 0/56.27/43.73 (phased)", majority, only),
        ("90/5/5 -> 90/7/3 (fallback)", canary5, compute_weights(split(90, 7, 3), layout)),
        ("rollback, all at max (fallback)", full, {**only, "stable-0.svc:8000": 1}),
        ("distinct weights -> stable-only", noise, only),
        ("stable-only -> distinct weights", only, noise),
        ("distinct -> distinct (fallback)", noise, noise2),
    ]
    baseline = median_seconds(lambda: compute_weights(split(90, 5, 5), layout), args.repeat)
    print(f"planning over {n} + {n} targets, median of {args.repeat}")
    print(f"baseline compute_weights(90/5/5): {baseline * 1000:.1f} ms")
    print(f"{'change':<38} {'writes':>6} {'ms':>8} {'x baseline':>10} {'excursion':>10}")
    worst = 0.0
    for name, current, desired in rows:
        writes = plan_writes(current, desired, of)
        excursion = float(max_excursion(current, writes, of))
        seconds = median_seconds(lambda c=current, d=desired: plan_writes(c, d, of), args.repeat)
        worst = max(worst, seconds)
        print(
            f"{name:<38} {len(writes):>6} {seconds * 1000:>8.1f} "
            f"{seconds / baseline:>10.1f} {excursion * 100:>9.4f}%"
        )
    print(f"worst planning time: {worst * 1000:.0f} ms ({worst / baseline:.1f}x baseline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
