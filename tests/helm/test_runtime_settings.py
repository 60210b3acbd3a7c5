"""Leases, the ramp secret, propagation nodes and gateway metrics: what the chart renders for them,
and how generated credentials survive an upgrade.

Helm's ``lookup`` needs a cluster, so offline it finds nothing (as in ``helm template``). The
upgrade tests load a copy of the chart whose one ``lookup`` call is replaced by the Secret a
previous release stored, which is what ``lookup`` returns during ``helm upgrade``.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from sidecar.settings import Settings
from tests.helm.chart import CHART_DIR, NAMESPACE, Rendered, container_env, render, scenario_values

FULLNAME = "kc-kong-canary"
IN_CLUSTER_URL = f"http://{FULLNAME}.{NAMESPACE}.svc:8080"
LOOKUP = 'lookup "v1" "Secret" .Release.Namespace $name'
TOKENS = [{"name": "spinnaker", "token": "ci-spinnaker-token-0123456789"}]


def _config(rendered: Rendered) -> dict[str, str]:
    return rendered.named("ConfigMap", FULLNAME)["data"]


def _server(rendered: Rendered) -> dict[str, Any]:
    (container,) = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _secret(rendered: Rendered) -> dict[str, str]:
    data = rendered.named("Secret", FULLNAME)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _token_lines(secret: dict[str, str]) -> dict[str, str]:
    """name (without role/scope) -> token, from the tokens file."""
    pairs = (line.split("=", 1) for line in secret["tokens"].splitlines() if line)
    return {re.split(r"[:@]", head)[0]: token for head, token in pairs}


@contextmanager
def _chart_upgrading_from(tmp_path: Path, stored: dict[str, str]) -> Iterator[helm.Chart]:
    """The chart as `helm upgrade` renders it when the release's Secret holds `stored`."""
    copy = tmp_path / "kong-canary"
    shutil.copytree(CHART_DIR, copy)
    template = copy / "templates" / "secret.yaml"
    text = template.read_text()
    assert text.count(LOOKUP) == 1, "secret.yaml must look its Secret up exactly once"
    pairs = " ".join(f'"{k}" "{base64.b64encode(v.encode()).decode()}"' for k, v in stored.items())
    template.write_text(text.replace(LOOKUP, f'dict "data" (dict {pairs})'))
    with helm.Chart.load(copy) as chart:
        yield chart


def test_lease_defaults_should_equal_the_apps_when_unset(
    scenario_renders: dict[str, Rendered],
) -> None:
    """An install that sets nothing behaves as the README's table says (settings.py defaults)."""
    config = _config(scenario_renders["defaults"])
    app = Settings()
    assert float(config["KONG_CANARY_LEASE_DEFAULT"]) == app.lease_default
    assert float(config["KONG_CANARY_LEASE_MAX"]) == app.lease_max
    assert float(config["KONG_CANARY_LEASE_CHECK_INTERVAL"]) == app.lease_check_interval
    assert float(config["KONG_CANARY_LOCK_TTL"]) == app.lock_ttl
    assert float(config["KONG_CANARY_LOCK_WAIT"]) == app.lock_wait
    assert int(config["KONG_CANARY_KONG_MAX_CONCURRENCY"]) == app.kong.max_concurrency
    # no list given: the app checks its admin URL alone
    assert "KONG_CANARY_PROPAGATION_NODES" not in config


def test_configmap_should_carry_leases_and_comma_joined_nodes_when_all_features(
    scenario_renders: dict[str, Rendered],
) -> None:
    values = scenario_values("all-features")
    config = _config(scenario_renders["all-features"])
    assert config["KONG_CANARY_LEASE_DEFAULT"] == "1800"
    assert config["KONG_CANARY_LEASE_MAX"] == "7200"
    assert config["KONG_CANARY_LEASE_CHECK_INTERVAL"] == "5"
    nodes = config["KONG_CANARY_PROPAGATION_NODES"].split(",")
    assert nodes == values["kong"]["propagationNodes"]
    assert len(nodes) == 2


def test_fractional_lease_should_render_as_a_number_when_given(
    render_with: Callable[..., Rendered],
) -> None:
    config = _config(render_with({"config": {"leaseCheckInterval": 2.5, "leaseDefault": 90}}))
    assert config["KONG_CANARY_LEASE_CHECK_INTERVAL"] == "2.5"
    assert config["KONG_CANARY_LEASE_DEFAULT"] == "90"


