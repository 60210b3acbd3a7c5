"""``kong-canary preflight``: is Kong recording what the Kayenta configs will query?"""

from __future__ import annotations

import json
import re
import secrets
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
import httpx

from sidecar.kayenta.preflight import Report, label, plan_fixes
from sidecar.kayenta.preflight_kong import (
    apply_fixes,
    check,
    check_routes,
    library_needs,
    requirement_for,
    route_traffic,
)
from sidecar.kayenta.preflight_routes import (
    RouteFinding,
    parse_routes,
    requests_metric,
    route_label,
)
from sidecar.kayenta.prometheus import PrometheusQueryError
from sidecar.kong.build import build_kong
from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import KongError, KongNotFound
from sidecar.settings import Settings, SettingsError, load_settings

CANNOT_CHECK = 2
PROMQL_DURATION = re.compile(r"^(\d+(ms|[smhdwy]))+$")


def _settings(config_file: str | None, admin_url: str | None) -> Settings:
    """The sidecar's own Kong settings (env, file, option). API tokens only matter to a
    serving sidecar, so their absence is not a problem here."""
    overrides: dict[str, Any] = {"kong_admin_url": admin_url}
    try:
        return load_settings(config_file=config_file, overrides=overrides)
    except SettingsError as exc:
        others = [p for p in exc.problems if not p.startswith("tokens:")]
        if others:
            raise SettingsError(others) from None
    unused = {"tokens": f"preflight={secrets.token_hex(16)}"}  # never used to serve
    return load_settings(config_file=config_file, overrides={**overrides, **unused})


def _fail(message: str) -> NoReturn:
    click.echo(f"preflight: {message}", err=True)
    sys.exit(CANNOT_CHECK)


def _header(report: Report) -> list[str]:
    req = report.requirement
    lines = [f"configs: {', '.join(req.configs) or '(none read Kong metrics)'}"]
    for option, metrics in req.options.items():
        lines.append(f"needs {option}: {', '.join(sorted({m.split(': ')[1] for m in metrics}))}")
    return lines


def _findings(report: Report) -> list[str]:
    lines = []
    lines.append(
        "services: " + (", ".join(f"{label(s)} ({s['id']})" for s in report.services) or "(none)")
    )
    for gap in report.gaps:
        where = f"service {label(gap.service)}"
        where += f", route {label(gap.route)}" if gap.route is not None else ""
        if gap.plugin is None:
            lines.append(f"MISSING {where}: no prometheus plugin runs for its requests")
        else:
            lines.append(
                f"MISSING {where}: prometheus plugin {gap.plugin['id']} ({gap.scope}) "
                f"lacks {', '.join(gap.missing)}"
            )
    lines += [f"note: {n}" for n in report.notes]
    return lines


def _route_lines(findings: Sequence[RouteFinding]) -> list[str]:
    lines = []
    for f in findings:
        if f.route is None or f.service is None:
            lines += [f"MISSING route {f.wanted}: {p}" for p in f.problems]
            continue
        where = f"route {f.wanted}: service {label(f.service)}"
        lines += [f"MISSING {where}: {p}" for p in f.problems]
        if f.ok:
            recorded = f"prometheus plugin {f.plugin['id']} ({f.scope})" if f.plugin else ""
            seen = f", {f.requests:g} requests in {f.window}" if f.requests is not None else ""
            lines.append(
                f"route {f.wanted}: ok, service {label(f.service)}, recorded by {recorded}{seen}"
            )
        lines.append(f"  pass extendedScopeParams.route={route_label(f.route)}")
    return lines


