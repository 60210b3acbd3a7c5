"""The Grafana dashboard only queries series that really exist.

Kong's metric names and labels are read from the recorded Prometheus plugin output
(tests/fixtures/kong/kong-*-metrics.txt); the sidecar's are its metrics contract, listed once
in SIDECAR_METRICS below. A query naming any other metric, or a label the metric lacks, fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.helm.chart import CHART_DIR, REPO_ROOT, Rendered

DASHBOARDS = sorted((CHART_DIR / "dashboards").glob("*.json"))
KONG_FIXTURES = sorted((REPO_ROOT / "tests" / "fixtures" / "kong").glob("kong-*-metrics.txt"))

# The sidecar's metrics (the single list of sidecar names the dashboard may use):
# series name -> label names. Histograms list their _bucket series with "le".
SIDECAR_METRICS: dict[str, frozenset[str]] = {
    "kong_canary_upstream_split_percent": frozenset({"upstream", "variant"}),
    "kong_canary_http_requests_total": frozenset({"method", "endpoint", "status"}),
    "kong_canary_http_request_duration_seconds_bucket": frozenset({"method", "endpoint", "le"}),
    "kong_canary_kong_requests_total": frozenset({"method", "outcome"}),
    "kong_canary_kong_request_duration_seconds_bucket": frozenset({"method", "le"}),
    "kong_canary_gateway_requests_total": frozenset({"upstream", "variant", "code_class"}),
    "kong_canary_gateway_request_latency_ms_bucket": frozenset({"upstream", "variant", "le"}),
}

FUNCTIONS_AND_KEYWORDS = {
    # aggregations and modifiers
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "group", "count_values", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "and", "or", "unless", "offset",
}  # fmt: skip
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*")
      |(?P<range>\[[^\]]*\])
      |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      |(?P<number>[0-9.]+(?:e[+-]?[0-9]+)?)
      |(?P<op>=~|!~|!=|==|<=|>=|[-+*/%^(){},=<>])
      |(?P<space>\s+)
      |(?P<var>\$[A-Za-z_]+)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


@dataclass(frozen=True)
class Query:
    selectors: tuple[Selector, ...]
    grouping_labels: frozenset[str]


def parse(expr: str) -> Query:
    """Vector selectors and by/without/on labels of a PromQL expression.

    Enough PromQL for dashboards: strings, range brackets, function calls, label lists and
    matchers. Anything it cannot tokenize fails the test rather than being skipped.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = TOKEN.match(expr, pos)
        assert match, f"cannot parse {expr[pos:]!r} in {expr!r}"
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    selectors: list[Selector] = []
    grouping: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text in LABEL_LIST_KEYWORDS and following == "(":
            i += 2
            while tokens[i][1] != ")":
                if tokens[i][0] == "ident":
                    grouping.add(tokens[i][1])
                i += 1
        elif kind == "ident" and (following == "(" or text in FUNCTIONS_AND_KEYWORDS):
            pass  # a function call or keyword
        elif kind == "ident" or (kind == "op" and text == "{"):
            metric = text if kind == "ident" else ""
            matchers: list[tuple[str, str, str]] = []
            if kind == "ident" and following == "{":
                i += 1
            if tokens[i][1] == "{":
                i += 1
                while tokens[i][1] != "}":
                    if tokens[i][1] == ",":
                        i += 1
                        continue
                    (_, label), (_, op), (vkind, value) = tokens[i : i + 3]
                    assert vkind == "string", f"bad matcher in {expr!r}"
                    matchers.append((label, op, json.loads(value)))
                    i += 3
            if not metric:
                metric = next((v for lbl, op, v in matchers if lbl == "__name__" and op == "="), "")
            selectors.append(Selector(metric, tuple(matchers)))
        i += 1
    return Query(tuple(selectors), frozenset(grouping))


@cache
def kong_series() -> dict[str, dict[str, set[str]]]:
    """metric -> label -> values seen, over every recorded Kong version."""
    series: dict[str, dict[str, set[str]]] = {}
    line = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ")
    pair = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for fixture in KONG_FIXTURES:
        for text in fixture.read_text().splitlines():
            match = line.match(text)
            if not match or text.startswith("#"):
                continue
            labels = series.setdefault(match[1], {})
            for name, value in pair.findall(match[2] or ""):
                labels.setdefault(name, set()).add(value)
    return series


def known_labels(metric: str) -> frozenset[str] | None:
    if metric in SIDECAR_METRICS:
        return SIDECAR_METRICS[metric]
    if metric in kong_series():
        return frozenset(kong_series()[metric])
    return None