def test_ramp_secret_should_come_from_the_chart_secret_when_generated(
    render_with: Callable[..., Rendered],
) -> None:
    """Every replica runs the same pod template, reading the same Secret key: one key for all."""
    rendered = render_with()
    ref = container_env(_server(rendered))["KONG_CANARY_RAMP_SECRET"]["secretKeyRef"]
    assert ref == {"name": FULLNAME, "key": "ramp-secret"}  # not optional: always there
    secret = _secret(rendered)["ramp-secret"]
    assert re.fullmatch(r"[A-Za-z0-9]{48}", secret)
    assert secret not in str(rendered.one("Deployment"))
    assert secret not in str(_config(rendered))
    # Offline every render makes a new one; installs keep theirs through lookup (below).
    assert _secret(render_with())["ramp-secret"] != secret


def test_secret_and_pods_should_be_stable_across_renders_when_every_credential_is_given(
    render_with: Callable[..., Rendered],
) -> None:
    """The GitOps recipe (no lookup): give tokens and rampSecret, and nothing churns."""
    values = {"auth": {"tokens": TOKENS, "rampSecret": "gitops-ramp-secret-0123456789"}}
    first, second = render_with(values), render_with(values)
    assert _secret(first) == _secret(second)
    assert _secret(first)["ramp-secret"] == "gitops-ramp-secret-0123456789"

    def checksum(rendered: Rendered) -> str:
        template = rendered.one("Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/secret"]

    assert checksum(first) == checksum(second)
    changed = {"auth": {**values["auth"], "rampSecret": "another-ramp-secret-0123456789"}}
    assert checksum(render_with(changed)) != checksum(first)


def test_ramp_secret_should_be_read_from_its_key_when_existing_secret(
    scenario_renders: dict[str, Rendered],
) -> None:
    env = container_env(_server(scenario_renders["existing-secret"]))
    assert env["KONG_CANARY_RAMP_SECRET"]["secretKeyRef"] == {
        "name": "kong-canary-credentials",
        "key": "ramp-key",
        # Secrets made before this setting existed lack it; the app then derives the key from
        # the tokens file, which every replica shares too.
        "optional": True,
    }
    ingest = env["KONG_CANARY_GATEWAY_INGEST_TOKEN"]["secretKeyRef"]
    assert ingest == {"name": "kong-canary-credentials", "key": "http-log-token"}


def test_upgrade_should_keep_generated_credentials_when_the_secret_exists(
    tmp_path: Path,
) -> None:
    stored = {
        "tokens": "spinnaker=stored-spinnaker-token-0123\nkong-http-log=stored-http-log-0123456\n",
        "ramp-secret": "stored-ramp-secret-0123456789",
        "gateway-ingest-token": "stored-http-log-0123456",
    }
    with _chart_upgrading_from(tmp_path, stored) as chart:
        secret = _secret(render(chart, {"gatewayMetrics": {"enabled": True}}))
    assert secret == stored


def test_upgrade_should_add_ramp_secret_and_http_log_token_when_the_secret_is_older(
    tmp_path: Path,
) -> None:
    """A Secret from before these settings holds the tokens only: they stay, the rest is made."""
    stored = {"tokens": "spinnaker=stored-spinnaker-token-0123\n"}
    with _chart_upgrading_from(tmp_path, stored) as chart:
        secret = _secret(render(chart, {"gatewayMetrics": {"enabled": True}}))
    tokens = _token_lines(secret)
    assert tokens["spinnaker"] == "stored-spinnaker-token-0123"
    assert tokens["kong-http-log"] == secret["gateway-ingest-token"]
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret["gateway-ingest-token"])
    assert re.fullmatch(r"[A-Za-z0-9]{48}", secret["ramp-secret"])


def test_upgrade_should_drop_the_http_log_token_when_gateway_metrics_are_turned_off(
    tmp_path: Path,
) -> None:
    """A token sitting in Kong's plugin config should stop working once the feature is off."""
    stored = {
        "tokens": "spinnaker=stored-spinnaker-token-0123\nkong-http-log=stored-http-log-0123456\n",
        "ramp-secret": "stored-ramp-secret-0123456789",
        "gateway-ingest-token": "stored-http-log-0123456",
    }
    with _chart_upgrading_from(tmp_path, stored) as chart:
        rendered = render(chart, {})
    secret = _secret(rendered)
    assert secret == {
        "tokens": "spinnaker=stored-spinnaker-token-0123\n",
        "ramp-secret": "stored-ramp-secret-0123456789",
    }
    assert "KONG_CANARY_GATEWAY_INGEST_TOKEN" not in container_env(_server(rendered))


