"""The sidecar accepts the configuration the chart gives it, in every scenario.

The container's environment is rebuilt as the kubelet would (ConfigMap through envFrom, then
env with secretKeyRef resolved, optional keys skipped) and its Secret volumes are written to a
temporary directory; sidecar.settings.load_settings must then start without a problem.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from sidecar import settings as app_settings
from tests.helm.chart import Rendered, scenario_names

# Content for Secrets the chart only references (auth.existingSecret, kong.tls.existingSecret).
EXTERNAL_SECRET_VALUE = {
    "api-tokens": "spinnaker=external-token-0123456789\n",
    "rbac-token": "external-rbac-token",
    "konnect": "kpat_external",
}


def _secret_data(rendered: Rendered, name: str) -> dict[str, str]:
    """The chart's Secret decoded, or stand-in content for a Secret made outside the chart."""
    for secret in rendered.of_kind("Secret"):
        if secret["metadata"]["name"] == name:
            return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    return EXTERNAL_SECRET_VALUE


def container_environment(rendered: Rendered, root: Path) -> dict[str, str]:
    """The server container's environment, with mounted paths moved under `root`."""
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    moved: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        local = root / mount["name"]
        local.mkdir()
        moved[mount["mountPath"]] = local
        secret = volumes[mount["name"]].get("secret")
        for item in secret.get("items", []) if secret else []:
            data = _secret_data(rendered, secret["secretName"])
            (local / item["path"]).write_text(data[item["key"]])

    def relocate(value: str) -> str:
        for mount_path, local in moved.items():
            if value.startswith(mount_path.rstrip("/") + "/"):
                target = local / value.removeprefix(mount_path.rstrip("/") + "/")
                if not target.exists():  # a key of an external Secret mounted whole
                    target.write_text(f"-----{target.name}-----\n")
                return str(target)
        return value

    env: dict[str, str] = {}
    for source in container["envFrom"]:
        name = source["configMapRef"]["name"]
        env.update(rendered.named("ConfigMap", name)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref: dict[str, Any] = item["valueFrom"]["secretKeyRef"]
        data = _secret_data(rendered, ref["name"])
        if ref["key"] not in data:
            assert ref.get("optional"), f"{item['name']}: missing key {ref['key']}"
            continue
        env[item["name"]] = data[ref["key"]]
    return {k: relocate(v) for k, v in env.items()}


@pytest.mark.parametrize("scenario", scenario_names())
def test_sidecar_should_accept_the_rendered_configuration_when_scenario(
    scenario_renders: dict[str, Rendered], scenario: str, tmp_path: Path
) -> None:
    env = container_environment(scenario_renders[scenario], tmp_path)
    loaded = app_settings.load_settings(environ=env)
    assert loaded.tokens, "no API token reached the app"
    assert not loaded.embedded_kong
    assert loaded.bind == "0.0.0.0:8080"


def test_configuration_check_should_fail_when_a_setting_is_wrong(
    scenario_renders: dict[str, Rendered], tmp_path: Path
) -> None:
    """Guards the test above: the app must refuse what the schema refuses."""
    env = container_environment(scenario_renders["defaults"], tmp_path)
    with pytest.raises(app_settings.SettingsError):
        app_settings.load_settings(environ={**env, "KONG_CANARY_LOG_LEVEL": "INFO"})


def test_configmap_should_only_use_settings_the_app_reads(
    scenario_renders: dict[str, Rendered],
) -> None:
    known = {
        app_settings.ENV_PREFIX + key.upper()
        for key in (*app_settings._FIELDS, *app_settings._TOKEN_KEYS)
    }
    # Read by sidecar/serve.py directly for gunicorn, not a Settings field.
    known.add("KONG_CANARY_WORKER_TMP_DIR")
    for rendered in scenario_renders.values():
        config = rendered.named("ConfigMap", "kc-kong-canary")["data"]
        assert set(config) - known == set()
