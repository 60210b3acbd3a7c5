"""Render helm/kong-canary with Helm's own engine, offline.

helm-python-sdk binds Helm v4's Go SDK (libhelm_c, shipped inside the wheel) through ctypes,
so templates, Sprig functions, value coalescing and values.schema.json validation are exactly
Helm's: no helm binary, no cluster, no network. ``lookup`` returns nothing offline, as in
``helm template``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "kong-canary"
CI_DIR = CHART_DIR / "ci"
RELEASE = "kc"
NAMESPACE = "canary"


def oldest_kube() -> str:
    """The floor of Chart.yaml's kubeVersion (">=1.27.0-0" -> "1.27.0").

    The validation tests run against it, so raising the floor in Chart.yaml moves them along.
    """
    constraint = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*v?(\d+\.\d+\.\d+)(-0)?", constraint.strip())
    assert match, f"kubeVersion {constraint!r} is not a plain lower bound"
    return match.group(1)


Manifest = dict[str, Any]


def scenario_names() -> list[str]:
    """Every ci/*-values.yaml, as chart-testing would install them."""
    return sorted(p.name.removesuffix("-values.yaml") for p in CI_DIR.glob("*-values.yaml"))


def scenario_values(name: str) -> dict[str, Any]:
    """The values of one ci/ scenario; an empty document means the defaults."""
    data = yaml.safe_load((CI_DIR / f"{name}-values.yaml").read_text())
    return data or {}


@dataclass(frozen=True)
class Rendered:
    """One render: the Kubernetes objects and NOTES.txt."""

    manifests: tuple[Manifest, ...]
    notes: str

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> Manifest:
        (found,) = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        return found

    def pod_specs(self) -> Iterator[tuple[Manifest, dict[str, Any]]]:
        """(object, pod spec) for every object that runs containers."""
        for m in self.manifests:
            if m["kind"] == "Pod":
                yield m, m["spec"]
            elif m["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
                yield m, m["spec"]["template"]["spec"]


def render(
    chart: helm.Chart,
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Rendered:
    """Render like ``helm template``; schema violations raise ``helm.HelmValuesError``."""
    files = chart.render(values or {}, name=release, namespace=namespace, is_install=True)
    manifests: list[Manifest] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(tuple(manifests), notes)


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value (or valueFrom) of a container's explicit env."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
