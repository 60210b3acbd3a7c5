"""Render the canary-config library from its one compact definition (``library.yaml``).

Every shipped ``configs/*.json`` is a pure function of ``library.yaml``: families say how a metric
is spelt, scopings say how canary and baseline differ, ``defaults.analysis`` holds the judge
settings. The rendered files are committed so Kayenta users can copy them, and a test fails when
they drift from the definition (the flagger ``make crd`` / ``verify-crd`` pattern).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_LIBRARY_DIR = Path(__file__).resolve().parents[2] / "kayenta-configs"
# The library lives outside the Python package: the image copies it here (Dockerfile) and sets
# LIBRARY_ENV to it, so an installed ``kong-canary`` finds what a source checkout finds.
LIBRARY_ENV = "KONG_CANARY_KAYENTA_LIBRARY"
IMAGE_LIBRARY_DIR = Path("/opt/kong-canary/kayenta-configs")
JUDGE_NAME = "NetflixACAJudge-v1.0"
RENDER_COMMAND = "kong-canary kayenta render"


def load_library(library_dir: Path = DEFAULT_LIBRARY_DIR) -> dict[str, Any]:
    with (library_dir / "library.yaml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _matchers(*parts: str) -> str:
    return ",".join(p for p in parts if p)


def error_ratio_query(requests: str, selector: str, status_match: str, window: str) -> str:
    """5xx share; ``or vector(0)`` turns "no 5xx series at all" into 0 instead of no data."""
    errors = f"{requests}{{{_matchers(selector, status_match)}}}"
    total = f"{requests}{{{selector}}}"
    return f"PromQL:(sum(rate({errors}[{window}])) or vector(0)) / sum(rate({total}[{window}]))"


def p99_query(bucket: str, selector: str, match: str, window: str) -> str:
    """P99 over all series of one side: ``sum by (le)`` drops every label that differs."""
    series = f"{bucket}{{{_matchers(selector, match)}}}"
    return f"PromQL:histogram_quantile(0.99, sum by (le) (rate({series}[{window}])))"


def config_specs(library: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every config to render: the listed ones, each followed by its per-route companion when
    its family has a route dimension (``route_label``). The companion is the same config for
    one route: a broken endpoint carrying 1 % of the traffic barely moves the service-level
    5xx ratio, so it needs its own comparison (issue 15)."""
    per_route = library.get("per_route")
    out: list[dict[str, Any]] = []
    for spec in library["configs"]:
        out.append(dict(spec))
        label = library["families"][spec["family"]].get("route_label")
        if per_route and label:
            out.append(
                {
                    **spec,
                    "name": spec["name"] + per_route["suffix"],
                    "description": spec["description"] + per_route["description"],
                    "route_match": f"{label}='${{{per_route['variable']}}}'",
                }
            )
    return out


def render_config(spec: Mapping[str, Any], library: Mapping[str, Any]) -> dict[str, Any]:
    defaults = library["defaults"]
    family = library["families"][spec["family"]]
    selector = _matchers(library["scoping"][spec["scoping"]], spec.get("route_match", ""))
    window = defaults["rate_window"]
    prefix = spec["prefix"]
    analysis = defaults["analysis"]
    metrics: list[dict[str, Any]] = [
        {
            "name": f"{prefix}_5xx_ratio",
            "query": {
                "type": "prometheus",
                "metricName": family["requests"],
                "customInlineTemplate": error_ratio_query(
                    family["requests"], selector, family["status_match"], window
                ),
            },
            "groups": ["errors"],
            "analysisConfigurations": {"canary": dict(analysis["error_ratio"])},
            "scopeName": "default",
        }
    ]
    for suffix, latency in family["latency"].items():
        metrics.append(
            {
                "name": f"{prefix}_p99_{suffix}",
                "query": {
                    "type": "prometheus",
                    "metricName": latency["bucket"],
                    "customInlineTemplate": p99_query(
                        latency["bucket"], selector, latency.get("match", ""), window
                    ),
                },
                "groups": ["latency"],
                "analysisConfigurations": {"canary": dict(analysis["p99"])},
                "scopeName": "default",
            }
        )
    return {
        "name": spec["name"],
        "description": spec["description"],
        "configVersion": "1.0",
        "applications": ["ad-hoc"],
        "judge": {"name": JUDGE_NAME, "judgeConfigurations": {}},
        "metrics": metrics,
        "templates": {},
        "classifier": {
            "groupWeights": dict(defaults["group_weights"]),
            "scoreThresholds": dict(defaults["score_thresholds"]),
        },
    }


