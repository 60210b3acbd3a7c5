"""What ``get`` and ``watch`` draw for an upstream, at a fixed width."""

from __future__ import annotations

import re

from rich.console import Console

from sidecar.client.views import change_view, upstream_panel

ENTRY = {
    "upstream": "orders",
    "algorithm": "round-robin",
    "split": {"stable": 95.0, "baseline": 2.5, "canary": 2.5},
    "lease": {"expires_at": "2027-01-15T08:00:00Z", "epoch": 1_800_000_120},
    "ramp": None,
    "targets": [{"target": "10.0.0.3:80", "variant": "canary", "weight": 1, "health": "UNHEALTHY"}],
    "warnings": ["target 10.0.0.3:80 (canary) is UNHEALTHY but has weight"],
}


def _text(renderable) -> str:
    console = Console(record=True, width=90, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_panel_shows_bars_lease_targets_and_warnings() -> None:
    text = _text(upstream_panel(ENTRY, now=1_800_000_000))
    assert re.search(r"stable\s+█{38}\s+95 %", text)
    assert re.search(r"canary\s+█\s+2.5 %", text)  # 2.5 % of 40 cells is one cell
    assert "lease     returns to stable in 2m 00s (2027-01-15T08:00:00Z)" in text
    assert re.search(r"10\.0\.0\.3:80\s+canary\s+1\s+UNHEALTHY", text)
    assert "! target 10.0.0.3:80 (canary) is UNHEALTHY but has weight" in text
    assert "cohorts" not in text and "guard" not in text


def test_cohorts_and_guard_are_shown_when_the_sidecar_reports_them() -> None:
    entry = {**ENTRY, "guard": {"max_5xx": 0.02}, "cohorts": ["beta-users"]}
    text = _text(upstream_panel(entry, now=1_800_000_000))
    assert 'guard     {"max_5xx": 0.02}' in text
    assert 'cohorts   ["beta-users"]' in text


def test_a_change_with_no_writes_says_so() -> None:
    answer = {"dry_run": False, "writes": [], "previous": ENTRY["split"],
              "split": ENTRY["split"], "lease": None, "warnings": []}  # fmt: skip
    text = _text(change_view(answer))
    assert "Kong writes: none (already so)" in text
    assert "split     95/2.5/2.5 → 95/2.5/2.5 (now)" in text
