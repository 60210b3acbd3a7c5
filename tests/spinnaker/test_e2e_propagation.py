"""The shipped traffic-moving stages, run by the Orca simulator against the sidecar in front
of a three-node local Kong whose other two nodes see every write ``LAG`` s late (issue 12
§2): when a stage SUCCEEDS, every node already routes by the change. Traffic is read from
each node's round-robin wheel (``LocalKong.wheels``), not through the sidecar's own checks.

Real time: the lag is short, and each assertion follows the stage's outcome causally (no
timing is asserted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from sidecar.app import close_app, create_app
from sidecar.kong_local.server import RunningServer, serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings
from sidecar.spinnaker.orca import (
    SUCCEEDED,
    UrlRestrictions,
    WebhookStageSimulator,
    plan_templated_pipeline,
    preconfigured_by_type,
)
from tests.spinnaker.conftest import TOKEN, rendered_for, told_url

LAG = 1.5
STABLE, CANARY, BASELINE = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
SEED = {
    "upstreams": [
        {
            "name": "orders",
            "targets": [{"target": STABLE, "weight": 100, "tags": ["variant=stable"]}],
        }
    ]
}
EXECUTION = {"id": "01PROPAGATE", "name": "orders-canary", "application": "orders"}
TARGETS = {"canary_target": CANARY, "baseline_target": BASELINE}
VARIANT = {STABLE: "stable", CANARY: "canary", BASELINE: "baseline"}


@pytest.fixture
def cluster() -> Iterator[RunningServer]:
    kong = serve_in_thread("3.9", seed=SEED, nodes=3, lag=LAG)
    yield kong
    kong.stop()


@pytest.fixture
def world(source: dict[str, Any], cluster: RunningServer) -> Iterator[dict[str, Any]]:
    settings = Settings(
        tokens=(ApiToken("spinnaker", TOKEN, "write"),),
        kong=KongSettings(admin_url=cluster.url),
        propagation_nodes=tuple(cluster.node_urls),
    )
    app = create_app(settings, sweep_leases=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    url = told_url(app, server.port)
    files = rendered_for(source, url)
    orca_local = files["orca-local.yml"]
    try:
        with httpx.Client(timeout=20.0) as client:  # a common webhook.readTimeoutMs
            yield {
                "files": files,
                "url": url,
                "client": client,
                "sim": WebhookStageSimulator(
                    client,
                    preconfigured=preconfigured_by_type(
                        orca_local, {"KONG_CANARY_SPINNAKER_TOKEN": TOKEN}
                    ),
                    restrictions=UrlRestrictions.from_config(
                        orca_local["user-configured-url-restrictions"]
                    ),
                    # Orca polls every 1 s, then 15 s: here 50 ms of real time per poll
                    sleep=lambda s: time.sleep(min(s, 1.0) * 0.05),
                    max_polls=1000,
                ),
            }
    finally:
        server.shutdown()
        thread.join(timeout=5)
        close_app(app)


def planned(world: dict[str, Any], tid: str, ref: str, **params: str) -> dict[str, Any]:
    template = world["files"][f"templates/{tid}.json"]
    config = world["files"][f"samples/{tid}.json"]
    config = {**config, "variables": {**config["variables"], **TARGETS}}
    stages = {s["refId"]: s for s in plan_templated_pipeline(template, config)["stages"]}
    stage = stages[ref]
    stage["parameterValues"].update(params)
    return stage


def run(world: dict[str, Any], stage: dict[str, Any]) -> Any:
    result = world["sim"].run(stage, execution=EXECUTION, trigger={"user": "jane"})
    assert result.status == SUCCEEDED, (result.webhook, [(c.kind, c.status) for c in result.calls])
    return result


def traffic(cluster: RunningServer, turns: int = 5) -> list[dict[str, int]]:
    """Requests per variant from each node, for ``turns`` full turns of its wheel."""
    seen = []
    for wheel in cluster.app.wheels("orders"):
        counts = {"stable": 0, "baseline": 0, "canary": 0}
        for target, points in wheel.items():
            counts[VARIANT[target]] += points * turns
        seen.append(counts)
    return seen


def shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {v: round(100 * n / total, 2) for v, n in counts.items()}


def split_stage(world: dict[str, Any], wait: str) -> Any:
    return run(world, planned(world, "kong-canary-kayenta", "splitInitial", wait=wait))


def canary_everywhere(cluster: RunningServer) -> None:
    """Until every node sends the canary traffic (so a later change has something to stop:
    a node still at the state before the canary would pass a rollback check vacuously)."""
    deadline = time.monotonic() + 30
    while not all(c["canary"] > 0 for c in traffic(cluster)):
        assert time.monotonic() < deadline, traffic(cluster)
        time.sleep(0.1)


def after_a_served_canary(
    world: dict[str, Any], cluster: RunningServer, ref: str, wait: str
) -> None:
    """The canary split served everywhere, then the kayenta template's stage ``ref``."""
    split_stage(world, "10")
    canary_everywhere(cluster)
    run(world, planned(world, "kong-canary-kayenta", ref, wait=wait))


