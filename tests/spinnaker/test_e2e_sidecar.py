"""Our preconfigured stages, run by the Orca simulator against the real sidecar app
(backed by the local Kong server), with parameterValues taken from the planned templates."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from sidecar.app import close_app, create_app
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings
from sidecar.spinnaker.orca import (
    SUCCEEDED,
    TERMINAL,
    UrlRestrictions,
    WebhookStageSimulator,
    plan_templated_pipeline,
    preconfigured_by_type,
)
from tests.spinnaker.conftest import TOKEN, rendered_for

SEED = {
    "upstreams": [
        {
            "name": "orders",
            "targets": [{"target": "10.0.0.1:80", "weight": 100, "tags": ["variant=stable"]}],
        }
    ]
}
EXECUTION = {"id": "01E2E", "name": "orders-canary", "application": "orders"}


@pytest.fixture
def sidecar_url() -> Iterator[str]:
    kong = serve_in_thread("3.9", seed=SEED)
    settings = Settings(
        tokens=(ApiToken("spinnaker", TOKEN, "write"),), kong=KongSettings(admin_url=kong.url)
    )
    app = create_app(settings, sweep_leases=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    url = f"http://localhost:{server.port}"
    # The URL Orca is told (and its URL restrictions allow) is the one its links must use:
    # the sidecar never builds them from the request's Host (issue 13 item 12).
    runtime = app.extensions["kong_canary"]
    runtime.settings = dataclasses.replace(runtime.settings, public_url=url)
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=5)
        close_app(app)
        kong.stop()


@pytest.fixture
def world(source, sidecar_url) -> Iterator[dict[str, Any]]:
    """Everything rendered for this sidecar URL, as Orca would load it."""
    files = rendered_for(source, sidecar_url)
    orca_local = files["orca-local.yml"]
    restrictions = UrlRestrictions.from_config(orca_local["user-configured-url-restrictions"])
    with httpx.Client(timeout=10.0) as client:
        yield {
            "files": files,
            "sim": WebhookStageSimulator(
                client,
                preconfigured=preconfigured_by_type(
                    orca_local, {"KONG_CANARY_SPINNAKER_TOKEN": TOKEN}
                ),
                restrictions=restrictions,
                sleep=lambda s: time.sleep(min(s, 1.0) * 0.05),
                max_polls=200,
            ),
        }


def planned(world: dict[str, Any], tid: str, **variables: Any) -> dict[str, dict[str, Any]]:
    template = world["files"][f"templates/{tid}.json"]
    config = world["files"][f"samples/{tid}.json"]
    config = {**config, "variables": {**config["variables"], **variables}}
    return {s["refId"]: s for s in plan_templated_pipeline(template, config)["stages"]}


def run(world: dict[str, Any], stage: dict[str, Any]):
    return world["sim"].run(stage, execution=EXECUTION, trigger={"user": "jane"})


TARGETS = {"canary_target": "10.0.0.2:80", "baseline_target": "10.0.0.3:80"}


def test_split_read_rollback_split_promote_all_succeed(world) -> None:
    stages = planned(world, "kong-canary-kayenta", **TARGETS)
    read = planned(world, "kong-canary-emergency-rollback")["readAfter"]

    first = run(world, stages["splitInitial"])
    assert first.status == SUCCEEDED, first.webhook
    now = run(world, read)
    assert now.status == SUCCEEDED
    assert {k: float(v) for k, v in now.webhook["body"]["split"].items()} == {
        "stable": 95.0,
        "baseline": 2.5,
        "canary": 2.5,
    }

    back = run(world, stages["rollback"])
    assert back.status == SUCCEEDED, back.webhook
    assert float(run(world, read).webhook["body"]["split"]["stable"]) == 100.0

    assert run(world, stages["splitInitial"]).status == SUCCEEDED
    assert run(world, stages["splitRamp"]).status == SUCCEEDED
    promoted = run(world, stages["promote"])
    assert promoted.status == SUCCEEDED, promoted.webhook
    after = run(world, read).webhook["body"]
    assert float(after["split"]["stable"]) == 100.0


def test_emergency_rollback_template_runs_end_to_end(world) -> None:
    assert (
        run(world, planned(world, "kong-canary-kayenta", **TARGETS)["splitInitial"]).status
        == SUCCEEDED
    )
    stages = planned(world, "kong-canary-emergency-rollback")
    results = [run(world, stages[ref]) for ref in ("readBefore", "rollback", "readAfter")]
    assert [r.status for r in results] == [SUCCEEDED] * 3
    assert float(results[0].webhook["body"]["split"]["canary"]) == 2.5
    assert float(results[2].webhook["body"]["split"]["stable"]) == 100.0


def test_refused_split_is_terminal_at_once(world) -> None:
    stage = planned(world, "kong-canary-kayenta", **TARGETS)["splitInitial"]
    stage["parameterValues"].update(stable="40", baseline="0", canary="60")
    result = run(world, stage)
    assert result.status == TERMINAL
    assert result.webhook["statusCodeValue"] == 422
    assert result.webhook["body"]["error"]["code"]
    assert [c.kind for c in result.calls] == ["create"], "a fatal code is not retried"


def test_wrong_token_is_terminal(world) -> None:
    sim = world["sim"]
    stage = planned(world, "kong-canary-emergency-rollback")["readBefore"]
    hooks = {
        k: {**v, "sensitiveHeaders": {"Authorization": ["Bearer wrong-token-wrong-token"]}}
        for k, v in sim.preconfigured.items()
    }
    other = WebhookStageSimulator(sim.client, preconfigured=hooks, restrictions=sim.restrictions)
    result = other.run(stage, execution=EXECUTION)
    assert result.status == TERMINAL and result.webhook["statusCodeValue"] == 401


def test_ramp_stage_runs_to_success(world) -> None:
    stage = planned(world, "kong-canary-ramp-analysis", **TARGETS)["ramp"]
    stage["parameterValues"].update(duration="0", steps="1")
    result = run(world, stage)
    assert result.status == SUCCEEDED, (result.webhook, [c.url for c in result.calls])
    assert next(c.kind for c in result.calls) == "create"
    assert result.webhook["monitor"]["body"]["status"].upper() == "SUCCEEDED"


def test_failed_ramp_stage_cancels_the_ramp_and_traffic_returns_to_stable(world) -> None:
    """The stage times out (stageTimeoutMs) while the ramp runs: Orca's on-failure cancel
    hits the static, upstream-scoped cancel endpoint and the sidecar rolls back."""
    stage = planned(world, "kong-canary-ramp-analysis", **TARGETS)["ramp"]
    stage["parameterValues"].update(duration="600", steps="10")
    stage["stageTimeoutMs"] = 3000
    result = run(world, stage)
    assert result.status == TERMINAL
    cancel = [c for c in result.calls if c.kind == "cancel"]
    assert len(cancel) == 1
    if cancel[0].status in (404, 405):
        pytest.skip("POST /v1/upstreams/{upstream}/ramps/cancel not yet implemented")
    assert cancel[0].status == 200
    read = planned(world, "kong-canary-emergency-rollback")["readAfter"]
    assert float(run(world, read).webhook["body"]["split"]["stable"]) == 100.0
