"""Synthetic, deterministic Prometheus data in the exact shapes the shipped configs query.

Kong series copy their metric names, label names (and order) and histogram buckets from the real
expositions in ``tests/fixtures/kong/`` (2.8.5, 3.4.2, 3.9.3); the planned sidecar series and the
application-side series use the names in the library. Traffic is simulated per request with a
seeded RNG, so the same OpenMetrics text is produced on every run.
"""

from __future__ import annotations

import bisect
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from sidecar.kayenta.template import CanaryScope

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kong"

BASE = 1_700_000_000  # fixed epoch: reproducible blocks, far from "now"
SCRAPE = 30
WARMUP = 300
WINDOW = 1800
STEP = 30
START = BASE + WARMUP
END = START + WINDOW
TIMESTAMPS = tuple(range(BASE, END + 1, SCRAPE))
EXPECTED_POINTS = WINDOW // STEP + 1

SCENARIOS = ("good", "errors", "slow", "idle", "clean", "route")
VARIANTS = ("baseline", "canary")
RPS = 5.0
# Scenario "route" (issue 15): one route ("refunds", every 100th request: 1 % of the traffic)
# fails completely on the canary, on a service whose other route has 3 % 503s on both sides.
# Service-level 5xx: ~3 % vs ~4 %, a mean ratio of ~1.33, under allowedIncrease 1.5.
ROUTE_RPS = 20.0
BROKEN_ROUTE = "refunds"
BROKEN_EVERY = 100
MAIN_ROUTE = "main"
APP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def iso(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- ground truth from the recorded Kong expositions -------------------------------------------

_SERIES = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}")


@cache
def kong_layout(version: str, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(label names in Kong's order without ``le``, bucket ``le`` values) for service "orders"."""
    labels: tuple[str, ...] = ()
    les: list[str] = []
    for line in (FIXTURES / f"kong-{version}-metrics.txt").read_text().splitlines():
        m = _SERIES.match(line)
        if not m or m["name"] != name or 'service="orders"' not in m["labels"]:
            continue
        pairs = re.findall(r'([a-z_]+)="([^"]*)"', m["labels"])
        labels = tuple(k for k, _ in pairs if k != "le")
        le = dict(pairs).get("le")
        if le is not None and le not in les:
            les.append(le)
    if not labels:
        raise LookupError(f"{name} not in kong-{version} fixture")
    return labels, tuple(les)


# --- traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    status: str
    request_ms: float
    upstream_ms: float
    kong_ms: float
    route: str = MAIN_ROUTE


def _profile(scenario: str, variant: str) -> tuple[float, str, float]:
    """(error probability, error code, probability of a slow request)."""
    canary = variant == "canary"
    if scenario == "clean":
        return 0.0, "503", 0.0
    if scenario == "errors" and canary:
        return 0.05, "500", 0.0
    if scenario == "slow" and canary:
        return 0.002, "503", 0.04
    if scenario == "route":
        return 0.03, "503", 0.0
    return 0.002, "503", 0.0


@cache
def traffic(scenario: str, variant: str) -> tuple[tuple[Request, ...], ...]:
    """Requests per scrape interval (index k covers (TIMESTAMPS[k-1], TIMESTAMPS[k]])."""
    rng = random.Random(f"{scenario}/{variant}")
    p_err, err_code, p_slow = _profile(scenario, variant)
    per_interval = int((ROUTE_RPS if scenario == "route" else RPS) * SCRAPE)
    served = 0
    out: list[tuple[Request, ...]] = [()]
    for k in range(1, len(TIMESTAMPS)):
        if scenario == "idle" and k > 2:
            out.append(())
            continue
        reqs = []
        for _ in range(per_interval):
            upstream = rng.lognormvariate(math.log(18.0), 0.45)
            if rng.random() < p_slow:
                upstream += rng.uniform(300.0, 900.0)
            kong = rng.uniform(0.3, 2.0)
            status = err_code if rng.random() < p_err else "200"
            served += 1
            if scenario == "route" and served % BROKEN_EVERY == 0:
                status = "500" if variant == "canary" else "200"
                reqs.append(Request(status, upstream + kong, upstream, kong, BROKEN_ROUTE))
                continue
            reqs.append(Request(status, upstream + kong, upstream, kong))
        out.append(tuple(reqs))
    return tuple(out)


# --- series ---------------------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Histogram:
    """One histogram family of one label set: which requests and which latency go in."""

    name: str
    labels: Labels
    les: tuple[str, ...]
    field: str  # Request attribute
    scale: float  # ms -> unit
    status: str | None = None  # only requests with this status (app histograms split by status)


def _counter_lines(name: str, labels: Labels, reqs_by_k, status: str) -> Iterator[tuple[int, str]]:
    total = 0
    for k, reqs in enumerate(reqs_by_k):
        total += sum(r.status == status for r in reqs)
        if total:
            yield k, _sample(name, labels, total, TIMESTAMPS[k])


def _hist_lines(h: Histogram, reqs_by_k) -> Iterator[tuple[int, str]]:
    bounds = [float(le) for le in h.les if le != "+Inf"]
    counts = [0] * (len(bounds) + 1)
    total_sum = 0.0
    for k, reqs in enumerate(reqs_by_k):
        for r in reqs:
            if h.status is not None and r.status != h.status:
                continue
            value = getattr(r, h.field) * h.scale
            counts[bisect.bisect_left(bounds, value)] += 1
            total_sum += value
        n = sum(counts)
        if not n:
            continue
        ts = TIMESTAMPS[k]
        running = 0
        for le, c in zip(h.les, [*counts[: len(bounds)], counts[-1]], strict=True):
            running += c
            yield k, _sample(f"{h.name}_bucket", (*h.labels, ("le", le)), running, ts)
        yield k, _sample(f"{h.name}_count", h.labels, n, ts)
        yield k, _sample(f"{h.name}_sum", h.labels, round(total_sum, 3), ts)


def _sample(name: str, labels: Labels, value: float, ts: int) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{body}}} {value} {ts}"