def no_canary_or_baseline_traffic(cluster: RunningServer) -> None:
    for counts in traffic(cluster):
        assert counts["canary"] == 0 and counts["baseline"] == 0, traffic(cluster)
        assert counts["stable"] > 0


# "10": the call waits and the first poll confirms; "0": only the monitored status URL waits.
WAITS = pytest.mark.parametrize("wait", ["10", "0"])


@WAITS
def test_after_the_split_stage_every_node_sends_kayentas_scopes_their_share(
    world: dict[str, Any], cluster: RunningServer, wait: str
) -> None:
    split_stage(world, wait)
    nodes = traffic(cluster)
    assert len(nodes) == 3
    for counts in nodes:
        assert shares(counts) == {"stable": 95.0, "baseline": 2.5, "canary": 2.5}, nodes


@WAITS
def test_after_the_rollback_stage_no_node_sends_a_request_to_canary_or_baseline(
    world: dict[str, Any], cluster: RunningServer, wait: str
) -> None:
    after_a_served_canary(world, cluster, "rollback", wait)
    no_canary_or_baseline_traffic(cluster)


@WAITS
def test_after_the_promote_stage_every_node_sends_everything_to_stable(
    world: dict[str, Any], cluster: RunningServer, wait: str
) -> None:
    after_a_served_canary(world, cluster, "promote", wait)
    for wheel in cluster.app.wheels("orders"):
        assert set(wheel) == {STABLE}, cluster.app.wheels("orders")


def test_after_the_ramp_stage_every_node_serves_the_ramps_target(
    world: dict[str, Any], cluster: RunningServer
) -> None:
    stage = planned(
        world,
        "kong-canary-ramp-analysis",
        "ramp",
        stable="80",
        baseline="10",
        canary="10",
        duration="1",
        steps="2",
    )
    result = run(world, stage)
    assert result.webhook["monitor"]["body"]["status"] == "SUCCEEDED"
    for counts in traffic(cluster):
        assert shares(counts) == {"stable": 80.0, "baseline": 10.0, "canary": 10.0}


def test_after_the_cancel_stage_no_node_sends_a_request_to_canary_or_baseline(
    world: dict[str, Any], cluster: RunningServer
) -> None:
    started = world["client"].post(
        f"{world['url']}/v1/upstreams/orders/ramps",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "schedule": [
                {"stable": 90, "baseline": 5, "canary": 5},
                {"stable": 80, "baseline": 10, "canary": 10},
            ],
            "interval": 600,
            "targets": {"canary": [CANARY], "baseline": [BASELINE]},
            "context": {"execution_id": EXECUTION["id"]},
        },
    )
    assert started.status_code == 202, started.text
    canary_everywhere(cluster)
    run(world, planned(world, "kong-canary-ramp-analysis", "cancelRamp", wait="0"))
    no_canary_or_baseline_traffic(cluster)
