"""The guard's cost on the ingest path, and the time from the first bad batch to the rollback.

    python bench/guard.py                 # ~5 s
    python bench/guard.py --seconds 0.05  # quickest

1. Entries per CPU second through ``GatewayIngest.ingest`` alone and followed by
   ``Guardian.record`` (the one call per batch ``POST /v1/kong-log`` makes) with a guard
   armed on the batches' upstream, for batches of 100 and 1,000 real Kong 3.9.3 entries;
   ``guard/ingest`` is the ratio of the costs per entry (target <= 1.1).
2. Detection: one batch a second of the recorded entries (their variant mix as Kong saw
   it), healthy for 60 s, then the canary's entries answer 503. Simulated seconds (the
   guard's clock is injected) and wall milliseconds from the first bad batch to the
   rollback call, over ``--runs`` runs with shuffled batches.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per figure")
    parser.add_argument("--runs", type=int, default=20, help="detection runs")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    from gateway_ingest import load_entries, rate  # the sibling bench: same fixtures, same rate
    from prometheus_client import CollectorRegistry

    from sidecar.core.guard_config import GuardConfig
    from sidecar.core.guard_tags import guard_tag
    from sidecar.gateway.addresses import VariantResolver
    from sidecar.gateway.ingest import GatewayIngest
    from sidecar.gateway.metrics import BOUNDS, GatewayMetrics
    from sidecar.guard import Guardian
    from sidecar.kong.parse import Call, upstream_health

    entries, health = load_entries("3.9.3")
    parsed = upstream_health(health["data"], None, Call("GET", "/upstreams/orders/health"))
    gateway = GatewayIngest(
        VariantResolver(lambda u: parsed), GatewayMetrics.in_registry(CollectorRegistry())
    )
    upstream = entries[0]["service"]["host"]

    clock = {"now": 0.0}
    rollbacks: list[float] = []

    class ArmedInKong:
        """The guard as Kong's tags hold it (the shared path: each batch asks whether the
        cached read of Kong is due; the read itself, every 2 s, is not on this path)."""

        guard_id = "bench"

        def load(self, upstream: str) -> list[str]:
            return [guard_tag(GuardConfig(), None, self.guard_id)]

        def claim(self, upstream: str, guard_id: str | None, trip: object) -> str:
            return "claimed"

    guardian = Guardian(
        clock=lambda: clock["now"],
        rollback=lambda u, reason: rollbacks.append(time.perf_counter()),
        bounds=BOUNDS,
        replica="bench",
        store=(kong := ArmedInKong()),  # type: ignore[arg-type]
    )

    def with_guard(body: bytes) -> None:
        guardian.record(gateway.ingest(body).result)

    print("guard cost on the ingest path, Kong 3.9.3 entries, one core")
    print(f"{'batch':>6} {'ingest us/entry':>16} {'+guard us/entry':>16} {'guard/ingest':>13}")
    for size in (100, 1000):
        body = json.dumps([entries[i % len(entries)] for i in range(size)]).encode()
        guardian.arm(upstream, GuardConfig(), guard_id="bench")
        bare = 1 / rate(gateway.ingest, body, size, args.seconds)  # CPU seconds per entry
        guarded = 1 / rate(with_guard, body, size, args.seconds)
        print(f"{size:>6} {bare * 1e6:>16.2f} {guarded * 1e6:>16.2f} {guarded / bare:>13.2f}")

    # The recording's canary was deliberately broken (slower, one 500): the healthy phase
    # gives canary entries the status and latencies of the recorded stable entries.
    resolver_map = gateway.resolver.map_for(upstream) or {}

    def variant(entry: dict[str, Any]) -> str | None:
        last = entry["tries"][-1]
        return resolver_map.get((last["ip"], last["port"]))

    stable = [e for e in entries if variant(e) == "stable"]
    healthy = copy.deepcopy(entries)
    for index, entry in enumerate(healthy):
        if variant(entry) == "canary":
            model = stable[index % len(stable)]
            entry["response"]["status"] = model["response"]["status"]
            entry["latencies"] = copy.deepcopy(model["latencies"])
    bad = copy.deepcopy(healthy)
    for entry in bad:
        if variant(entry) == "canary":
            entry["response"]["status"] = 503
    entries = healthy
    canary_share = sum(e["response"]["status"] == 503 for e in bad) / len(bad)
    print(f"\ndetection: one batch of {len(entries)} entries a second, canary "
          f"{canary_share:.0%} of them, healthy 60 s then the canary answers 503")  # fmt: skip
    print(f"{'run':>4} {'simulated s':>12} {'wall ms':>9}")
    rng = random.Random(7)
    simulated = []
    for run in range(args.runs):
        rollbacks.clear()
        clock["now"] = 0.0
        kong.guard_id = f"bench-{run}"  # a fresh arming, as PUT …/guard writes it
        guardian.arm(upstream, GuardConfig(), guard_id=kong.guard_id)
        for _ in range(60):
            clock["now"] += 1.0
            rng.shuffle(entries)
            guardian.record(gateway.ingest(json.dumps(entries).encode()).result)
        first_bad, seconds = time.perf_counter(), 0
        while not rollbacks and seconds < 600:
            clock["now"] += 1.0
            seconds += 1
            rng.shuffle(bad)
            guardian.record(gateway.ingest(json.dumps(bad).encode()).result)
        wall = (rollbacks[0] - first_bad) * 1000 if rollbacks else float("nan")
        simulated.append(seconds)
        print(f"{run:>4} {seconds:>12} {wall:>9.1f}")
    simulated.sort()
    print(f"simulated seconds to rollback: median {simulated[len(simulated) // 2]}, "
          f"max {simulated[-1]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
