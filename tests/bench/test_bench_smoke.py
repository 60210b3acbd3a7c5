"""Every bench in ``bench/`` runs with its quickest options and prints the table it promises.

Run as subprocesses, exactly as the README tells people to run them. Timings are never
asserted (the machine is shared); the rows and the columns that are not timings are. The
split bench also fails on its own when the writes it sends directly do not leave Kong
where the sidecar left it, so this covers its baseline's correctness too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NUMBER = r"[0-9][0-9,.]*"
pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str, timeout: float = 90) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout.splitlines()


def rows(lines: list[str], pattern: str) -> list[re.Match[str]]:
    return [m for line in lines if (m := re.fullmatch(pattern, line.strip()))]


def test_kong_client_bench_quick():
    lines = run_bench("kong_client.py", "--quick", "--threads", "4")
    measured = rows(
        lines, rf"(KongAdmin|bare httpx)\s+(\d+)\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}"
    )
    assert [(m[1], int(m[2]), int(m[3])) for m in measured] == [
        ("KongAdmin", 1, 150),
        ("bare httpx", 1, 150),
        ("KongAdmin", 4, 300),
        ("bare httpx", 4, 300),
    ], lines
    ratios = rows(lines, rf"ratio KongAdmin/baseline,\s+(\d+) thread\(s\): throughput {NUMBER}x, "
                         rf"p50 latency {NUMBER}x")  # fmt: skip
    assert [int(m[1]) for m in ratios] == [1, 4], lines
    per_get = rows(lines, rf"(KongAdmin|bare httpx)\s+(\d+)\s+{NUMBER}")
    assert [(m[1], int(m[2])) for m in per_get] == [("KongAdmin", 300), ("bare httpx", 300)]
    assert rows(lines, rf"CPU per GET KongAdmin/baseline: {NUMBER}x \([+-]{NUMBER} ms/call\)")


def test_gateway_ingest_bench_quickest():
    lines = run_bench("gateway_ingest.py", "--seconds", "0.05", "--entries", "2000")
    rates = rows(lines, rf"(\d+)(\s+{NUMBER}/s){{3}}\s+{NUMBER}\s+{NUMBER}")
    assert [int(m[1]) for m in rates] == [100, 1000], lines
    memory = rows(lines, rf"({NUMBER})\s+{NUMBER}\s+{NUMBER}\s+(-|{NUMBER})")
    assert [m[1] for m in memory] == ["0", "1,000", "2,000"], lines


def test_split_api_bench_quick():
    lines = run_bench("split_api.py", "--quick", "--clients", "3")
    latency = rows(
        lines,
        rf"(1 stable target|4 stable targets)\s+(\d+) "
        rf"(sidecar \(httpx\)|sidecar|direct|reads\+direct|kong calls)"
        rf"\s+(\d+)"
        rf"\s+({NUMBER})"
        rf"\s+({NUMBER})\s+{NUMBER}\s+{NUMBER}",
    )
    seen = [(m[1], int(m[2]), m[3], int(m[4])) for m in latency]
    assert seen == [
        (shape, clients, path, ops)
        for shape in ("1 stable target", "4 stable targets")
        for clients, ops in ((1, 10), (3, 6))
        for path in ("sidecar", "sidecar (httpx)", "direct", "reads+direct", "kong calls")
    ], lines
    for m in latency:  # the baselines are the sidecar's own writes, and its two reads
        stables = int(m[1][0])
        # the sidecar also creates and deletes the upstream's lock, and reads three times:
        # to see whether it writes, again under the lock, and back after its writes
        # (the "kong calls" baseline makes every one of those calls itself), and lists the
        # upstream's cohort post-functions after the change (the cohorts' observer)
        both = ("sidecar", "sidecar (httpx)", "kong calls")
        assert float(m[6]) == stables + (2 if m[3] in both else 0), m[0]
        gets = {"sidecar": 7, "sidecar (httpx)": 7, "direct": 0, "reads+direct": 2}
        gets["kong calls"] = 7
        assert float(m[5]) == gets[m[3]], m[0]
    ratios = rows(lines, rf"(1 stable target|4 stable targets)\s+(\d+)\s+{NUMBER}x\s+"
                         rf"{NUMBER}x\s+(yes|no)\s+{NUMBER}x\s+{NUMBER}x"
                         rf"\s+{NUMBER}x\s+{NUMBER}x\s+(yes|no)\s+{NUMBER}x")  # fmt: skip
    assert [(m[1], int(m[2])) for m in ratios] == [
        ("1 stable target", 1),
        ("1 stable target", 3),
        ("4 stable targets", 1),
        ("4 stable targets", 3),
    ], lines
    big = rows(
        lines,
        rf"(sidecar PUT|direct, 8 parallel|direct, one by one)\s+(\d+)\s+(\d+)\s+(\d+)\s+{NUMBER}"
        rf"\s+{NUMBER}\s+(yes|no)",
    )
    assert [m[1] for m in big] == ["sidecar PUT", "direct, 8 parallel", "direct, one by one"]
    got = {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in big}  # writes, batches, GETs
    writes, batches, _ = got["sidecar PUT"]
    assert writes > 0 and 0 < batches <= writes, lines
    assert got["direct, 8 parallel"] == (writes, batches, 0), lines
    assert got["direct, one by one"] == (writes, writes, 0), lines


def test_plan_bench_quickest():
    lines = run_bench("plan.py", "--targets", "100", "--repeat", "1")
    measured = rows(lines, rf"(.+?)\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}%")
    assert len(measured) == 9, lines
    assert rows(lines, rf"worst planning time: {NUMBER} ms \({NUMBER}x baseline\)"), lines


def test_guard_bench_quickest():
    lines = run_bench("guard.py", "--seconds", "0.05", "--runs", "2")
    costs = rows(lines, rf"(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}")
    assert [int(m[1]) for m in costs] == [100, 1000], lines
    detections = rows(lines, rf"(\d+)\s+(\d+)\s+{NUMBER}")
    assert [int(m[1]) for m in detections] == [0, 1], lines
    assert all(0 < int(m[2]) <= 600 for m in detections), lines


def test_cohorts_bench_quickest():
    lines = run_bench("cohorts.py", "--rounds", "3")
    changes = rows(lines, rf"(without cohorts|with cohorts|ratio cohorts/none)\s+{NUMBER}( ms)?")
    assert [m[1] for m in changes] == ["without cohorts", "with cohorts", "ratio cohorts/none"]


def test_cohort_lua_bench_quickest():
    lines = run_bench("cohort_lua.py", "--ids", "1000", "--requests", "2000", "--rounds", "1")
    measured = rows(lines, rf"(.+?)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x\s+-?{NUMBER}\s+{NUMBER}")
    assert [m[1] for m in measured] == [
        "consumer in no cohort, no header",
        "never-canary consumer",
        "header X-Canary: never",
    ], lines
    assert rows(lines, rf"target < 5 µs per request: (met|MISSED) \(worst {NUMBER} µs\)"), lines


def test_fleet_bench_quick():
    """Three replicas of two workers each over the local Kong: the requests counted at the
    server are the sweeps' filtered listings only, one per sweep."""
    lines = run_bench("fleet.py", "--quick", timeout=240)
    listed = rows(lines, rf"GET /upstreams\?tags=\(ours\)\s+(\d+)\s+{NUMBER}\s+{NUMBER}")
    assert len(listed) == 1 and int(listed[0][1]) > 0, lines
    assert not [line for line in lines if line.startswith("GET /upstreams (all)")], lines
    assert rows(lines, r"target <= 1 request/s at 15 s sweeps: (yes|no)"), lines
    rollback = rows(
        lines,
        rf"rollback-all over 50 upstreams: sidecar {NUMBER} s \((\d+) writes reported\); the "
        rf"same (\d+) writes sent directly one by one: {NUMBER} s \({NUMBER} writes/s\)",
    )
    assert rollback and rollback[0][1] == rollback[0][2] == "50", lines


def test_profile_change_bench_quickest():
    lines = run_bench("profile_change.py", "--steps", "20", "--top", "5")
    paths = rows(lines, rf"(sidecar|kong calls)\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+(\d+)\s+(\d+)")
    assert [(m[1], int(m[2])) for m in paths] == [("sidecar", 16), ("kong calls", 16)], lines
    # the baseline makes exactly the Kong calls the sidecar makes for a step
    assert paths[0].group(3, 4) == paths[1].group(3, 4), lines
    assert rows(lines, rf"ratio sidecar/\(kong calls\): CPU {NUMBER}x, wall {NUMBER}x"), lines
    assert any("sidecar/api/split.py" in line for line in lines), lines
