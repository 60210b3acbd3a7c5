"""The rendered artefacts: up to date, and consistent with Orca's rules for a given URL."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from click.testing import CliRunner

from sidecar.spinnaker.cli import spinnaker_commands
from sidecar.spinnaker.generate import (
    DEFAULT_DIR,
    SourceError,
    render_all,
    stale_files,
    url_restrictions,
)
from sidecar.spinnaker.orca import HostNotAllowed, UrlRestrictions
from sidecar.spinnaker.spel import Evaluator


def test_committed_outputs_are_up_to_date() -> None:
    stale = stale_files(DEFAULT_DIR)
    assert stale == [], f"run: kong-canary spinnaker render  (stale: {stale})"


def test_cli_renders_for_another_url_and_check_spots_drift(tmp_path) -> None:
    runner = CliRunner()
    url = "http://localhost:8081"
    result = runner.invoke(
        spinnaker_commands, ["render", "--sidecar-url", url, "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load((tmp_path / "orca-local.yml").read_text())
    assert doc["user-configured-url-restrictions"] == {"rejectLocalhost": False}
    assert all(w["url"].startswith(url + "/v1/") for w in doc["webhook"]["preconfigured"])
    check = ["render", "--check", "--sidecar-url", url, "--out", str(tmp_path)]
    assert runner.invoke(spinnaker_commands, check).exit_code == 0
    (tmp_path / "templates" / "kong-canary-kayenta.json").write_text("{}")
    result = runner.invoke(spinnaker_commands, check)
    assert result.exit_code == 1
    assert "templates/kong-canary-kayenta.json" in result.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://kong-canary.spinnaker:8080",
            {"excludedDomains": ["local", "localdomain", "internal"]},
        ),
        (
            "http://kong-canary.spinnaker.svc.cluster.local:8080",
            {"excludedDomains": ["spinnaker", "localdomain", "internal"]},
        ),
        ("http://localhost:8080", {"rejectLocalhost": False}),
        ("https://kong-canary.tools.example.com", {}),
        ("http://10.1.2.3:8080", {"rejectVerbatimIps": False}),
    ],
)
def test_url_restrictions_are_the_least_change_that_lets_orca_through(url, expected) -> None:
    """Orca's UserConfiguredUrlRestrictions (orca-core config/) rejects the URL with its
    defaults and accepts it with the rendered settings (for non-default cases)."""
    rendered = url_restrictions(url)
    assert rendered == expected
    resolve = lambda host: "127.0.0.1" if host == "localhost" else None  # noqa: E731
    UrlRestrictions.from_config(rendered, resolve=resolve).validate(url + "/v1/upstreams/x/split")
    if expected:
        with pytest.raises(HostNotAllowed):
            UrlRestrictions(resolve=resolve).validate(url + "/v1/upstreams/x/split")


def test_single_word_host_is_refused_with_advice() -> None:
    with pytest.raises(SourceError, match="single-word"):
        url_restrictions("http://kong-canary:8080")


@pytest.mark.parametrize("sensitive", ["orca-local.yml", "orca-local.pre-2026.1.yml"])
def test_payloads_become_valid_json_for_awkward_parameter_values(source, sensitive) -> None:
    """Every payload, with every parameter at its default or a typical value, is JSON the
    sidecar can parse (Orca sends the evaluated String as-is)."""
    doc = yaml.safe_load(render_all(source)[sensitive])
    for hook in doc["webhook"]["preconfigured"]:
        values = {p["name"]: p["defaultValue"] for p in hook["parameters"]}
        values.update({"upstream": "orders", "stable": "95.0", "canary": "2.5"})
        root = {
            "parameterValues": values,
            "execution": {"id": "01H", "name": "p", "application": "orders"},
            "trigger": {"user": "jane@example.com"},
        }
        evaluator = Evaluator(root)
        for key in ("payload", "cancelPayload"):
            if key in hook:
                body = json.loads(evaluator.render(hook[key]))
                assert body["context"]["execution_id"] == "01H"
                assert body["context"]["stage"] == hook["type"]
        assert evaluator.failures == []
        assert "/v1/upstreams/orders/" in evaluator.render(hook["url"])


def test_token_is_sensitive_only_in_the_2026_1_variant(source) -> None:
    files = render_all(source)
    new = yaml.safe_load(files["orca-local.yml"])["webhook"]["preconfigured"]
    old = yaml.safe_load(files["orca-local.pre-2026.1.yml"])["webhook"]["preconfigured"]
    for a, b in zip(new, old, strict=True):
        assert "Authorization" not in a["customHeaders"]
        assert a["sensitiveHeaders"]["Authorization"] == ["Bearer ${KONG_CANARY_SPINNAKER_TOKEN}"]
        assert b["customHeaders"]["Authorization"] == ["Bearer ${KONG_CANARY_SPINNAKER_TOKEN}"]
        assert "sensitiveHeaders" not in b


def test_webhooks_and_templates_share_names(source, committed) -> None:
    """A template only uses stage types and parameter names the webhooks define."""
    types = {
        w["type"]: {p["name"] for p in w["parameters"]}
        for w in committed["orca-local.yml"]["webhook"]["preconfigured"]
    }
    assert set(types) == set(source["webhooks"])
    used = set()
    for rel, doc in committed.items():
        if rel.startswith("templates/"):
            for stage in doc["pipeline"]["stages"]:
                if stage.get("alias") == "preconfiguredWebhook":
                    used.add(stage["type"])
                    assert set(stage["parameterValues"]) == types[stage["type"]]
    standalone = {t for t, spec in source["webhooks"].items() if spec.get("standalone")}
    assert used == set(types) - standalone, "every webhook stage is exercised by a template"


def test_fail_fast_codes_match_the_sidecar_contract(webhooks) -> None:
    fatal = [400, 401, 403, 404, 409, 422]
    for hook in webhooks.values():
        if hook["type"] == "kongCanaryRamp":  # not idempotent: no 5xx may be retried
            assert hook["failFastStatusCodes"] == sorted([*fatal, 500, 502, 503, 504])
            continue
        assert hook["failFastStatusCodes"] == fatal
        assert not set(hook["failFastStatusCodes"]) & {429, 502, 503}


def test_ramp_stage_waits_polls_and_cancels_statically(webhooks) -> None:
    ramp = webhooks["kongCanaryRamp"]
    assert ramp["waitForCompletion"] is True
    assert (ramp["statusUrlResolution"], ramp["statusUrlJsonPath"]) == (
        "webhookResponse",
        "$.statusUrl",
    )
    assert (ramp["successStatuses"], ramp["canceledStatuses"], ramp["terminalStatuses"]) == (
        "SUCCEEDED",
        "CANCELED",
        "FAILED",
    )
    # Known at create time: no reference to the create response, which a failed create lacks.
    assert re.fullmatch(
        r"http://[^$]+/v1/upstreams/\$\{parameterValues\['upstream'\]\}/ramps/cancel",
        ramp["cancelEndpoint"],
    )


TRAFFIC_MOVING = ("kongCanarySetSplit", "kongCanaryRollback", "kongCanaryPromote")


@pytest.mark.parametrize("kind", [*TRAFFIC_MOVING, "kongCanaryCancelRamp"])
def test_traffic_moving_stages_complete_only_once_kong_serves_the_change(webhooks, kind) -> None:
    """The call waits a little (well inside Orca's webhook read timeout), then the stage
    polls the answer's statusUrl until every checkable Kong node serves the change."""
    hook = webhooks[kind]
    assert hook["waitForCompletion"] is True
    assert (hook["statusUrlResolution"], hook["statusUrlJsonPath"]) == (
        "webhookResponse",
        "$.statusUrl",
    )
    assert (hook["statusJsonPath"], hook["progressJsonPath"]) == ("$.status", "$.message")
    assert (hook["successStatuses"], hook["terminalStatuses"]) == ("SUCCEEDED", "FAILED")
    assert "cancelEndpoint" not in hook, "nothing to undo: the change is the way out"
    wait = next(p for p in hook["parameters"] if p["name"] == "wait")
    assert 0 < float(wait["defaultValue"]) <= 15
    raw = {"${parameterValues['targets']}": "{}", "${parameterValues['guard']}": "null"}
    payload = hook["payload"]
    for text, value in raw.items():
        payload = payload.replace(text, value)
    assert json.loads(payload)["wait"] == "${parameterValues['wait']}"
