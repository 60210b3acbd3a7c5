"""``kong-canary watch UPSTREAM``: a live view for the engineer on call.

It polls ``GET /v1/status?upstream=`` (read-only: watching never moves a ramp) and redraws
every second, so countdowns tick between polls. On a terminal it is a rich ``Live`` view;
when stdout is not a terminal (a pipe, a log) it prints one plain line per poll. Ctrl-C
quits cleanly (exit 0). ``-o json`` prints one JSON object (the upstream's status) per
poll, ``-o yaml`` one document. A sidecar that stops answering is shown and retried; a refused
token or an unknown upstream ends the watch with its exit code.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click
import yaml
from rich.console import Group, RenderableType
from rich.text import Text

from sidecar.client import views
from sidecar.client.commands import Context, client_command
from sidecar.client.connection import ClientError
from sidecar.client.format import ExitCode, countdown, ramp_eta, split_text


def page_url(base: str, upstream: str) -> str:
    return f"{base.rstrip('/')}/?upstream={upstream}"


def watch_screen(
    status: dict[str, Any] | None, upstream: str, now: float, page: str, problem: str | None
) -> RenderableType:
    """The whole screen at ``now`` (sidecar time): header, the upstream, recent events."""
    updated = (
        "never"
        if status is None
        else datetime.fromtimestamp(status["generated_at"], tz=UTC).strftime("%H:%M:%S")
    )
    header = Text(f"kong-canary watch {upstream}", style="bold")
    header.append(f"   data at {updated} UTC   Ctrl-C quits\n", style="dim")
    header.append(f"status page: {page}", style="dim")
    parts: list[RenderableType] = [header]
    if problem:
        parts.append(Text(problem, style="bold red"))
    if status is not None and status["upstreams"]:
        parts.append(views.upstream_panel(status["upstreams"][0], now, detail=True))
        parts.append(views.events_table(status["events"]))
    return Group(*parts)


def plain_line(status: dict[str, Any], now: float) -> str:
    """One line per poll for pipes and logs."""
    entry = status["upstreams"][0]
    at = datetime.fromtimestamp(status["generated_at"], tz=UTC).strftime("%H:%M:%S")
    line = f"{at} {entry['upstream']} split {split_text(entry['split'])}"
    ramp = entry.get("ramp")
    if ramp and ramp.get("id"):
        line += f" ramp {ramp['status']} {ramp['progress']}%"
        if ramp["status"] == "RUNNING":
            next_at = ramp.get("next_step_at")
            line += f" next {countdown(None if next_at is None else next_at - now)}"
            line += f" eta {countdown(ramp_eta(ramp, now))}"
    elif ramp:
        line += f" ramp {ramp['fingerprint']} (schedule unknown here)"
    lease = entry.get("lease")
    line += f" lease {countdown(lease['epoch'] - now) if lease else 'none'}"
    metrics = entry.get("metrics") or {}
    canary = (metrics.get("now") or {}).get("canary")
    if canary and canary["error_ratio"] is not None:
        line += f" canary 5xx {canary['error_ratio'] * 100:.2f}% p99 {canary['p99_ms']}ms"
    return line


@client_command("watch")
@click.argument("upstream")
@click.option("--interval", type=click.FloatRange(0.5, 60), default=2.0, show_default=True)
@click.option("--count", type=click.IntRange(0), default=0, help="stop after N polls (0: never)")
def watch(ctx: Context, upstream: str, interval: float, count: int) -> ExitCode:
    """A live view of UPSTREAM: split bars, ramp progress with ETA, lease countdown,
    per-variant rate, 5xx and P99 (with gateway metrics), last audit events."""
    from rich.live import Live

    page = page_url(ctx.client.url, upstream)
    terminal = ctx.console.is_terminal and ctx.output == "text"
    if ctx.output == "text" and not terminal:
        click.echo(f"kong-canary watch {upstream} (status page: {page})")
    status: dict[str, Any] | None = None
    skew = 0.0  # sidecar clock - ours: countdowns use the sidecar's time
    last_poll = float("-inf")
    problem: str | None = None
    polls = 0
    live = Live(console=ctx.console, auto_refresh=False) if terminal else None
    try:
        if live is not None:
            live.start()
        while True:
            if count and polls >= count:
                return ExitCode.OK
            if time.monotonic() - last_poll >= interval:
                last_poll = time.monotonic()
                polls += 1
                try:
                    status = ctx.client.call("GET", "/v1/status", params={"upstream": upstream})
                    skew = status["generated_at"] - time.time()
                    problem = None
                except ClientError as exc:
                    if exc.code is not ExitCode.UNREACHABLE:
                        raise
                    problem = f"{exc}; retrying"
                if problem is not None and not terminal:
                    click.echo(problem, err=ctx.output == "json")
                elif ctx.output == "json":  # one JSON object per poll, for scripts
                    click.echo(json.dumps(status["upstreams"][0], separators=(",", ":")))
                elif ctx.output == "yaml":  # one YAML document per poll
                    click.echo("---\n" + yaml.safe_dump(status["upstreams"][0], sort_keys=False))
                elif not terminal:
                    click.echo(plain_line(status, time.time() + skew))
            if live is not None:
                screen = watch_screen(status, upstream, time.time() + skew, page, problem)
                live.update(screen, refresh=True)
            time.sleep(min(1.0, interval))
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        if live is not None:
            live.stop()
