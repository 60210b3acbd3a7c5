"""Every shipped config, expanded as Kayenta expands it, run against a real Prometheus.

Query building follows kayenta-prometheus ``PrometheusMetricsService.buildQuery`` and kayenta-core
``QueryConfigUtils.expandCustomFilter``; response handling follows ``PrometheusResponseConverter``
and ``MetricSetMixerService``. The synthetic series copy Kong's exact names, labels and buckets
from ``tests/fixtures/kong/*-metrics.txt``.
"""

from __future__ import annotations

import math
import random
import statistics

import httpx
import pytest

from sidecar.kayenta.judge import HIGH, NODATA_FAIL, PASS, judge, stage_passes
from sidecar.kayenta.library import load_rendered
from sidecar.kayenta.metricsets import MetricSet, pair
from sidecar.kayenta.prometheus import PrometheusQueryError, fetch_metric, query_range
from sidecar.kayenta.template import CanaryScope
from tests.kayenta.synth import END, EXPECTED_POINTS, START, iso, scope_for

CONFIGS = load_rendered()
NAMES = sorted(CONFIGS)


def _fetch(client: httpx.Client, config: str, metric: dict, scope: CanaryScope) -> list[MetricSet]:
    return fetch_metric(client, metric, CONFIGS[config].get("templates"), scope)


def _side(client, config, scenario, variant, metric) -> MetricSet:
    sets = _fetch(client, config, metric, scope_for(config, scenario, variant))
    assert len(sets) == 1, f"{metric['name']}: labels not aggregated away: {sets}"
    assert dict(sets[0].tags) == {}
    return sets[0]


def _pairs(client, config, scenario):
    pairs = []
    for metric in CONFIGS[config]["metrics"]:
        ctl = _fetch(client, config, metric, scope_for(config, scenario, "baseline"))
        exp = _fetch(client, config, metric, scope_for(config, scenario, "canary"))
        pairs += pair(metric["name"], ctl, exp, EXPECTED_POINTS)
    return pairs


def _finite(values) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _metric(config: str, kind: str) -> list[dict]:
    return [m for m in CONFIGS[config]["metrics"] if kind in m["name"]]


@pytest.mark.parametrize("config", NAMES)
def test_good_canary_series_are_single_full_length_and_plausible(prometheus, config):
    for metric in CONFIGS[config]["metrics"]:
        for variant in ("baseline", "canary"):
            values = _side(prometheus, config, "good", variant, metric).values
            assert len(values) == EXPECTED_POINTS
            assert len(_finite(values)) == EXPECTED_POINTS
            if "5xx" in metric["name"]:
                assert statistics.mean(values) < 0.01
            else:  # P99 of ~18 ms lognormal upstream latency, in ms or s
                scale = 1000 if metric["name"].endswith("seconds") else 1
                assert 20 < statistics.mean(values) * scale < 200


@pytest.mark.parametrize("config", NAMES)
def test_5xx_regression_shows_in_the_ratio(prometheus, config):
    (metric,) = _metric(config, "5xx")
    base = _side(prometheus, config, "errors", "baseline", metric).values
    canary = _side(prometheus, config, "errors", "canary", metric).values
    assert 0.03 < statistics.mean(canary) < 0.08  # 5 % of requests answered 500
    assert statistics.mean(base) < 0.01


@pytest.mark.parametrize("config", NAMES)
def test_p99_regression_shows_in_every_p99_that_includes_upstream(prometheus, config):
    for metric in _metric(config, "p99"):
        base = statistics.mean(_side(prometheus, config, "slow", "baseline", metric).values)
        canary = statistics.mean(_side(prometheus, config, "slow", "canary", metric).values)
        assert canary > 3 * base, metric["name"]


@pytest.mark.parametrize("config", NAMES)
def test_no_traffic_window_is_nan_not_zero(prometheus, config):
    """0/0 and histogram_quantile over zero rates are NaN; Kayenta parses the "NaN" strings."""
    for metric in CONFIGS[config]["metrics"]:
        values = _side(prometheus, config, "idle", "canary", metric).values
        assert len(values) == EXPECTED_POINTS
        assert all(math.isnan(v) for v in values), metric["name"]


@pytest.mark.parametrize("config", NAMES)
def test_missing_5xx_series_reads_as_zero_thanks_to_or_vector(prometheus, config):
    (metric,) = _metric(config, "5xx")
    values = _side(prometheus, config, "clean", "canary", metric).values
    assert values == (0.0,) * EXPECTED_POINTS
    bare = metric["query"]["customInlineTemplate"].replace(" or vector(0)", "")
    without = _fetch(
        prometheus,
        config,
        {**metric, "query": {**metric["query"], "customInlineTemplate": bare}},
        scope_for(config, "clean", "canary"),
    )
    assert without == [MetricSet()]  # what Kayenta would judge as no data


@pytest.mark.parametrize("config", NAMES)
@pytest.mark.parametrize(
    ("scenario", "passes"),
    [("good", True), ("clean", True), ("errors", False), ("slow", False), ("idle", False)],
)
def test_offline_judge_verdicts_on_real_query_results(prometheus, config, scenario, passes):
    result = judge(CONFIGS[config], _pairs(prometheus, config, scenario), 95, 75, random.Random(1))
    assert stage_passes(result.score, 95, 75) is passes, result
    by_name = {r.name: r for r in result.results}
    if scenario in ("good", "clean"):
        assert result.score == 100.0
    elif scenario == "errors":
        ratio = by_name[_metric(config, "5xx")[0]["name"]]
        assert (ratio.classification, ratio.critical) == (HIGH, True)
        assert result.score == 0.0 and result.reason.startswith("Canary Failed")
    elif scenario == "slow":
        assert all(by_name[m["name"]].classification == HIGH for m in _metric(config, "p99"))
        assert by_name[_metric(config, "5xx")[0]["name"]].classification == PASS
    else:  # no traffic: 5xx NaNs become zeros and pass, P99 must have data
        assert all(by_name[m["name"]].classification == NODATA_FAIL for m in _metric(config, "p99"))
        assert by_name[_metric(config, "5xx")[0]["name"]].classification == PASS


def test_bad_promql_is_a_query_error(prometheus):
    with pytest.raises(PrometheusQueryError):
        query_range(prometheus, "sum(rate(kong_http_status[2m]", iso(START), iso(END), 30)
