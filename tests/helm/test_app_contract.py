"""The sidecar accepts the configuration the chart gives it, in every scenario.

The container's environment is rebuilt as the kubelet would (ConfigMap through envFrom, then
env with secretKeyRef resolved, optional keys skipped) and its Secret volumes are written to a
temporary directory; sidecar.settings.load_settings must then start without a problem.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest

from sidecar import settings as app_settings
from sidecar.gateway.window import IngestConfig
from tests.helm.chart import Rendered, scenario_names, scenario_values

# Content for Secrets the chart only references (auth.existingSecret, kong.tls.existingSecret).
EXTERNAL_SECRET_VALUE = {
    "api-tokens": (
        "spinnaker=external-token-0123456789\nkong-http-log=external-http-log-token-0123456789\n"
    ),
    "rbac-token": "external-rbac-token",
    "konnect": "kpat_external",
    "ramp-key": "external-ramp-secret-0123456789",
    "http-log-token": "external-http-log-token-0123456789",
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
    for rendered in scenario_renders.values():
        config = rendered.named("ConfigMap", "kc-kong-canary")["data"]
        assert set(config) - known == set()


# App settings the chart deliberately does not expose (why), so a new setting in settings.py
# fails test_chart_should_expose_every_app_setting until the chart maps it or lists it here.
NOT_EXPOSED = {
    "kong_local_profile": "profile of the embedded Kong; the chart always points at a real one",
}


def test_chart_should_expose_every_app_setting_when_all_scenarios_are_taken_together(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered_names: set[str] = set()
    for rendered in scenario_renders.values():
        (container,) = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
        rendered_names |= set(rendered.named("ConfigMap", "kc-kong-canary")["data"])
        rendered_names |= {e["name"] for e in container["env"]}
    missing = {
        key
        for key in app_settings._FIELDS
        if app_settings.ENV_PREFIX + key.upper() not in rendered_names
    }
    assert missing == set(NOT_EXPOSED)


def test_sidecar_should_read_leases_ramp_secret_and_nodes_when_all_features(
    scenario_renders: dict[str, Rendered], tmp_path: Path
) -> None:
    values = scenario_values("all-features")
    env = container_environment(scenario_renders["all-features"], tmp_path)
    loaded = app_settings.load_settings(environ=env)
    assert (loaded.lease_default, loaded.lease_max, loaded.lease_check_interval) == (
        1800,
        7200,
        5,
    )
    assert loaded.ramp_secret == values["auth"]["rampSecret"]
    assert loaded.ramp_key() == values["auth"]["rampSecret"].encode()
    assert loaded.propagation_nodes == tuple(values["kong"]["propagationNodes"])


@pytest.mark.parametrize(
    ("scenario", "token_name"),
    [("gateway-metrics", "kong-http-log"), ("all-features", "kong-proxies"),
     ("existing-secret", "kong-http-log")],
)  # fmt: skip
def test_sidecar_should_post_kong_logs_in_cluster_with_a_write_token_when_gateway_metrics(
    scenario_renders: dict[str, Rendered], tmp_path: Path, scenario: str, token_name: str
) -> None:
    """What the app hands Kong's http-log plugin: its endpoint and the token it sends back."""
    loaded = app_settings.load_settings(
        environ=container_environment(scenario_renders[scenario], tmp_path)
    )
    assert loaded.gateway_metrics
    ingest = IngestConfig.from_settings(loaded)
    assert ingest is not None
    assert ingest.endpoint == "http://kc-kong-canary.canary.svc:8080/v1/kong-log"
    assert ingest.token.name == token_name
    assert ingest.token.role == "write"


def test_sidecar_should_refuse_an_ingest_token_when_it_is_not_an_api_token(
    scenario_renders: dict[str, Rendered], tmp_path: Path
) -> None:
    """Guards the test above: a token the sidecar would refuse on every batch fails at start."""
    env = container_environment(scenario_renders["gateway-metrics"], tmp_path)
    env["KONG_CANARY_GATEWAY_INGEST_TOKEN"] = "not-one-of-the-api-tokens-0123"
    with pytest.raises(app_settings.SettingsError, match="gateway_ingest_token"):
        app_settings.load_settings(environ=env)


def test_sidecar_should_start_without_ramp_secret_when_an_existing_secret_lacks_it(
    scenario_renders: dict[str, Rendered], tmp_path: Path
) -> None:
    """The ramp-secret key is optional in an existing Secret (ones made before the setting):
    the pods still start, and the app derives the key from the tokens file all pods share."""
    rendered = scenario_renders["existing-secret"]
    older = {k: v for k, v in EXTERNAL_SECRET_VALUE.items() if k != "ramp-key"}
    with patch.dict(EXTERNAL_SECRET_VALUE, clear=True, values=older):
        env = container_environment(rendered, tmp_path)
    assert "KONG_CANARY_RAMP_SECRET" not in env
    loaded = app_settings.load_settings(environ=env)
    assert loaded.ramp_secret is None
