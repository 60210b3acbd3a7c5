"""Every ci/ scenario lints strictly and renders manifests the Kubernetes API would accept.

Manifests are checked with kubernetes-validate's strict schemas (unknown fields are errors) for
the oldest Kubernetes the chart supports and the newest the package ships.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError, latest_version
from packaging.version import Version

from tests.helm.chart import CHART_DIR, Rendered, oldest_kube, scenario_names, scenario_values

NEWEST_KUBE = latest_version()
KUBE_VERSIONS = [oldest_kube(), NEWEST_KUBE]
# Custom resources kubernetes-validate has no schema for; checked field by field elsewhere
# (test_templates.py).
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SCENARIOS = scenario_names()


def _lint_errors(report: dict) -> list[str]:
    # Severity 2 = warning, 3 = error; strict lint already turns warnings into errors.
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]


def test_every_optional_feature_has_a_scenario() -> None:
    """Each optional feature must be switched on by at least one ci/ file."""
    enabled = {
        key
        for name in SCENARIOS
        for key, value in scenario_values(name).items()
        if isinstance(value, dict) and value.get("enabled") is True
    }
    assert {
        "autoscaling",
        "networkPolicy",
        "serviceMonitor",
        "grafanaDashboard",
        "kayentaSync",
        "gatewayMetrics",
    } <= enabled


@pytest.mark.parametrize("kube", [f"v{v}" for v in KUBE_VERSIONS])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_should_pass_when_scenario(scenario: str, kube: str) -> None:
    report = helm.lint(CHART_DIR, scenario_values(scenario), strict=True, kube_version=kube)
    assert report["errors"] == []
    assert _lint_errors(report) == []


def test_kube_versions_should_span_a_range_when_validating() -> None:
    """The floor comes from Chart.yaml and must be one kubernetes-validate knows."""
    assert oldest_kube() == "1.27.0"
    assert oldest_kube() in kubernetes_validate.utils.all_versions()
    assert Version(NEWEST_KUBE) > Version(oldest_kube())


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_should_validate_when_scenario(
    scenario_renders: dict[str, Rendered], scenario: str, kube: str
) -> None:
    rendered = scenario_renders[scenario]
    assert rendered.manifests, "nothing rendered"
    for manifest in rendered.manifests:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS:
            with pytest.raises(SchemaNotFoundError):
                kubernetes_validate.validate(manifest, kube, strict=True)
            continue
        try:
            kubernetes_validate.validate(manifest, kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{scenario}: {name} invalid for {kube} at {path}: {e.message}")


def test_validation_should_catch_an_invalid_manifest(
    scenario_renders: dict[str, Rendered],
) -> None:
    """Guards the test above: a misspelt field in a rendered Deployment must be reported."""
    deployment = scenario_renders["defaults"].one("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, NEWEST_KUBE, strict=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_should_be_labelled_when_scenario(
    scenario_renders: dict[str, Rendered], scenario: str
) -> None:
    for manifest in scenario_renders[scenario].manifests:
        labels = manifest["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == "kc", manifest["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"
        assert labels.get("helm.sh/chart") == "kong-canary-0.1.0"


def test_packaged_chart_should_keep_dashboards_and_drop_ci_files(tmp_path: Path) -> None:
    """.helmignore must not drop files the templates read (.Files.Glob "dashboards/*.json")."""
    archive = helm.package(CHART_DIR, destination=tmp_path)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "kong-canary/dashboards/kong-canary.json" in names
    assert "kong-canary/values.schema.json" in names
    assert not [n for n in names if n.startswith("kong-canary/ci/")]
    with helm.Chart.load(archive) as packaged:
        files = packaged.render({"grafanaDashboard": {"enabled": True}}, name="kc", namespace="ns")
    assert "kong-canary.json" in files["kong-canary/templates/grafana-dashboard.yaml"]
