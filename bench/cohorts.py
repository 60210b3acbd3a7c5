"""Benchmark: what cohorts cost a split change (the Lua's cost per request: cohort_lua.py).

``PUT …/split`` end to end (sidecar in process, local Kong 3.9 on loopback) on two
upstreams alike but for one thing: one has cohorts (a post-function on its service and the
shadow upstreams the observer keeps in step), the other has none. The changes alternate
between the two upstreams and between 90/5/5 and 80/10/10, ``--rounds`` times each; the
medians and their ratio (cohorts / none) come from the same run. The extra cost is the
preparer's and the observer's reads (our plugins, the shadows) and the shadows' target
writes.

    python bench/cohorts.py [--rounds 15]

Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from sidecar.app import close_app, create_app
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings

TOKEN = ApiToken("bench", "bench-token-0123456789abcdef", "write")
SPLITS = (
    {"stable": 90, "baseline": 5, "canary": 5},
    {"stable": 80, "baseline": 10, "canary": 10},
)
TARGETS = {"baseline": ["10.0.0.2:80"], "canary": ["10.0.0.3:80"]}


def split_changes(rounds: int) -> tuple[float, float]:
    """Median seconds of a split change without and with cohorts."""
    with serve_in_thread("3.9") as server, httpx.Client(base_url=server.url) as kong:
        for name in ("plain", "cohort"):
            kong.post("/upstreams", json={"name": name}).raise_for_status()
            kong.post(
                f"/upstreams/{name}/targets", json={"target": "10.0.0.1:80", "weight": 100}
            ).raise_for_status()
            kong.post("/services", json={"name": name, "host": name}).raise_for_status()
        settings = Settings(tokens=(TOKEN,), kong=KongSettings(admin_url=server.url))
        app = create_app(settings, sweep_leases=False)
        try:
            with httpx.Client(
                transport=httpx.WSGITransport(app=app),
                base_url="http://sidecar",
                headers={"Authorization": f"Bearer {TOKEN.token}"},
                timeout=30,
            ) as client:
                for name in ("plain", "cohort"):
                    put = client.put(
                        f"/v1/upstreams/{name}/split",
                        json={"split": SPLITS[0], "targets": TARGETS},
                    )
                    put.raise_for_status()
                cohorts = {"header": {"name": "X-Canary"}}
                client.put("/v1/upstreams/cohort/cohorts", json=cohorts).raise_for_status()
                times: dict[str, list[float]] = {"plain": [], "cohort": []}
                for i in range(rounds):
                    for name in ("plain", "cohort"):
                        started = time.perf_counter()
                        answer = client.put(
                            f"/v1/upstreams/{name}/split", json={"split": SPLITS[(i + 1) % 2]}
                        )
                        times[name].append(time.perf_counter() - started)
                        answer.raise_for_status()
                        failed = [w for w in answer.json()["warnings"] if "cohorts" in w]
                        if failed:
                            raise SystemExit(f"cohorts failed: {failed}")
                shadow = kong.get("/upstreams/cohort--canary/targets").json()["data"]
                if [t["weight"] for t in shadow] == [0]:
                    raise SystemExit("the canary shadow did not follow the split")
        finally:
            close_app(app)
    return statistics.median(times["plain"]), statistics.median(times["cohort"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="split changes per upstream")
    args = parser.parse_args(argv)
    plain, cohort = split_changes(args.rounds)
    print(f"split change, median of {args.rounds} (sidecar in process, local Kong 3.9)")
    print(f"{'without cohorts':<28} {plain * 1000:>9.2f} ms")
    print(f"{'with cohorts':<28} {cohort * 1000:>9.2f} ms")
    print(f"{'ratio cohorts/none':<28} {cohort / plain:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