def _split(reqs_by_k, parts: int, index: int):
    return tuple(reqs[index::parts] for reqs in reqs_by_k)


def route_label(service: str, route: str) -> str:
    """The ``route`` label value: the main route is named after its service (as in the Kong
    fixtures), others ``<service>-<route>`` (Kong route names are unique, so the routes of
    per-variant services differ by side)."""
    return service if route == MAIN_ROUTE else f"{service}-{route}"


def _by_route(reqs_by_k) -> dict[str, tuple]:
    routes = sorted({r.route for reqs in reqs_by_k for r in reqs})
    return {
        route: tuple(tuple(r for r in reqs if r.route == route) for reqs in reqs_by_k)
        for route in routes
    }


def _codes(scenario: str, variant: str) -> tuple[str, ...]:
    return tuple(sorted({r.status for reqs in traffic(scenario, variant) for r in reqs}))


def _kong3(version: str, service: str, extra: Labels, reqs, codes) -> Iterator[tuple[int, str]]:
    for route, route_reqs in _by_route(reqs).items():
        yield from _kong3_route(
            version, service, route_label(service, route), extra, route_reqs, codes
        )


def _kong3_route(
    version: str, service: str, route: str, extra: Labels, reqs, codes
) -> Iterator[tuple[int, str]]:
    names, _ = kong_layout(version, "kong_http_requests_total")
    base = {"service": service, "route": route, "source": "service", "workspace": "default"}
    base["consumer"] = ""
    for code in codes:
        labels = tuple((n, code if n == "code" else base[n]) for n in names) + extra
        yield from _counter_lines("kong_http_requests_total", labels, reqs, code)
    for fam, fld in (
        ("kong_request_latency_ms", "request_ms"),
        ("kong_upstream_latency_ms", "upstream_ms"),
        ("kong_kong_latency_ms", "kong_ms"),
    ):
        names, les = kong_layout(version, f"{fam}_bucket")
        labels = tuple((n, base[n]) for n in names) + extra
        yield from _hist_lines(Histogram(fam, labels, les, fld, 1.0), reqs)


def _kong2(service: str, extra: Labels, reqs, codes) -> Iterator[tuple[int, str]]:
    for route, route_reqs in _by_route(reqs).items():
        values = {"service": service, "route": route_label(service, route)}
        names, _ = kong_layout("2.8.5", "kong_http_status")
        for code in codes:
            labels = tuple((n, code if n == "code" else values[n]) for n in names) + extra
            yield from _counter_lines("kong_http_status", labels, route_reqs, code)
        names, les = kong_layout("2.8.5", "kong_latency_bucket")
        for typ, fld in (
            ("request", "request_ms"),
            ("upstream", "upstream_ms"),
            ("kong", "kong_ms"),
        ):
            labels = tuple((n, typ if n == "type" else values[n]) for n in names) + extra
            yield from _hist_lines(Histogram("kong_latency", labels, les, fld, 1.0), route_reqs)


def _sidecar(scenario: str, variant: str, reqs, codes) -> Iterator[tuple[int, str]]:
    """The sidecar's series with the ``route`` label agreed for issue 15 (route name, else id)."""
    for route, route_reqs in _by_route(reqs).items():
        base: Labels = (
            ("upstream", scenario),
            ("variant", variant),
            ("route", route_label(scenario, route)),
        )
        for code in codes:
            cls = f"{code[0]}xx"
            yield from _counter_lines(
                "kong_canary_gateway_requests_total", (*base, ("code_class", cls)), route_reqs, code
            )
        les = kong_layout("3.4.2", "kong_upstream_latency_ms_bucket")[1]
        for fam, fld in (
            ("kong_canary_gateway_upstream_latency_ms", "upstream_ms"),
            ("kong_canary_gateway_request_latency_ms", "request_ms"),
        ):
            yield from _hist_lines(Histogram(fam, base, les, fld, 1.0), route_reqs)


