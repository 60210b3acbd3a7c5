"""The shipped library: generated from library.yaml, schema-valid, and following our policy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from sidecar.kayenta.library import (
    DEFAULT_LIBRARY_DIR,
    JUDGE_NAME,
    RENDER_COMMAND,
    load_rendered,
    stale_files,
    write_library,
)
from sidecar.kayenta.template import required_variables
from sidecar.kayenta.validate import validate_config

CONFIGS = load_rendered()
INVALID = DEFAULT_LIBRARY_DIR / "invalid"
EXPECTED_INVALID: dict[str, str] = yaml.safe_load((INVALID / "expected.yaml").read_text())


def test_rendered_configs_are_up_to_date():
    stale = stale_files()
    assert not stale, f"kayenta-configs/configs is out of date ({stale}); run: {RENDER_COMMAND}"


def test_staleness_is_detected_and_render_repairs_it(tmp_path: Path):
    lib = tmp_path / "lib"
    shutil.copytree(DEFAULT_LIBRARY_DIR, lib)
    spec = yaml.safe_load((lib / "library.yaml").read_text())
    spec["defaults"]["rate_window"] = "5m"
    (lib / "library.yaml").write_text(yaml.safe_dump(spec))
    (lib / "configs" / "leftover.json").write_text("{}")
    assert set(stale_files(lib)) == {f"{n}.json" for n in CONFIGS} | {"leftover.json"}
    write_library(lib)
    assert stale_files(lib) == []
    assert "[5m]" in (lib / "configs" / "kong-2x-variant-label.json").read_text()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_config_is_schema_valid(name):
    assert validate_config(CONFIGS[name]) == []


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_config_policy(name):
    config = CONFIGS[name]
    assert config["name"] == name and " " not in name
    assert config["judge"]["name"] == JUDGE_NAME
    assert sum(config["classifier"]["groupWeights"].values()) == 100
    for metric in config["metrics"]:
        canary = metric["analysisConfigurations"]["canary"]
        template = metric["query"]["customInlineTemplate"]
        assert template.startswith("PromQL:") and "scope" in required_variables(template)
        assert canary["direction"] == "increase"
        if "5xx" in metric["name"]:
            assert canary["nanStrategy"] == "replace" and canary["critical"] is True
            assert re.search(r"\)\) or vector\(0\)\) / sum\(rate\(", template)
        else:
            assert canary["nanStrategy"] == "remove" and canary["mustHaveData"] is True
            assert template.startswith("PromQL:histogram_quantile(0.99, sum by (le) (rate(")
        # every label outside the aggregation is dropped: outermost functions are sum / quantile
        assert "by (" not in template.replace("sum by (le)", "")


def test_library_covers_every_family_in_the_issue():
    metric_names = {m["query"]["metricName"] for c in CONFIGS.values() for m in c["metrics"]}
    assert {
        "kong_http_requests_total", "kong_request_latency_ms_bucket",
        "kong_upstream_latency_ms_bucket", "kong_http_status", "kong_latency_bucket",
        "kong_canary_gateway_requests_total", "kong_canary_gateway_upstream_latency_ms_bucket",
        "kong_canary_gateway_request_latency_ms_bucket", "http_server_requests_seconds_bucket",
        "http_request_duration_seconds_bucket", "http_server_request_duration_seconds_bucket",
    } <= metric_names  # fmt: skip


def test_invalid_set_is_complete():
    assert set(EXPECTED_INVALID) == {p.name for p in INVALID.glob("*.json")}


@pytest.mark.parametrize("file", sorted(EXPECTED_INVALID))
def test_invalid_config_fails_naming_the_path(file):
    errors = validate_config(json.loads((INVALID / file).read_text()))
    assert errors, f"{file} was accepted"
    assert EXPECTED_INVALID[file] in {e.path for e in errors}, [str(e) for e in errors]


def test_non_object_is_rejected():
    assert [e.path for e in validate_config([])] == ["$"]


def test_per_route_configs_are_their_service_level_config_for_one_route():
    """Issue 15: ``<name>-route`` for every config whose family has a route label; same
    metrics and judge settings, only ``route='${route}'`` added to every selector."""
    library = yaml.safe_load((DEFAULT_LIBRARY_DIR / "library.yaml").read_text())
    with_routes = [
        spec["name"]
        for spec in library["configs"]
        if library["families"][spec["family"]].get("route_label")
    ]
    per_route = sorted(n for n in CONFIGS if n.endswith("-route"))
    assert per_route == sorted(f"{n}-route" for n in with_routes)
    assert {"kong-3x-variant-label-route", "kong-2x-variant-label-route",
            "kong-canary-sidecar-gateway-route"} <= set(per_route)  # fmt: skip
    for name in per_route:
        service, route = CONFIGS[name.removesuffix("-route")], CONFIGS[name]
        assert route["classifier"] == service["classifier"]
        for plain, one in zip(service["metrics"], route["metrics"], strict=True):
            template = one["query"]["customInlineTemplate"]
            assert "route" in required_variables(template)
            stripped = template.replace(",route='${route}'", "")
            assert stripped == plain["query"]["customInlineTemplate"]
            assert template.count("route='${route}'") == template.count("}[")  # every selector
            assert {**one, "query": plain["query"]} == plain