def _queries(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(location, PromQL) for every panel target and query variable."""
    if isinstance(node, dict):
        title = node.get("title") or node.get("name") or where
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield title, value
            elif key == "query" and isinstance(value, dict) and "query" in value:
                yield title, value["query"]
            else:
                yield from _queries(value, title)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item, where)


def _all_queries() -> list[tuple[str, str, str]]:
    return [
        (path.name, where, expr)
        for path in DASHBOARDS
        for where, expr in _queries(json.loads(path.read_text()))
    ]


def _promql(expr: str) -> str:
    """Grafana query variables wrap PromQL in label_values(metric, label)."""
    match = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]+)\)", expr.strip())
    return f"{match[1]} by ({match[2]})" if match else expr


def _problems(expr: str) -> list[str]:
    query = parse(_promql(expr))
    problems: list[str] = []
    if not query.selectors:
        problems.append("selects no metric")
    metric_labels: set[str] = set()
    for selector in query.selectors:
        labels = known_labels(selector.metric)
        if labels is None:
            problems.append(f"unknown metric {selector.metric!r}")
            continue
        metric_labels |= labels
        for label, op, value in selector.matchers:
            if label not in labels:
                problems.append(f"{selector.metric} has no label {label!r}")
            seen = kong_series().get(selector.metric, {}).get(label)
            if seen and "$" not in value and op in {"=", "=~"}:
                pattern = re.escape(value) if op == "=" else value
                if not any(re.fullmatch(pattern, v) for v in seen):
                    problems.append(f"{selector.metric}{{{label}{op}{value!r}}} matches no sample")
    for label in query.grouping_labels - metric_labels:
        problems.append(f"groups by {label!r}, which no selected metric has")
    return problems


def test_dashboards_should_exist() -> None:
    assert [p.name for p in DASHBOARDS] == ["kong-canary.json"]
    assert len(_all_queries()) >= 8
    assert len(KONG_FIXTURES) == 3


@pytest.mark.parametrize(
    ("dashboard", "where", "expr"),
    _all_queries(),
    ids=[f"{w}:{e[:40]}" for _, w, e in _all_queries()],
)
def test_query_should_name_only_exported_metrics_and_labels(
    dashboard: str, where: str, expr: str
) -> None:
    assert _problems(expr) == []


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(kong_http_requests_totl[5m])", "unknown metric 'kong_http_requests_totl'"),
        ('kong_latency_bucket{kind="upstream"}', "has no label 'kind'"),
        ('kong_latency_bucket{type="proxy"}', "matches no sample"),
        ("sum by (pod) (kong_canary_upstream_split_percent)", "groups by 'pod'"),
        ('{__name__="kong_bandwith"}', "unknown metric 'kong_bandwith'"),
        ("label_values(kong_canary_split, upstream)", "unknown metric 'kong_canary_split'"),
    ],
)
def test_query_check_should_report_when_query_is_wrong(expr: str, problem: str) -> None:
    """Guards the check above with queries that must fail it."""
    assert any(problem in p for p in _problems(expr)), _problems(expr)


def test_dashboard_should_show_split_beside_5xx_and_p99_per_variant() -> None:
    """The issue's layout: per-upstream split over time next to per-variant 5xx and P99."""
    dashboard = json.loads((CHART_DIR / "dashboards" / "kong-canary.json").read_text())
    first_row = [p for p in dashboard["panels"] if p["type"] != "row" and p["gridPos"]["y"] == 1]
    by_metric = {}
    for panel in first_row:
        (target,) = panel["targets"]
        query = parse(target["expr"])
        assert {"upstream", "variant"} <= query.grouping_labels, panel["title"]
        by_metric[panel["title"]] = {s.metric for s in query.selectors}
    assert list(by_metric.values()) == [
        {"kong_canary_upstream_split_percent"},
        {"kong_canary_gateway_requests_total"},
        {"kong_canary_gateway_request_latency_ms_bucket"},
    ]
    p99 = first_row[2]["targets"][0]["expr"]
    assert p99.startswith("histogram_quantile(0.99,")
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "upstream"}


def test_configmap_should_embed_the_dashboard_file_unchanged(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["grafana-dashboard"]
    cm = rendered.named("ConfigMap", "kc-kong-canary-dashboard")
    for path in DASHBOARDS:
        assert json.loads(cm["data"][path.name]) == json.loads(Path(path).read_text())
