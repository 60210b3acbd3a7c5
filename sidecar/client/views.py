"""What a person sees: rich renderables built from the API's answers (no I/O here; the
caller prints them on a Console, which decides colours and width)."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sidecar.client.format import (
    VARIANTS,
    bar,
    countdown,
    percent,
    ramp_eta,
    split_text,
)

COLOURS = {"stable": "blue", "baseline": "white", "canary": "dark_orange"}
BAR_WIDTH = 40
BAD_HEALTH = {"UNHEALTHY", "DNS_ERROR"}
OPTIONAL_FIELDS = ("cohorts", "guard")


def split_bars(split: dict[str, float] | None, width: int = BAR_WIDTH) -> RenderableType:
    if split is None:
        return Text("no targets: Kong sends this upstream's traffic nowhere", style="red")
    table = Table.grid(padding=(0, 1))
    for variant in VARIANTS:
        table.add_row(
            Text(f"{variant:<8}"),
            Text(bar(split[variant], width), style=COLOURS[variant]),
            Text(f"{split[variant]:>6g} %"),
        )
    return table


def ramp_line(ramp: dict[str, Any] | None, now: float) -> RenderableType:
    if ramp is None:
        return Text("ramp      none")
    if ramp.get("id") is None:
        return Text(f"ramp      {ramp['fingerprint']}: {ramp['message']}", style="yellow")
    text = Text(f"ramp      {bar(ramp['progress'], 20)} {ramp['progress']:>3}%  ")
    style = {"RUNNING": "cyan", "SUCCEEDED": "green"}.get(ramp["status"], "red")
    text.append(ramp["status"], style=style)
    text.append(f"  to {split_text(ramp['target'])}")
    if ramp["status"] == "RUNNING":
        next_at = ramp.get("next_step_at")
        text.append(
            f"  next step in {countdown(None if next_at is None else next_at - now)}"
            f"  ETA {countdown(ramp_eta(ramp, now))}"
        )
    text.append(f"\n          {ramp['message']}", style="dim")
    return text


def lease_line(lease: dict[str, Any] | None, now: float) -> Text:
    if lease is None:
        return Text("lease     none (stable only, or nothing to expire)")
    left = lease["epoch"] - now
    style = "red" if left < 300 else ""
    return Text(
        f"lease     returns to stable in {countdown(left)} ({lease['expires_at']})", style=style
    )


def targets_table(targets: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("target", "variant", "weight", "health"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for t in targets:
        health = t.get("health") or "–"
        table.add_row(
            t["target"],
            t.get("variant") or "?",
            str(t["weight"]),
            Text(health, style="red" if health in BAD_HEALTH else ""),
        )
    return table


def metrics_table(metrics: dict[str, Any]) -> RenderableType:
    if not metrics.get("available"):
        return Text(metrics.get("message", "no gateway metrics"), style="dim")
    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    for column in ("variant", "req/s", "5xx", "P99 ms"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant in VARIANTS:
        stats = metrics["now"].get(variant)
        if stats is None:
            table.add_row(variant, "–", "–", "–")
            continue
        p99 = stats["p99_ms"]
        table.add_row(
            variant,
            f"{stats['rps']:.1f}",
            percent(stats["error_ratio"]),
            "–" if p99 is None else f"{p99:g}",
        )
    return Group(table, Text(metrics["message"], style="dim"))


def upstream_panel(entry: dict[str, Any], now: float, *, detail: bool = True) -> Panel:
    parts: list[RenderableType] = [
        split_bars(entry["split"]),
        ramp_line(entry.get("ramp"), now),
        lease_line(entry.get("lease"), now),
    ]
    if detail:
        parts.append(targets_table(entry["targets"]))
    if "metrics" in entry:
        parts.append(metrics_table(entry["metrics"]))
    for extra in OPTIONAL_FIELDS:  # shown when the sidecar reports them
        if entry.get(extra) is not None:
            parts.append(Text(f"{extra:<9} {json.dumps(entry[extra], sort_keys=True)}"))
    for warning in entry.get("warnings", []):
        parts.append(Text(f"! {warning}", style="yellow"))
    title = f"[bold]{entry['upstream']}[/] ({entry['algorithm']})"
    return Panel(Group(*parts), title=title, title_align="left", expand=True)


def events_table(events: list[dict[str, Any]], limit: int = 8) -> RenderableType:
    from datetime import datetime

    if not events:
        return Text("no audit events seen by this sidecar worker yet", style="dim")
    table = Table(box=None, pad_edge=False, header_style="bold", title="recent events")
    for column in ("time (UTC)", "event", "by", "result", "split after"):
        table.add_column(column)
    for event in events[-limit:][::-1]:
        at = datetime.fromtimestamp(event["at"], tz=UTC).strftime("%H:%M:%S")
        table.add_row(
            at,
            event["event"],
            str(event.get("token") or "–"),
            str(event.get("result") or event.get("status") or ""),
            split_text(event["after"]) if event.get("after") else "",
        )
    return table


def change_view(answer: dict[str, Any]) -> RenderableType:
    """A change's answer: the Kong writes (made, or planned with --dry-run) and the split."""
    dry = answer.get("dry_run")
    writes = answer.get("writes") or []
    heading = "planned Kong writes (dry run, nothing applied)" if dry else "Kong writes"
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("#", "action", "target", "variant", "weight"):
        table.add_column(column)
    for index, write in enumerate(writes, 1):
        before, after = write.get("weight_before"), write.get("weight_after")
        table.add_row(
            str(index),
            write["action"],
            write["target"],
            write["variant"],
            f"{'–' if before is None else before} → {'–' if after is None else after}",
        )
    parts: list[RenderableType] = (
        [Text(heading, style="bold"), table] if writes else [Text(f"{heading}: none (already so)")]
    )
    previous, split = answer.get("previous"), answer.get("split")
    label = "would be" if dry else "now"
    parts.append(Text(f"split     {split_text(previous)} → {split_text(split)} ({label})"))
    parts.append(split_bars(split))
    lease = answer.get("lease")
    if lease and not dry:
        parts.append(Text(f"lease     until {lease['expires_at']}"))
    for warning in answer.get("warnings", []):
        parts.append(Text(f"! {warning}", style="yellow"))
    return Group(*parts)