@click.command("preflight")
@click.option("--upstream", required=True, help="Kong upstream the canary shifts.")
@click.option(
    "--canary-config",
    "configs",
    multiple=True,
    help="Check only these library configs (repeatable) [default: every Kong config]",
)
@click.option(
    "--routes",
    "routes",
    multiple=True,
    help="Routes (names or ids, comma-separated) that per-route configs will judge: each must "
    "be a route of the upstream's services, recorded by Kong's Prometheus plugin "
    "[default configs then: the per-route ones]",
)
@click.option(
    "--prometheus-url",
    help="Prometheus that scrapes Kong: with --routes, check each route has requests",
)
@click.option(
    "--traffic-window",
    default="1h",
    show_default=True,
    help="How far back --prometheus-url looks for a route's requests (PromQL duration)",
)
@click.option("--fix", is_flag=True, help="Turn the missing options on through the Admin API.")
@click.option("--kong-admin-url", help="Kong Admin API URL [KONG_CANARY_KONG_ADMIN_URL]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML settings")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def preflight(
    upstream: str,
    configs: tuple[str, ...],
    routes: tuple[str, ...],
    prometheus_url: str | None,
    traffic_window: str,
    fix: bool,
    kong_admin_url: str | None,
    config_file: str | None,
    output: str,
) -> None:
    """Check that Kong's Prometheus plugin records, for every service proxying to UPSTREAM,
    the metrics the Kayenta configs query (Kong 3.x: status_code_metrics for 5xx ratios,
    latency_metrics for P99s; Kong 2.x records both always).

    With --routes, also that each listed route is a route of a service proxying to UPSTREAM,
    which value to pass as extendedScopeParams.route (its name, else its id), the plugin that
    records it, and (with --prometheus-url) that Kong's metrics show requests on it.

    Exit status: 0 covered (after --fix: fixed and checked again), 1 something is missing,
    2 the check could not run (settings, Kong or Prometheus unreachable, no such upstream or
    config).
    """
    try:
        wanted = parse_routes(routes) if routes else ()
    except ValueError as exc:
        _fail(str(exc))
    if prometheus_url and not wanted:
        _fail("--prometheus-url checks the traffic of --routes: name the routes too")
    if not PROMQL_DURATION.match(traffic_window):
        _fail(f"--traffic-window: {traffic_window!r} is not a PromQL duration (e.g. 1h, 30m)")
    try:
        settings = _settings(config_file, kong_admin_url)
    except SettingsError as exc:
        _fail(str(exc))
    if settings.kong.admin_url is None:
        _fail("no Kong Admin API: pass --kong-admin-url or set KONG_CANARY_KONG_ADMIN_URL")
    kong: KongAdmin = build_kong(settings)
    try:
        try:
            info = kong.info()
            kong.upstream(upstream)
        except KongNotFound:
            _fail(f"Kong has no upstream {upstream!r}")
        except KongError as exc:
            _fail(f"Kong: {exc}")
        try:
            needs = library_needs()
            requirement = requirement_for(kong, configs, needs, per_route=bool(wanted))
            report, plugins = check(kong, upstream, requirement, verify_upstream=False)
            fixes = plan_fixes(report, plugins) if report.services else []
            after = None
            if fix and fixes:
                apply_fixes(kong, fixes)
                after, plugins = check(kong, upstream, requirement, verify_upstream=False)
            findings = check_routes(kong, upstream, wanted, requirement, plugins) if wanted else []
        except KongError as exc:
            _fail(f"Kong: {exc}")
        except ValueError as exc:
            _fail(str(exc))
    finally:
        kong.close()  # its kept-alive connections
    if prometheus_url and findings:
        findings = _with_traffic(prometheus_url, findings, requests_metric(needs, requirement),
                                 traffic_window)  # fmt: skip
    final = after or report
    ok = final.ok and all(f.ok for f in findings)
    if output == "json":
        doc = {
            "kong": {"version": info.version, "flavour": str(kong.flavour)},
            "ok": ok,
            "before": report.to_dict(),
            "fixes": [f.to_dict() for f in fixes],
            "applied": after is not None,
            "after": after.to_dict() if after is not None else None,
            "routes": [f.to_dict() for f in findings],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"kong-canary preflight: upstream {upstream}, Kong {info.version}")
        for line in _header(report) + _findings(report):
            click.echo(line)
        if after is None:  # route findings are of the state after any fix
            for line in _route_lines(findings):
                click.echo(line)
        for planned in fixes:
            click.echo(("fixed: " if after is not None else "fix: ") + planned.describe())
        if fixes and after is None:
            click.echo("run again with --fix to apply")
        if after is not None:
            click.echo("checked again:")
            for line in _findings(after) + _route_lines(findings):
                click.echo(line)
        click.echo(_result_line(final, findings))
    sys.exit(0 if ok else 1)


def _result_line(report: Report, findings: list[RouteFinding]) -> str:
    """The last line, consistent with the exit status: a report can be not ok with no plugin
    gap at all (no service proxies to the upstream, configs of the other Kong major)."""
    problems = len(report.gaps) + sum(not f.ok for f in findings)
    if not report.services:
        problems += 1  # the note says: nothing proxies to the upstream
    problems += len(report.requirement.mismatched)  # each has its note
    return "result: ok" if problems == 0 else f"result: {problems} finding(s)"


def _with_traffic(
    url: str, findings: list[RouteFinding], metric: str | None, window: str
) -> list[RouteFinding]:
    if metric is None:
        _fail("no checked config reads Kong's request counter: cannot check route traffic")
    try:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            return route_traffic(client, findings, metric, window)
    except (httpx.HTTPError, PrometheusQueryError) as exc:
        _fail(f"Prometheus: {exc}")
