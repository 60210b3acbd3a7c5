"""What each template renders, phrased "should ... when ..." as in helm-unittest suites."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.helm.chart import NAMESPACE, Rendered, container_env, scenario_values

# The sidecar's settings contract: every KONG_CANARY_* variable the app reads.
# Secrets (tokens) come from the Secret, never from the ConfigMap.
APP_SETTINGS = {
    "KONG_CANARY_BIND",
    "KONG_CANARY_WORKERS",
    "KONG_CANARY_WORKER_TMP_DIR",
    "KONG_CANARY_PUBLIC_URL",
    "KONG_CANARY_LOG_LEVEL",
    "KONG_CANARY_MAX_SHIFTED_PERCENT",
    "KONG_CANARY_LEASE_DEFAULT",
    "KONG_CANARY_LEASE_MAX",
    "KONG_CANARY_LEASE_CHECK_INTERVAL",
    "KONG_CANARY_LOCK_TTL",
    "KONG_CANARY_LOCK_WAIT",
    "KONG_CANARY_PROPAGATION_NODES",
    "KONG_CANARY_GATEWAY_METRICS",
    "KONG_CANARY_GATEWAY_INGEST_URL",
    "KONG_CANARY_KONG_ADMIN_URL",
    "KONG_CANARY_KONG_WORKSPACE",
    "KONG_CANARY_KONG_FLAVOUR",
    "KONG_CANARY_KONNECT_CONTROL_PLANE_ID",
    "KONG_CANARY_KONG_CONNECT_TIMEOUT",
    "KONG_CANARY_KONG_READ_TIMEOUT",
    "KONG_CANARY_KONG_WRITE_TIMEOUT",
    "KONG_CANARY_KONG_READ_RETRIES",
    "KONG_CANARY_KONG_MAX_CONCURRENCY",
    "KONG_CANARY_KONG_TLS_VERIFY",
    "KONG_CANARY_KONG_CA_BUNDLE",
    "KONG_CANARY_KONG_CLIENT_CERT",
    "KONG_CANARY_KONG_CLIENT_KEY",
    "KONG_CANARY_TOKENS_FILE",
}
APP_SECRETS = {
    "KONG_CANARY_KONG_ADMIN_TOKEN",
    "KONG_CANARY_KONNECT_TOKEN",
    "KONG_CANARY_RAMP_SECRET",
}
# Only with gatewayMetrics.enabled; never in the ConfigMap either.
GATEWAY_SECRET = "KONG_CANARY_GATEWAY_INGEST_TOKEN"


def _server(rendered: Rendered) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def _config(rendered: Rendered) -> dict[str, str]:
    return rendered.named("ConfigMap", "kc-kong-canary")["data"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def _mounted_file(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret name, key) of the secret volume file that `path` points at."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix) and "secret" in volumes[mount["name"]]:
            secret = volumes[mount["name"]]["secret"]
            relative = path.removeprefix(prefix)
            items = {i["path"]: i["key"] for i in secret.get("items", [])}
            return secret["secretName"], items.get(relative, relative) if items else relative
    raise AssertionError(f"{path} is not inside a mounted Secret")


def test_configmap_should_hold_only_app_settings_when_any_scenario(
    scenario_renders: dict[str, Rendered],
) -> None:
    for name, rendered in scenario_renders.items():
        config = _config(rendered)
        assert set(config) <= APP_SETTINGS, name
        assert not set(config) & (APP_SECRETS | {GATEWAY_SECRET}), name
        _, server = _server(rendered)
        assert {"configMapRef": {"name": "kc-kong-canary"}} in server["envFrom"]
        assert set(container_env(server)) >= APP_SECRETS


def test_configmap_should_map_values_to_settings_when_all_features(
    scenario_renders: dict[str, Rendered],
) -> None:
    config = _config(scenario_renders["all-features"])
    assert config["KONG_CANARY_WORKERS"] == "4"
    assert config["KONG_CANARY_LOG_LEVEL"] == "debug"
    assert config["KONG_CANARY_MAX_SHIFTED_PERCENT"] == "30"
    assert config["KONG_CANARY_PUBLIC_URL"] == "https://kong-canary.example.com"
    assert config["KONG_CANARY_KONG_CA_BUNDLE"] == "/etc/kong-canary/kong-tls/ca.crt"


def test_public_url_should_default_to_in_cluster_url_when_unset(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["defaults"]
    svc = rendered.one("Service")
    port = svc["spec"]["ports"][0]["port"]
    expected = f"http://{svc['metadata']['name']}.{NAMESPACE}.svc:{port}"
    assert _config(rendered)["KONG_CANARY_PUBLIC_URL"] == expected


def test_server_should_listen_where_service_and_probes_point_when_port_changes(
    render_with: Callable[..., Rendered],
) -> None:
    rendered = render_with({"service": {"port": 9090}})
    _, server = _server(rendered)
    (port,) = server["ports"]
    assert port == {"name": "http", "containerPort": 9090, "protocol": "TCP"}
    assert server["args"] == ["serve", "--bind", "0.0.0.0:9090"]
    assert _config(rendered)["KONG_CANARY_BIND"] == "0.0.0.0:9090"
    assert rendered.one("Service")["spec"]["ports"][0]["targetPort"] == "http"
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_service_and_pdb_should_select_only_server_pods_when_all_features(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["all-features"]
    server_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    other_pods = [rendered.one("Job")["spec"]["template"]["metadata"]["labels"]]
    other_pods += [p["metadata"]["labels"] for p in rendered.of_kind("Pod")]
    assert other_pods
    selectors = [
        rendered.one("Service")["spec"]["selector"],
        rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        rendered.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        rendered.one("Deployment")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert _selects(selector, server_labels)
        assert not any(_selects(selector, labels) for labels in other_pods)


def test_deployment_should_leave_replicas_to_hpa_when_autoscaling(
    scenario_renders: dict[str, Rendered],
) -> None:
    assert scenario_renders["defaults"].one("Deployment")["spec"]["replicas"] == 2
    assert not scenario_renders["defaults"].of_kind("HorizontalPodAutoscaler")
    rendered = scenario_renders["autoscaling"]
    assert "replicas" not in rendered.one("Deployment")["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": rendered.one("Deployment")["metadata"]["name"],
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 75},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    pdb = rendered.one("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 1
    assert "maxUnavailable" not in pdb


def test_secret_should_hold_one_token_line_each_with_role_and_scope_when_tokens_given(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["tokens"]
    data = rendered.one("Secret")["data"]
    tokens = base64.b64decode(data["tokens"]).decode()
    # name[:role][@pattern|pattern]=token (README, Configuration: TOKENS)
    assert tokens.splitlines() == [
        "spinnaker=ci-spinnaker-token-0123456789",
        "deck:read=ci-deck-token-0123456789abc",
        "payments-team@payments-*|ledger=ci-payments-token-0123456789",
    ]
    assert tokens.endswith("\n")
    assert base64.b64decode(data["kong-admin-token"]).decode() == "ci-kong-rbac-token"
    assert "konnect-token" not in data
    pod, server = _server(rendered)
    tokens_file = _config(rendered)["KONG_CANARY_TOKENS_FILE"]
    assert _mounted_file(pod, server, tokens_file) == ("kc-kong-canary", "tokens")
    admin = container_env(server)["KONG_CANARY_KONG_ADMIN_TOKEN"]["secretKeyRef"]
    assert (admin["name"], admin["key"]) == ("kc-kong-canary", "kong-admin-token")


def test_secret_should_generate_a_spinnaker_token_when_none_given(
    render_with: Callable[..., Rendered],
) -> None:
    first = base64.b64decode(render_with().one("Secret")["data"]["tokens"]).decode()
    second = base64.b64decode(render_with().one("Secret")["data"]["tokens"]).decode()
    assert re.fullmatch(r"spinnaker=[A-Za-z0-9]{40}\n", first)
    # Random per render offline; a real upgrade reuses the stored one through `lookup`.
    assert first != second


def test_existing_secret_should_be_used_and_none_created_when_set(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["existing-secret"]
    assert rendered.of_kind("Secret") == []
    pod, server = _server(rendered)
    config = _config(rendered)
    assert _mounted_file(pod, server, config["KONG_CANARY_TOKENS_FILE"]) == (
        "kong-canary-credentials",
        "api-tokens",
    )
    env = container_env(server)
    assert env["KONG_CANARY_KONG_ADMIN_TOKEN"]["secretKeyRef"] == {
        "name": "kong-canary-credentials",
        "key": "rbac-token",
        "optional": True,
    }
    assert env["KONG_CANARY_KONNECT_TOKEN"]["secretKeyRef"]["key"] == "konnect"
    for setting, key in [
        ("KONG_CANARY_KONG_CA_BUNDLE", "ca.crt"),
        ("KONG_CANARY_KONG_CLIENT_CERT", "tls.crt"),
        ("KONG_CANARY_KONG_CLIENT_KEY", "tls.key"),
    ]:
        assert _mounted_file(pod, server, config[setting]) == ("kong-admin-mtls", key)
    annotations = rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" not in annotations


def test_pods_should_roll_when_settings_change(render_with: Callable[..., Rendered]) -> None:
    def checksum(values: dict[str, Any]) -> str:
        template = render_with(values).one("Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"config": {"logLevel": "debug"}})


def test_image_should_be_pinned_by_digest_when_digest_given(
    scenario_renders: dict[str, Rendered],
) -> None:
    values = scenario_values("all-features")["image"]
    for _, pod in scenario_renders["all-features"].pod_specs():
        for container in pod["containers"]:
            assert container["image"] == f"{values['repository']}@{values['digest']}"
    _, server = _server(scenario_renders["defaults"])
    assert server["image"] == "kong-canary:0.1.0"


def test_network_policy_should_allow_only_spinnaker_prometheus_kong_and_dns_when_enabled(
    scenario_renders: dict[str, Rendered],
) -> None:
    assert scenario_renders["defaults"].of_kind("NetworkPolicy") == []
    rendered = scenario_renders["network-policy"]
    spec = rendered.one("NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
    assert sources[:2] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "spinnaker"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "orca"}},
        },
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
    ]
    # then Kong's proxies (http-log batches), then the chart's helm test pod (this namespace)
    assert sources[2]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kong"}
    test_pod = rendered.one("Pod")["metadata"]["labels"]
    assert "namespaceSelector" not in sources[3]
    assert _selects(sources[3]["podSelector"]["matchLabels"], test_pod)
    assert len(sources) == 4
    for rule in spec["ingress"]:
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    kong, dns = spec["egress"]
    assert kong["ports"] == [{"port": 8001, "protocol": "TCP"}, {"port": 8444, "protocol": "TCP"}]
    assert kong["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kong"
    }
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_network_policy_should_reach_konnect_by_ip_block_when_konnect(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["konnect"]
    kong = rendered.one("NetworkPolicy")["spec"]["egress"][0]
    assert kong == {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }
    config = _config(rendered)
    assert config["KONG_CANARY_KONG_FLAVOUR"] == "konnect"
    assert config["KONG_CANARY_KONNECT_CONTROL_PLANE_ID"].startswith("7f9b3c2e")


def test_service_monitor_should_scrape_metrics_of_the_service_when_enabled(
    scenario_renders: dict[str, Rendered],
) -> None:
    """ServiceMonitor is a CRD kubernetes-validate has no schema for, so check it here."""
    rendered = scenario_renders["service-monitor"]
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert _selects(spec["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "10s")
    assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}


def test_kayenta_sync_should_be_a_post_install_hook_job_when_enabled(
    scenario_renders: dict[str, Rendered],
) -> None:
    assert scenario_renders["defaults"].of_kind("Job") == []
    job = scenario_renders["kayenta-sync"].one("Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        "kayenta",
        "sync",
        "--url",
        "http://spin-kayenta.spinnaker.svc:8090",
        "--dir",
        "/opt/kong-canary/kayenta-configs/configs",
        "--application",
        "orders",
        "--configuration-account",
        "canary-configs",
        "--timeout",
        "20",
    ]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize(
    "values",
    [
        {"kayentaSync": {"enabled": True, "url": "http://kayenta:8090"}},
        {"kayentaSync": {"enabled": True, "url": "http://kayenta:8090", "dryRun": True,
                         "extraArgs": ["--output", "json"]}},
    ],
)  # fmt: skip
def test_kayenta_sync_args_should_be_what_the_cli_accepts(
    render_with: Callable[..., Rendered], values: dict[str, Any]
) -> None:
    """The Job's args go through the real command's parser (click), so a renamed option
    fails here rather than in a cluster's post-install hook."""
    import click

    from sidecar.cli import main
    from sidecar.kayenta.cli import sync_command

    job = render_with(values).one("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    ctx = click.Context(main)
    group = main.get_command(ctx, args[0])
    assert group is not None
    assert group.get_command(ctx, args[1]) is sync_command  # type: ignore[attr-defined]
    params = sync_command.make_context("sync", args[2:]).params
    assert params["url"] == "http://kayenta:8090"
    assert str(params["directory"]) == "/opt/kong-canary/kayenta-configs/configs"
    assert params["application"] is None and params["configuration_account"] is None
    assert params["dry_run"] is bool(values["kayentaSync"].get("dryRun"))


def test_grafana_dashboard_should_be_a_labelled_configmap_when_enabled(
    scenario_renders: dict[str, Rendered],
) -> None:
    names = {c["metadata"]["name"] for c in scenario_renders["defaults"].of_kind("ConfigMap")}
    assert names == {"kc-kong-canary"}
    cm = scenario_renders["grafana-dashboard"].named("ConfigMap", "kc-kong-canary-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Canary"}
    assert set(cm["data"]) == {"kong-canary.json"}
