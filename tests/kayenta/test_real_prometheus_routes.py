"""Issue 15 on a real Prometheus: a route with 1 % of the traffic fails completely on the canary.

Scenario ``route`` of ``tests/kayenta/synth.py``: the service's main route answers 3 % 503s on
both sides, the ``refunds`` route (every 100th request) answers 200 on the baseline and 500 on
the canary. The service-level 5xx ratio moves from ~3 % to ~4 % (a mean ratio of ~1.33, under
``allowedIncrease: 1.5``), so the service-level config passes; the per-route config of the same
source compares ``refunds`` alone (0 % vs 100 %) and fails. Both verdicts come from
``kong-canary kayenta judge`` on the metric-set pairs Kayenta would build from the real queries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from sidecar.kayenta.cli import judge_command
from sidecar.kayenta.library import DEFAULT_LIBRARY_DIR, load_rendered
from sidecar.kayenta.metricsets import pair
from sidecar.kayenta.prometheus import fetch_metric
from tests.kayenta.synth import BROKEN_ROUTE, EXPECTED_POINTS, MAIN_ROUTE, scope_for, service_level

CONFIGS = load_rendered()
PER_ROUTE = sorted(n for n in CONFIGS if n != service_level(n))
SCENARIO = "route"


def _pairs_json(client: httpx.Client, config: str, route: str) -> list[dict]:
    """Kayenta's ``MetricSetPair`` list for one run (NaN written as Kayenta writes it)."""
    out = []
    for metric in CONFIGS[config]["metrics"]:
        sides = [
            fetch_metric(
                client,
                metric,
                CONFIGS[config].get("templates"),
                scope_for(config, SCENARIO, variant, route),
            )
            for variant in ("baseline", "canary")
        ]
        for p in pair(metric["name"], sides[0], sides[1], EXPECTED_POINTS):
            out.append(
                {
                    "name": p.name,
                    "tags": dict(p.tags),
                    "values": {
                        "control": ["NaN" if math.isnan(v) else v for v in p.control],
                        "experiment": ["NaN" if math.isnan(v) else v for v in p.experiment],
                    },
                }
            )
    return out


def _verdict(client: httpx.Client, tmp_path: Path, config: str, route: str) -> tuple[int, dict]:
    pairs = tmp_path / f"{config}-{route}-pairs.json"
    pairs.write_text(json.dumps(_pairs_json(client, config, route)), encoding="utf-8")
    path = DEFAULT_LIBRARY_DIR / "configs" / f"{config}.json"
    result = CliRunner().invoke(judge_command, ["--config", str(path), "--pairs", str(pairs)])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)


def _summary(doc: dict) -> str:
    metrics = ", ".join(f"{r['name']}={r['classification']}" for r in doc["results"])
    ratio = next(r for r in doc["results"] if r["name"].endswith("5xx_ratio"))
    means = f"{ratio['control_stats']['mean']:.2%} -> {ratio['experiment_stats']['mean']:.2%}"
    return f"score {doc['score']:g}, stagePasses {doc['stagePasses']}, 5xx {means} ({metrics})"


def test_every_source_with_a_route_dimension_has_a_per_route_config():
    assert PER_ROUTE == [
        "kong-2x-service-per-variant-route",
        "kong-2x-variant-label-route",
        "kong-3x-service-per-variant-route",
        "kong-3x-variant-label-route",
        "kong-canary-sidecar-gateway-route",
    ]


@pytest.mark.parametrize("config", PER_ROUTE)
def test_a_broken_1_percent_route_fails_per_route_while_the_service_level_passes(
    prometheus, tmp_path, config, capsys
):
    service_config = service_level(config)
    service_exit, service_doc = _verdict(prometheus, tmp_path, service_config, MAIN_ROUTE)
    route_exit, route_doc = _verdict(prometheus, tmp_path, config, BROKEN_ROUTE)
    with capsys.disabled():
        print(f"\n  {service_config} (service level): {_summary(service_doc)}")
        print(f"  {config} (route {BROKEN_ROUTE}): {_summary(route_doc)}")
    assert (service_exit, service_doc["stagePasses"], service_doc["score"]) == (0, True, 100.0)
    service_ratio = next(r for r in service_doc["results"] if r["name"].endswith("5xx_ratio"))
    moved = service_ratio["experiment_stats"]["mean"] - service_ratio["control_stats"]["mean"]
    assert 0.005 < moved < 0.015  # the broken route's 1 % does reach the service-level ratio
    assert (route_exit, route_doc["stagePasses"], route_doc["score"]) == (1, False, 0.0)
    ratio = next(r for r in route_doc["results"] if r["name"].endswith("5xx_ratio"))
    assert (ratio["classification"], ratio["critical"]) == ("High", True)


@pytest.mark.parametrize("config", PER_ROUTE)
def test_the_healthy_route_passes_per_route_too(prometheus, tmp_path, config):
    """The per-route config does not fail a canary for the other route's shared 3 % 503s."""
    exit_code, doc = _verdict(prometheus, tmp_path, config, MAIN_ROUTE)
    assert (exit_code, doc["score"]) == (0, 100.0), _summary(doc)