def _app(kind: str, scenario: str, variant: str, reqs, codes) -> Iterator[tuple[int, str]]:
    les = (*(f"{b}" for b in APP_BUCKETS), "+Inf")
    for pod in (0, 1):
        pod_reqs = _split(reqs, 2, pod)
        inst = (("instance", f"10.0.{VARIANTS.index(variant)}.{pod}:8080"), ("job", scenario))
        for code in codes:
            if kind == "micrometer":
                name = "http_server_requests_seconds"
                outcome = "SUCCESS" if code == "200" else "SERVER_ERROR"
                labels = (
                    ("exception", "None"),
                    ("method", "GET"),
                    ("outcome", outcome),
                    ("status", code),
                    ("uri", "/orders"),
                    *inst,
                    ("version", variant),
                )
            elif kind == "prometheus-client":
                name = "http_request_duration_seconds"
                labels = (
                    ("code", code),
                    ("handler", "/orders"),
                    ("method", "get"),
                    *inst,
                    ("version", variant),
                )
            else:
                name = "http_server_request_duration_seconds"
                labels = (
                    ("http_request_method", "GET"),
                    ("http_response_status_code", code),
                    ("http_route", "/orders"),
                    *inst,
                    ("service_version", variant),
                )
            yield from _hist_lines(
                Histogram(name, labels, les, "upstream_ms", 0.001, status=code), pod_reqs
            )


# --- which data each shipped config reads, and the scope it is judged with ------------------


ROUTE_SUFFIX = "-route"


def service_level(config: str) -> str:
    """The service-level config a per-route config was rendered from (itself otherwise)."""
    return config.removesuffix(ROUTE_SUFFIX)


def scheme_lines(config: str, scenario: str, variant: str) -> Iterator[tuple[int, str]]:
    """A per-route config reads its service-level config's series (they carry ``route``)."""
    if config != service_level(config):
        return
    reqs = traffic(scenario, variant)
    codes = _codes(scenario, variant)
    if config == "kong-3x-service-per-variant":
        for node in (0, 1):  # two Kong nodes: `instance` differs and must be summed away
            extra = (("instance", f"kong-{node}:8100"), ("job", "kong"))
            yield from _kong3("3.4.2", f"{scenario}-{variant}", extra, _split(reqs, 2, node), codes)
    elif config == "kong-3x-variant-label":
        extra = (("instance", f"kong-{variant}:8100"), ("job", "kong"), ("variant", variant))
        yield from _kong3("3.9.3", scenario, extra, reqs, codes)
    elif config == "kong-2x-service-per-variant":
        yield from _kong2(f"{scenario}-{variant}", (("instance", "kong-0:8001"),), reqs, codes)
    elif config == "kong-2x-variant-label":
        yield from _kong2(
            scenario, (("instance", f"kong-{variant}:8001"), ("variant", variant)), reqs, codes
        )
    elif config == "kong-canary-sidecar-gateway":
        yield from _sidecar(scenario, variant, reqs, codes)
    else:
        kind = {
            "app-micrometer-http-server": "micrometer",
            "app-prometheus-client-http": "prometheus-client",
            "app-otel-http-server": "otel",
        }[config]
        yield from _app(kind, scenario, variant, reqs, codes)


def scope_for(config: str, scenario: str, variant: str, route: str = MAIN_ROUTE) -> CanaryScope:
    """The execution-request scope a user of this config would send for one side; a per-route
    config also gets ``extendedScopeParams.route``: the label value of ``route`` on that side."""
    if config != service_level(config):
        plain = scope_for(service_level(config), scenario, variant)
        service = plain.extended_scope_params.get("service") or plain.extended_scope_params.get(
            "upstream", plain.scope
        )
        params = {**plain.extended_scope_params, "route": route_label(service, route)}
        return replace(plain, extended_scope_params=params)
    if config.endswith("service-per-variant"):
        scope, params = f"{scenario}-{variant}", {}
    elif config.endswith("variant-label"):
        scope, params = variant, {"service": scenario}
    elif config == "kong-canary-sidecar-gateway":
        scope, params = variant, {"upstream": scenario}
    else:
        scope, params = variant, {"job": scenario}
    return CanaryScope(
        scope=scope, start=iso(START), end=iso(END), step=STEP, extended_scope_params=params
    )


def openmetrics(configs: list[str]) -> str:
    """All series for all configs, scenarios and variants, ordered by timestamp, ``# EOF``."""
    by_k: list[list[str]] = [[] for _ in TIMESTAMPS]
    for config in configs:
        for scenario in SCENARIOS:
            for variant in VARIANTS:
                for k, line in scheme_lines(config, scenario, variant):
                    by_k[k].append(line)
    return "\n".join(line for lines in by_k for line in lines) + "\n# EOF\n"
