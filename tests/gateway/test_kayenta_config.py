"""The library's sidecar-gateway config reads exactly the series ``sidecar.gateway.metrics``
exports: every metric name in its PromQL is one of ours (with the ``_bucket`` suffix only
on histograms), every label it matches on is one of that metric's labels, and the values
it compares with exist (``code_class`` is ``5xx``; ``variant`` is the Kayenta scope)."""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

from sidecar.gateway.entries import CODE_CLASS
from sidecar.gateway.metrics import REQUEST_LATENCY, REQUESTS, UPSTREAM_LATENCY
from sidecar.kayenta.library import load_rendered
from sidecar.kayenta.template import CanaryScope, build_query

SELECTOR = re.compile(r"(kong_canary_[a-z_]+)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(=~|!=|!~|=)\s*'([^']*)'")


def _exported() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for metric in (REQUESTS, REQUEST_LATENCY, UPSTREAM_LATENCY):
        labels = tuple(metric._labelnames)
        if isinstance(metric, Counter):
            out[f"{metric._name}_total"] = labels
        elif isinstance(metric, Histogram):
            out[f"{metric._name}_bucket"] = (*labels, "le")
    return out


def test_the_sidecar_config_uses_our_metric_and_label_names() -> None:
    config = load_rendered()["kong-canary-sidecar-gateway"]
    exported = _exported()
    scope = CanaryScope("canary", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z",
                        extended_scope_params={"upstream": "orders"})  # fmt: skip
    seen: set[str] = set()
    for metric in config["metrics"]:
        assert metric["query"]["metricName"] in exported, metric["name"]
        promql = build_query(metric["query"], config.get("templates"), scope)
        selectors = SELECTOR.findall(promql)
        assert selectors, promql
        for name, matchers in selectors:
            assert name in exported, (metric["name"], name)
            seen.add(name)
            found = dict((k, v) for k, _, v in MATCHER.findall(matchers))
            assert set(found) <= set(exported[name]), (metric["name"], found)
            assert found["upstream"] == "orders" and found["variant"] == "canary"
            if "code_class" in found:
                assert found["code_class"] in CODE_CLASS.values()
    assert seen == set(exported)  # requests, request latency and upstream latency all used
