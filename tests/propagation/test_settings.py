"""``propagation_nodes``: the Admin APIs whose balancers a ``wait`` checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.settings import SettingsError, load_settings

BASE = {
    "KONG_CANARY_KONG_ADMIN_URL": "http://kong-a:8001",
    "KONG_CANARY_TOKENS": "spinnaker=spinnaker-token-0123456789",
}


def test_default_is_the_admin_url_alone() -> None:
    assert load_settings(environ=BASE).propagation_nodes == ()


def test_environment_takes_a_comma_separated_list() -> None:
    env = {**BASE, "KONG_CANARY_PROPAGATION_NODES": "http://kong-a:8001, http://kong-b:8001,"}
    nodes = load_settings(environ=env).propagation_nodes
    assert nodes == ("http://kong-a:8001", "http://kong-b:8001")


def test_yaml_takes_a_list(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("propagation_nodes:\n  - https://kong-a:8444\n  - https://kong-b:8444\n")
    settings = load_settings(environ=BASE, config_file=str(config))
    assert settings.propagation_nodes == ("https://kong-a:8444", "https://kong-b:8444")


def test_every_node_must_be_an_absolute_url() -> None:
    env = {**BASE, "KONG_CANARY_PROPAGATION_NODES": "http://kong-a:8001,kong-b:8001"}
    with pytest.raises(SettingsError) as raised:
        load_settings(environ=env)
    assert any("propagation_nodes: 'kong-b:8001'" in p for p in raised.value.problems)
