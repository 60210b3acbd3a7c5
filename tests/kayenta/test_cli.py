"""``kong-canary kayenta`` subcommands through click's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from sidecar.kayenta.cli import kayenta_commands
from sidecar.kayenta.library import DEFAULT_LIBRARY_DIR

CONFIG = DEFAULT_LIBRARY_DIR / "configs" / "kong-3x-service-per-variant.json"


def _pairs(tmp_path: Path, canary_5xx: list[float]) -> Path:
    base_lat = [40.0 + (i % 7) for i in range(60)]
    doc = [
        {"name": "gateway_5xx_ratio", "tags": {},
         "values": {"control": ["NaN"] + [0.001 * (i % 3) for i in range(59)],
                    "experiment": canary_5xx}},
        {"name": "gateway_p99_request_latency_ms", "tags": {},
         "values": {"control": base_lat, "experiment": base_lat[::-1]}},
        {"name": "gateway_p99_upstream_latency_ms", "tags": {},
         "values": {"control": base_lat, "experiment": ["NaN", *base_lat[1:]]}},
    ]  # fmt: skip
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(doc))
    return path


def test_judge_passes_a_good_canary(tmp_path):
    good = [0.001 * ((i + 1) % 3) for i in range(60)]
    result = CliRunner().invoke(
        kayenta_commands, ["judge", "--config", str(CONFIG), "--pairs", str(_pairs(tmp_path, good))]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["score"] == 100.0 and out["stagePasses"] is True


def test_judge_fails_a_5xx_regression_with_exit_1(tmp_path):
    bad = [0.05 + 0.001 * (i % 3) for i in range(60)]
    result = CliRunner().invoke(
        kayenta_commands, ["judge", "--config", str(CONFIG), "--pairs", str(_pairs(tmp_path, bad))]
    )
    assert result.exit_code == 1
    out = json.loads(result.output)
    assert out["score"] == 0.0 and out["reason"].startswith("Canary Failed")
    assert out["results"][0]["classification"] == "High" and out["results"][0]["critical"]


def test_render_check_reports_stale_files(tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(DEFAULT_LIBRARY_DIR, lib)
    runner = CliRunner()
    assert (
        runner.invoke(kayenta_commands, ["render", "--library", str(lib), "--check"]).exit_code == 0
    )
    (lib / "configs" / "kong-2x-variant-label.json").write_text("{}\n")
    result = runner.invoke(kayenta_commands, ["render", "--library", str(lib), "--check"])
    assert result.exit_code == 1
    assert (
        "kong-2x-variant-label.json" in result.output
        and "kong-canary kayenta render" in result.output
    )
    assert runner.invoke(kayenta_commands, ["render", "--library", str(lib)]).exit_code == 0
    assert (
        runner.invoke(kayenta_commands, ["render", "--library", str(lib), "--check"]).exit_code == 0
    )


def test_validate_names_the_json_path():
    bad = DEFAULT_LIBRARY_DIR / "invalid" / "misspelt-direction.json"
    result = CliRunner().invoke(kayenta_commands, ["validate", str(CONFIG), str(bad)])
    assert result.exit_code == 1
    assert "$.metrics[0].analysisConfigurations.canary.direction" in result.output
    assert str(CONFIG) not in result.output