def test_gateway_metrics_should_render_nothing_but_the_switch_when_disabled(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["defaults"]
    config = _config(rendered)
    assert config["KONG_CANARY_GATEWAY_METRICS"] == "false"
    assert "KONG_CANARY_GATEWAY_INGEST_URL" not in config
    assert "KONG_CANARY_GATEWAY_INGEST_TOKEN" not in container_env(_server(rendered))
    secret = _secret(rendered)
    assert "gateway-ingest-token" not in secret
    assert set(_token_lines(secret)) == {"spinnaker"}
    assert "http-log" not in rendered.notes


def test_gateway_metrics_should_generate_a_dedicated_write_token_when_no_tokens_given(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["gateway-metrics"]
    secret = _secret(rendered)
    tokens = _token_lines(secret)
    assert set(tokens) == {"spinnaker", "kong-http-log"}
    # a line without ":role" has role write (README: TOKENS)
    assert re.search(r"(?m)^kong-http-log=[A-Za-z0-9]{40}$", secret["tokens"])
    assert secret["gateway-ingest-token"] == tokens["kong-http-log"]
    assert tokens["kong-http-log"] != tokens["spinnaker"]
    ref = container_env(_server(rendered))["KONG_CANARY_GATEWAY_INGEST_TOKEN"]["secretKeyRef"]
    assert ref == {"name": FULLNAME, "key": "gateway-ingest-token"}
    assert _config(rendered)["KONG_CANARY_GATEWAY_METRICS"] == "true"


def test_gateway_ingest_token_should_be_the_named_token_when_tokens_given(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["all-features"]
    secret = _secret(rendered)
    (named,) = [
        t for t in scenario_values("all-features")["auth"]["tokens"] if t["name"] == "kong-proxies"
    ]
    assert secret["gateway-ingest-token"] == named["token"]
    assert "kong-proxies:write@orders|payments-*=" + named["token"] in secret["tokens"]


def test_gateway_ingest_url_should_be_the_service_in_cluster_when_public_url_is_set(
    scenario_renders: dict[str, Rendered],
) -> None:
    """publicUrl is Spinnaker's way in; Kong's proxies (namespace "kong") get the Service URL.

    Kong resolves names with its own DNS client, which takes ``search`` and ``ndots`` from
    resolv.conf (Kong/kong kong/resty/dns/client.lua, ``init``), so from Kong's namespace
    "<service>.<namespace>.svc" completes with the pod's "cluster.local" search domain; a bare
    service name would resolve in Kong's namespace, not ours.
    """
    rendered = scenario_renders["all-features"]
    config = _config(rendered)
    assert config["KONG_CANARY_PUBLIC_URL"] == "https://kong-canary.example.com"
    service = rendered.one("Service")
    port = service["spec"]["ports"][0]["port"]
    expected = f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}"
    assert config["KONG_CANARY_GATEWAY_INGEST_URL"] == expected == IN_CLUSTER_URL


def test_gateway_ingest_url_should_be_the_given_one_when_set(
    render_with: Callable[..., Rendered],
) -> None:
    url = "https://kong-canary-ingest.example.com"
    rendered = render_with({"gatewayMetrics": {"enabled": True, "ingestUrl": url}})
    assert _config(rendered)["KONG_CANARY_GATEWAY_INGEST_URL"] == url
    assert f"{url}/v1/kong-log" in rendered.notes


def test_network_policy_should_admit_kong_proxies_on_the_api_port_when_gateway_metrics(
    scenario_renders: dict[str, Rendered],
) -> None:
    rendered = scenario_renders["gateway-metrics"]
    spec = rendered.one("NetworkPolicy")["spec"]
    kong_rules = [
        rule
        for rule in spec["ingress"]
        if any(
            peer.get("namespaceSelector", {}).get("matchLabels")
            == {"kubernetes.io/metadata.name": "kong"}
            for peer in rule["from"]
        )
    ]
    assert len(kong_rules) == 1
    assert kong_rules[0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    (container_port,) = _server(rendered)["ports"]
    assert container_port["name"] == "http"


def test_notes_should_name_ingest_url_and_token_when_gateway_metrics(
    scenario_renders: dict[str, Rendered],
) -> None:
    generated = scenario_renders["gateway-metrics"].notes
    assert f'{IN_CLUSTER_URL}/v1/kong-log with the token "kong-http-log"' in generated
    assert "networkPolicy.kongHttpLog.from" in generated
    external = scenario_renders["existing-secret"].notes
    assert 'key "http-log-token" of Secret "kong-canary-credentials"' in external
    assert "networkPolicy.kongHttpLog.from" not in external


@pytest.mark.parametrize("scenario", ["defaults", "gateway-metrics", "all-features"])
def test_secret_should_hold_only_known_keys_when_scenario(
    scenario_renders: dict[str, Rendered], scenario: str
) -> None:
    keys = set(_secret(scenario_renders[scenario]))
    assert {"tokens", "ramp-secret"} <= keys
    assert keys <= {
        "tokens",
        "ramp-secret",
        "gateway-ingest-token",
        "kong-admin-token",
        "konnect-token",
    }
