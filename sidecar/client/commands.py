"""The client commands. Each one is a thin shell: parse options, call the API, print the
answer (rich for people, ``-o json|yaml`` for scripts), exit with a documented code."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click
import yaml
from rich.console import Console, Group
from rich.table import Table

from sidecar.client import views
from sidecar.client.connection import DEFAULT_URL, ClientError, SidecarClient, local_user
from sidecar.client.connection import resolve_token as _resolve_token
from sidecar.client.format import (
    EXIT_CODES_HELP,
    TERMINAL_RAMP_STATES,
    ArgumentError,
    ExitCode,
    bar,
    countdown,
    exit_code_for_ramp,
    parse_duration,
    parse_split,
    split_text,
)

OUTPUTS = click.Choice(["text", "json", "yaml"])


class Context:
    """What every command gets: the client, the output format and a console."""

    def __init__(self, client: SidecarClient, output: str, console: Console) -> None:
        self.client = client
        self.output = output
        self.console = console

    def emit(self, data: Any, render: Callable[[], Any]) -> None:
        if self.output == "json":
            click.echo(json.dumps(data, indent=2, sort_keys=False))
        elif self.output == "yaml":
            click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)
        else:
            rendered = render()
            if isinstance(rendered, str):
                click.echo(rendered)  # plain text is never re-wrapped (ids, URLs)
            else:
                self.console.print(rendered)


def make_console() -> Console:
    """Rich decides colour and width from the terminal; tests pass ``COLUMNS``."""
    return Console(highlight=False, soft_wrap=False)


def client_command(name: str, **settings: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """A click command with the connection options, ``-o``, and the exit-code contract:
    a ClientError becomes one line on stderr and its exit code."""

    def decorate(run: Callable[..., Any]) -> click.Command:
        @click.option("-o", "--output", type=OUTPUTS, default="text", show_default=True)
        @click.option(
            "--url",
            envvar="KONG_CANARY_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="the sidecar [KONG_CANARY_URL]",
        )
        @click.option("--token", envvar="KONG_CANARY_TOKEN", help="API token [KONG_CANARY_TOKEN]")
        @click.option(
            "--token-file",
            envvar="KONG_CANARY_TOKEN_FILE",
            type=click.Path(dir_okay=False),
            help="file whose first line is the token [KONG_CANARY_TOKEN_FILE]",
        )
        @click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds")
        @functools.wraps(run)
        def command(
            output: str, url: str, token: str | None, token_file: str | None, timeout: float,
            **kwargs: Any,
        ) -> None:  # fmt: skip
            try:
                resolved = _resolve_token(token, token_file)
                with SidecarClient(url, resolved, timeout=timeout) as client:
                    code = run(Context(client, output, make_console()), **kwargs)
            except ClientError as exc:
                click.echo(f"kong-canary {name}: {exc}", err=True)
                if output != "text" and exc.body is not None:
                    click.echo(json.dumps(exc.body, indent=2))
                sys.exit(int(exc.code))
            except ArgumentError as exc:
                raise click.UsageError(str(exc)) from None
            sys.exit(int(code or ExitCode.OK))

        help_text = inspect.cleandoc(run.__doc__ or "")
        return click.command(name, help=f"{help_text}\n\n{EXIT_CODES_HELP}", **settings)(command)

    return decorate


def _context(reason: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    user = local_user()
    if user:
        body["context"] = {"user": user}
    if reason:
        body["reason"] = reason
    return body


def _targets(canary: tuple[str, ...], baseline: tuple[str, ...]) -> dict[str, list[str]]:
    targets = {}
    if canary:
        targets["canary"] = list(canary)
    if baseline:
        targets["baseline"] = list(baseline)
    return targets


canary_option = click.option(
    "--canary", multiple=True, metavar="HOST:PORT", help="canary target (repeat for several)"
)
baseline_option = click.option(
    "--baseline", multiple=True, metavar="HOST:PORT", help="baseline target (repeat for several)"
)
reason_option = click.option("--reason", help="why, for the audit log")
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="show the Kong writes without applying them"
)


# ---- get ------------------------------------------------------------------------------------
@client_command("get")
@click.argument("upstream", required=False)
def get(ctx: Context, upstream: str | None) -> ExitCode:
    """Every managed upstream (or one): split as bars, targets with health, ramp progress
    and next step, lease countdown, gateway metrics and warnings."""
    status = ctx.client.call(
        "GET", "/v1/status", params={"upstream": upstream} if upstream else None
    )
    now = status["generated_at"]

    def render() -> Any:
        if not status["upstreams"]:
            return "no managed upstreams yet (name one: kong-canary get UPSTREAM)"
        return Group(*(views.upstream_panel(u, now) for u in status["upstreams"]))

    ctx.emit({"upstreams": status["upstreams"], "problems": status["problems"]}, render)
    for problem in status["problems"]:
        click.echo(
            f"kong-canary get: {problem['upstream']}: {problem['error']['message']}", err=True
        )
    return ExitCode.FAILED if status["problems"] else ExitCode.OK


# ---- set ------------------------------------------------------------------------------------
@client_command("set")
@click.argument("upstream")
@click.argument("split")
@click.option("--lease", help="how long the split may live unrenewed (e.g. 1h)")
@click.option("--expect", help="only if the split is now this (compare-and-set), e.g. 95/2.5/2.5")
@click.option("--wait", help="wait until Kong's nodes serve it (e.g. 10s)")
@click.option("--force", is_flag=True, help="shift traffic even onto unhealthy targets")
@dry_run_option
@reason_option
@baseline_option
@canary_option
def set_split(
    ctx: Context, upstream: str, split: str, lease: str | None, expect: str | None,
    wait: str | None, force: bool, dry_run: bool, reason: str | None,
    canary: tuple[str, ...], baseline: tuple[str, ...],
) -> ExitCode:  # fmt: skip
    """Set UPSTREAM's split to STABLE/BASELINE/CANARY percentages (e.g. 95/2.5/2.5); prints
    the exact Kong writes and the new split."""
    body: dict[str, Any] = {"split": parse_split(split), **_context(reason)}
    if targets := _targets(canary, baseline):
        body["targets"] = targets
    if lease:
        body["lease"] = parse_duration(lease)
    if expect:
        body["expect"] = parse_split(expect)
    if wait:
        body["wait"] = parse_duration(wait)
    if force:
        body["force"] = True
    return _change(ctx, "PUT", f"/v1/upstreams/{upstream}/split", body, dry_run=dry_run)


def _change(
    ctx: Context, method: str, path: str, body: dict[str, Any], *, dry_run: bool
) -> ExitCode:
    """Send a change, show its Kong writes and split."""
    if dry_run:
        body["dry_run"] = True
    answer = ctx.client.call(method, path, json=body)
    ctx.emit(answer, lambda: views.change_view(answer))
    return ExitCode.OK


# ---- rollback / promote ---------------------------------------------------------------------
@client_command("rollback")
@click.argument("upstream")
@click.option("--remove", is_flag=True, help="delete the canary and baseline targets")
@dry_run_option
@reason_option
def rollback(
    ctx: Context, upstream: str, remove: bool, dry_run: bool, reason: str | None
) -> ExitCode:
    """Stable takes all traffic now; ends any ramp and lease. Never refused for health."""
    body = {**_context(reason), **({"remove": True} if remove else {})}
    return _change(ctx, "POST", f"/v1/upstreams/{upstream}/rollback", body, dry_run=dry_run)


@client_command("promote")
@click.argument("upstream")
@click.option("--force", is_flag=True, help="even if stable's targets are unhealthy")
@dry_run_option
@reason_option
def promote(
    ctx: Context, upstream: str, force: bool, dry_run: bool, reason: str | None
) -> ExitCode:
    """After the new version is on stable: stable 100 %, canary and baseline removed."""
    body = {**_context(reason), **({"force": True} if force else {})}
    return _change(ctx, "POST", f"/v1/upstreams/{upstream}/promote", body, dry_run=dry_run)


# ---- rollback-all ---------------------------------------------------------------------------
@client_command("rollback-all")
@click.option("--yes", is_flag=True, help="required: this moves every managed upstream")
def rollback_all(ctx: Context, yes: bool) -> ExitCode:
    """Incident: every managed upstream back to stable at once (admin token)."""
    if not yes:
        raise ArgumentError("rollback-all moves every managed upstream to stable: add --yes")
    try:
        answer = ctx.client.call("POST", "/v1/rollback-all")
    except ClientError as exc:
        if not (isinstance(exc.body, dict) and "results" in exc.body):
            raise
        answer = exc.body  # 502: some failed; the results say which

    def render() -> Any:
        table = Table(box=None, header_style="bold")
        for column in ("upstream", "result", "writes / error"):
            table.add_column(column)
        for r in answer["results"]:
            detail = str(r.get("writes", "")) if r["result"] == "ok" else r["error"]["message"]
            table.add_row(r["upstream"], r["result"], detail)
        return table if answer["results"] else "no managed upstreams"

    ctx.emit(answer, render)
    return ExitCode.FAILED if answer["failed"] else ExitCode.OK


# ---- ramps ----------------------------------------------------------------------------------
@client_command("ramp")
@click.argument("upstream")
@click.argument("split")
@click.option("--over", "duration", required=True, help="total duration, e.g. 30m")
@click.option("--steps", type=click.IntRange(1, 1000), required=True, help="number of steps")
@click.option("--start-at", help="RFC 3339 start time (default now)")
@click.option("--lease", help="how long each step may live unrenewed (e.g. 1h)")
@click.option(
    "--detach", is_flag=True, help="print the ramp id and return; someone must then poll it"
)
@click.option("--poll", "poll_every", default="1s", show_default=True, help="follow interval")
@click.option("--allow-unequal", is_flag=True, help="canary and baseline shares may differ")
@reason_option
@baseline_option
@canary_option
def ramp(
    ctx: Context, upstream: str, split: str, duration: str, steps: int, start_at: str | None,
    lease: str | None, detach: bool, poll_every: str, allow_unequal: bool, reason: str | None,
    canary: tuple[str, ...], baseline: tuple[str, ...],
) -> ExitCode:  # fmt: skip
    """Ramp UPSTREAM linearly to STABLE/BASELINE/CANARY in --steps steps --over a duration.
    Follows it (each poll moves it on, as Orca's would) until it ends; Ctrl-C stops
    following, and the ramp then waits at its step until polled, cancelled or its lease ends."""
    body: dict[str, Any] = {
        "split": parse_split(split),
        "duration": parse_duration(duration),
        "steps": steps,
        **_context(reason),
    }
    if targets := _targets(canary, baseline):
        body["targets"] = targets
    if start_at:
        body["start_at"] = start_at
    if lease:
        body["lease"] = parse_duration(lease)
    if allow_unequal:
        body["allow_unequal"] = True
    interval = parse_duration(poll_every)
    started = ctx.client.call("POST", f"/v1/upstreams/{upstream}/ramps", json=body)
    if detach:
        ctx.emit(started, lambda: _ramp_started_text(started))
        return ExitCode.OK
    if ctx.output == "text":
        click.echo(_ramp_started_text(started))
    final = follow_ramp(ctx, started, interval)
    if ctx.output != "text":
        ctx.emit(final, lambda: None)
    return exit_code_for_ramp(final["status"])


def _ramp_started_text(ramp: dict[str, Any]) -> str:
    return (
        f"ramp {ramp['status']} on {ramp['upstream']} to {split_text(ramp['target'])}\n"
        f"id: {ramp['id']}\n"
        f"cancel: kong-canary cancel {ramp['id']}"
    )


def follow_ramp(ctx: Context, ramp: dict[str, Any], interval: float) -> dict[str, Any]:
    """Poll the ramp until it ends, showing a progress line (a live bar on a terminal,
    one line per change otherwise)."""
    from rich.live import Live

    status_path = f"/v1/ramps/{ramp['id']}"
    live = None
    if ctx.output == "text" and ctx.console.is_terminal:
        live = Live(console=ctx.console, refresh_per_second=4, transient=False)
        live.start()
    last_line = None
    try:
        while True:
            line = ramp_progress_line(ramp, time.time())
            if live is not None:
                live.update(line)
            elif ctx.output == "text" and line != last_line:
                click.echo(line)  # plain: no wrapping, no colour
            last_line = line
            if ramp["status"] in TERMINAL_RAMP_STATES:
                return ramp
            time.sleep(interval)
            try:
                ramp = ctx.client.call("GET", status_path)
            except ClientError as exc:
                if exc.code is not ExitCode.UNREACHABLE:
                    raise
                # a restarting sidecar: the ramp lives in Kong and its id, keep following
                click.echo(f"kong-canary ramp: {exc}; retrying", err=True)
    except KeyboardInterrupt:
        click.echo(
            f"\nstopped following. The ramp waits at its current step until something polls "
            f"{status_path}; cancel it: kong-canary cancel {ramp['id']}",
            err=True,
        )
        raise SystemExit(130) from None
    finally:
        if live is not None:
            live.stop()


def ramp_progress_line(ramp: dict[str, Any], now: float) -> str:
    """One line: bar, percent, status, split now, and when the next step is due."""
    next_at = ramp.get("next_step_at")
    line = (
        f"{bar(ramp['progress'], 24)} {ramp['progress']:>3}% {ramp['status']:<9} "
        f"split {split_text(ramp['split'])} → {split_text(ramp['target'])}"
    )
    if ramp["status"] == "RUNNING" and next_at is not None:
        line += f"  next step in {countdown(next_at - now)}"
    elif ramp["status"] != "RUNNING":
        line += f"  {ramp['message']}"
    return line


@client_command("cancel")
@click.argument("ramp_id")
@reason_option
def cancel(ctx: Context, ramp_id: str, reason: str | None) -> ExitCode:
    """Stop a ramp and roll its canary back (unless a later change took the upstream over)."""
    answer = ctx.client.call("POST", f"/v1/ramps/{ramp_id}/cancel", json=_context(reason))
    ctx.emit(
        answer,
        lambda: (
            f"{answer['status']} {answer['upstream']}: split {split_text(answer['split'])}\n"
            f"{answer['message']}"
        ),
    )
    return ExitCode.OK
