"""Template expansion as Kayenta does it (QueryConfigUtils / PrometheusMetricsService).

Vectors from kayenta-core QueryConfigUtilsTest.java ("test template ${p1} ${p2}" expansions and
the unknown-parameter failure) and kayenta-prometheus PrometheusMetricsServiceSpec.groovy
(``PromQL:histogram_quantile(${quantile}, x{handler="${scope}"})``).
"""

from __future__ import annotations

import pytest

from sidecar.kayenta.template import (
    CanaryScope,
    TemplateError,
    build_query,
    required_variables,
    substitute,
    template_bindings,
)

SCOPE = CanaryScope(scope="/graph", start="s", end="e", extended_scope_params={"quantile": "0.99"})


def test_promql_prefix_is_sent_verbatim():
    query = {"type": "prometheus",
             "customInlineTemplate": 'PromQL:histogram_quantile(${quantile}, x{handler="${scope}"})'}  # fmt: skip  # noqa: E501
    assert build_query(query, {}, SCOPE) == 'histogram_quantile(0.99, x{handler="/graph"})'


def test_named_template_and_orca_escaping():
    query = {"type": "prometheus", "customFilterTemplate": "t"}
    templates = {"t": "PromQL:up{job='$\\{scope}'}"}
    assert build_query(query, templates, SCOPE) == "up{job='/graph'}"
    with pytest.raises(TemplateError, match="not found"):
        build_query({"customFilterTemplate": "nope"}, templates, SCOPE)


def test_non_promql_filter_goes_into_avg_before_label_bindings():
    query = {"metricName": "some-metric-name", "customInlineTemplate": "some-label=${scope}-canary",
             "labelBindings": ["a=b"], "groupByFields": ["x", "y"]}  # fmt: skip
    scope = CanaryScope(scope="some-app", start="s", end="e")
    assert (
        build_query(query, {}, scope)
        == "avg(some-metric-name{some-label=some-app-canary,a=b}) by (x,y)"
    )


def test_unbound_variable_fails_like_string_substitutor():
    with pytest.raises(TemplateError, match="unknown-param"):
        substitute("test template ${unknown-param} ${p2}", {"p1": "v1", "p2": "v2"})
    assert substitute("test template ${p1} ${p2} ${p1} ${p2}", {"p1": "v1", "p2": "v2"}) == (
        "test template v1 v2 v1 v2"
    )


def test_defaults_escapes_and_recursion():
    assert substitute("${a:-5m} $${scope} ${b}", {"b": "${c}", "c": "z"}) == "5m ${scope} z"
    with pytest.raises(TemplateError, match="cyclic"):
        substitute("${a}", {"a": "${a}"})


def test_bindings_skip_empty_location_and_extended_params_win():
    scope = CanaryScope(scope="canary", start="s", end="e", extended_scope_params={"scope": "x"})
    assert template_bindings(scope, {}) == {"scope": "x"}
    with pytest.raises(TemplateError):  # ${location} needs a location to be sent
        build_query({"customInlineTemplate": "PromQL:up{zone='${location}'}"}, {}, scope)


def test_custom_filter_is_rejected_as_deprecated():
    with pytest.raises(TemplateError, match="deprecated"):
        build_query({"customFilter": "x"}, {}, SCOPE)


def test_required_variables():
    assert required_variables("${scope} ${service} ${w:-2m} $${x}") == {"scope", "service"}
