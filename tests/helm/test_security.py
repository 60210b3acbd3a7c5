"""Every pod the chart can run is restricted, in every scenario.

The checks follow the Pod Security Standard "restricted" profile
(kubernetes/website content/en/docs/concepts/security/pod-security-standards.md) plus the
chart's own rules: read-only root filesystem with emptyDirs where the app writes, and no
service-account token.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.chart import Rendered, container_env, scenario_names

SCENARIOS = scenario_names()
# Volume types the restricted profile allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Directories the app writes to: gunicorn's --worker-tmp-dir and PROMETHEUS_MULTIPROC_DIR.
WRITABLE_DIRS = {"/tmp", "/var/run/kong-canary/metrics"}


def _effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A container's security setting, falling back to the pod's as Kubernetes does."""
    sc = container.get("securityContext", {})
    return sc[key] if key in sc else pod.get("securityContext", {}).get(key)


def _problems(pod: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(flag)
    if pod.get("automountServiceAccountToken") is not False:
        found.append("automountServiceAccountToken is not false")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']} of type {kinds}")
    emptydirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    containers = pod.get("initContainers", []) + pod["containers"]
    for c in containers:
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if _effective(pod, c, "runAsNonRoot") is not True:
            found.append(f"{where}: runAsNonRoot")
        if _effective(pod, c, "runAsUser") in (0, None):
            found.append(f"{where}: runAsUser is root or unset")
        seccomp = _effective(pod, c, "seccompProfile") or {}
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{where}: seccompProfile {seccomp}")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation")
        if sc.get("privileged"):
            found.append(f"{where}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}: capabilities {caps}")
        if sc.get("readOnlyRootFilesystem") is not True:
            found.append(f"{where}: readOnlyRootFilesystem")
        if "resources" not in c or "memory" not in c["resources"].get("limits", {}):
            found.append(f"{where}: no memory limit")
        for mount in c.get("volumeMounts", []):
            if not mount.get("readOnly") and mount["name"] not in emptydirs:
                found.append(f"{where}: writable mount {mount['mountPath']} is not an emptyDir")
    return found


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_should_be_restricted_when_scenario(
    scenario_renders: dict[str, Rendered], scenario: str
) -> None:
    checked = 0
    for obj, pod in scenario_renders[scenario].pod_specs():
        assert _problems(pod) == [], f"{obj['kind']}/{obj['metadata']['name']}"
        checked += 1
    assert checked >= 1


def test_restriction_check_should_flag_a_root_pod(
    scenario_renders: dict[str, Rendered],
) -> None:
    """Guards the check above: a pod with the usual insecure settings must fail it."""
    _, pod = next(scenario_renders["defaults"].pod_specs())
    bad_container = {
        **pod["containers"][0],
        "securityContext": {"privileged": True, "runAsUser": 0},
    }
    bad = {
        **pod,
        "hostNetwork": True,
        "automountServiceAccountToken": True,
        "securityContext": {},
        "volumes": [*pod["volumes"], {"name": "docker", "hostPath": {"path": "/var/run"}}],
        "containers": [bad_container],
    }
    problems = "\n".join(_problems(bad))
    for expected in (
        "hostNetwork",
        "automountServiceAccountToken",
        "hostPath",
        "runAsNonRoot",
        "runAsUser",
        "seccompProfile",
        "allowPrivilegeEscalation",
        "privileged",
        "capabilities",
        "readOnlyRootFilesystem",
    ):
        assert expected in problems


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_server_should_have_writable_emptydirs_when_root_fs_is_read_only(
    scenario_renders: dict[str, Rendered], scenario: str
) -> None:
    pod = scenario_renders[scenario].one("Deployment")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    emptydirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {
        m["mountPath"]
        for m in server["volumeMounts"]
        if m["name"] in emptydirs and not m.get("readOnly")
    }
    assert writable == WRITABLE_DIRS
    assert container_env(server)["PROMETHEUS_MULTIPROC_DIR"] in writable
    config = scenario_renders[scenario].named("ConfigMap", "kc-kong-canary")["data"]
    assert config["KONG_CANARY_WORKER_TMP_DIR"] in writable


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_service_account_should_not_automount_token_when_scenario(
    scenario_renders: dict[str, Rendered], scenario: str
) -> None:
    for sa in scenario_renders[scenario].of_kind("ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