def render_library(library_dir: Path = DEFAULT_LIBRARY_DIR) -> dict[str, str]:
    """File name -> exact file text for every config in the library."""
    library = load_library(library_dir)
    return {
        f"{spec['name']}.json": json.dumps(render_config(spec, library), indent=2) + "\n"
        for spec in config_specs(library)
    }


def write_library(library_dir: Path = DEFAULT_LIBRARY_DIR) -> list[Path]:
    """Rewrite ``configs/`` from ``library.yaml``; stale JSON files are removed."""
    out_dir = library_dir / "configs"
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = render_library(library_dir)
    for old in out_dir.glob("*.json"):
        if old.name not in rendered:
            old.unlink()
    written = []
    for name, text in rendered.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(library_dir: Path = DEFAULT_LIBRARY_DIR) -> list[str]:
    """Names of rendered files that are missing, different or no longer generated."""
    out_dir = library_dir / "configs"
    rendered = render_library(library_dir)
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in out_dir.glob("*.json")}
    names = set(rendered) | set(on_disk)
    return sorted(n for n in names if rendered.get(n) != on_disk.get(n))


def load_rendered(library_dir: Path = DEFAULT_LIBRARY_DIR) -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((library_dir / "configs").glob("*.json"))
    }


def find_library_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$KONG_CANARY_KAYENTA_LIBRARY``, else the source checkout, else the image's copy.

    Read here, not through ``sidecar.settings``, on purpose: it locates data files (the image
    sets it, Dockerfile), and the ``kayenta`` commands that need it run without the sidecar's
    settings (the chart's hook Job has no tokens or Kong URL). The README says so too."""
    env = os.environ if environ is None else environ
    if env.get(LIBRARY_ENV):
        return Path(env[LIBRARY_ENV])
    for candidate in (DEFAULT_LIBRARY_DIR, IMAGE_LIBRARY_DIR):
        if (candidate / "library.yaml").is_file():
            return candidate
    return DEFAULT_LIBRARY_DIR


@dataclass(frozen=True)
class PrometheusNeeds:
    """What one config needs from Kong's Prometheus plugin, from its family's
    ``kong_prometheus`` entry: without ``options[o]`` on, the metrics listed under it get no
    data and Kayenta judges nothing (NODATA), silently."""

    config: str
    kong: str  # the Kong flavour the metric names are spelt for: "2.x" or "3.x"
    options: Mapping[str, tuple[str, ...]]  # plugin option -> names of the metrics needing it
    requests: str = ""  # the request counter the config reads (kong_http_requests_total, ...)
    per_route: bool = False  # judges one route (``extendedScopeParams.route``)


def prometheus_needs(library: Mapping[str, Any]) -> dict[str, PrometheusNeeds]:
    """Config name -> needs, for every config read from Kong's Prometheus plugin."""
    out: dict[str, PrometheusNeeds] = {}
    for spec in config_specs(library):
        needs = library["families"][spec["family"]].get("kong_prometheus")
        if not needs:
            continue
        options: dict[str, list[str]] = {}
        for metric in render_config(spec, library)["metrics"]:
            for group in metric["groups"]:
                for option in needs.get(group, ()):
                    options.setdefault(option, []).append(metric["name"])
        out[spec["name"]] = PrometheusNeeds(
            spec["name"],
            str(needs["kong"]),
            {k: tuple(v) for k, v in options.items()},
            requests=library["families"][spec["family"]]["requests"],
            per_route="route_match" in spec,
        )
    return out
