"""Every failure path of every template, played by the Orca pipeline simulator against the
real sidecar and the local Kong: each stage of each template fails in turn, in each way Orca
tells apart for its kind of stage, and the pipeline must end with all traffic on stable and
the canary's and baseline's Deployments and Services deleted.

The scenarios are read from the committed templates, so a new stage is covered without
editing this file. A stage that only runs on a failure path (the rollback branch, *Cancel
ramp*) is failed together with a failure that leads there, read from its ``stageEnabled``.
Two endings are stated rather than hidden: when the rollback stage the deletes wait for
fails, the template keeps the pods (traffic may still reach them) and the sidecar's lease
returns the upstream to stable; when a delete of the rollback branch fails, that variant's
Deployment and Service stay.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from sidecar.leases import sweep
from sidecar.spinnaker.generate import DEFAULT_DIR
from sidecar.spinnaker.orca import (
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    AfterSending,
    UnknownHost,
    UrlRestrictions,
    WebhookStageSimulator,
    plan_templated_pipeline,
    preconfigured_by_type,
)
from sidecar.spinnaker.pipeline import Cluster, PipelineSimulator, SimulatedClock
from tests.spinnaker.conftest import TOKEN, rendered_for, serve_sidecar, template_ids

UPSTREAM = "orders"
CANARY_OBJECTS = {
    (kind, f"orders-{variant}")
    for kind in ("deployment", "service")
    for variant in ("canary", "baseline")
}
# Short but realistic: the ramp and the analyses still take minutes of simulated time.
VARIABLES = {
    "canary_target": "10.0.0.2:80",
    "baseline_target": "10.0.0.3:80",
    "ramp_seconds": 120,
    "ramp_steps": 4,
    "analysis_minutes": 5,
}


def _error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "injected"}})


# The ways Orca tells a webhook call's failure apart (orca.py cites each rule).
CREATE_FAULTS = {
    "fail-fast-409": lambda: _error(409, "expect_mismatch"),
    "5xx-until-timeout": lambda: _error(503, "kong_unavailable"),
    "connection-refused": lambda: httpx.ConnectError("[Errno 111] Connection refused"),
    "unknown-host": lambda: UnknownHost("kong-canary.spinnaker: Name or service not known"),
    "answer-lost-after-landing": lambda: AfterSending(httpx.ReadTimeout("Read timed out")),
}
MONITOR_FAULTS = {
    "status-FAILED": lambda: httpx.Response(200, json={"status": "FAILED", "message": "x"}),
    "status-CANCELED": lambda: httpx.Response(200, json={"status": "CANCELED", "message": "x"}),
    "never-finishes": lambda: httpx.Response(200, json={"status": "RUNNING", "message": "x"}),
    "connection-refused": lambda: httpx.ConnectError("[Errno 111] Connection refused"),
}
NATIVE_FAULT = "task-fails"
NATIVE_TYPES = {"deployManifest", "deleteManifest", "kayentaCanary", "checkPreconditions", "wait"}


def _committed_webhooks() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load((DEFAULT_DIR / "orca-local.yml").read_text())
    return {w["type"]: w for w in doc["webhook"]["preconfigured"]}


def _planned(files: dict[str, Any], tid: str) -> dict[str, Any]:
    template, config = files[f"templates/{tid}.json"], files[f"samples/{tid}.json"]
    declared = {v["name"] for v in template["variables"]}
    extra = {k: v for k, v in VARIABLES.items() if k in declared}
    return plan_templated_pipeline(
        template, {**config, "variables": {**config["variables"], **extra}}
    )


def scenarios() -> Iterator[Any]:
    by_type = _committed_webhooks()
    for tid in template_ids():
        files = {
            rel: json.loads((DEFAULT_DIR / rel).read_text())
            for rel in (f"templates/{tid}.json", f"samples/{tid}.json")
        }
        for stage in _planned(files, tid)["stages"]:
            if disabled_when_planned(stage):
                continue  # never runs with these variables (an unused route slot, no cohorts)
            hook = by_type.get(stage["type"])
            if hook is None:
                modes = [NATIVE_FAULT]
            else:
                modes = [f"create:{m}" for m in CREATE_FAULTS]
                if hook.get("waitForCompletion"):
                    modes += [f"monitor:{m}" for m in MONITOR_FAULTS]
            for mode in modes:
                yield pytest.param(tid, stage["refId"], mode, id=f"{tid}-{stage['refId']}-{mode}")


def disabled_when_planned(stage: dict[str, Any]) -> bool:
    """A ``stageEnabled`` whose templateVariables part the plan folded to ``false``."""
    expression = (stage.get("stageEnabled") or {}).get("expression", "")
    return bool(re.search(r"(^|&&\s*)false\s*(&&|$)", expression))


class Plan:
    """Which stage fails, and how; ``also`` fails more stages (refId -> mode)."""

    def __init__(self, ref: str, mode: str, also: dict[str, str] | None = None) -> None:
        self.ref, self.mode, self.also = ref, mode, dict(also or {})

    def __call__(self, ref: str, kind: str) -> Any:
        mode = self.mode if ref == self.ref else self.also.get(ref)
        if mode is None:
            return None
        if mode == NATIVE_FAULT:
            return True if kind == "task" else None
        where, name = mode.split(":", 1)
        if where != kind:
            return None
        return (CREATE_FAULTS if kind == "create" else MONITOR_FAULTS)[name]()


_TESTS_STATUS = re.compile(r"#stage\('([^']*)'\)\['status'\]\.toString\(\) == '(\w+)'")


def trigger(stages: list[dict[str, Any]], ref: str) -> dict[str, str]:
    """The failure that makes a stage of a failure path run: the first stage whose
    FAILED_CONTINUE its ``stageEnabled`` tests, or, for a stage that needs another to have
    SUCCEEDED (a delete after the rollback), what makes that one run."""
    by_name = {s["name"]: s for s in stages}
    stage = next(s for s in stages if s["refId"] == ref)
    tests = _TESTS_STATUS.findall((stage.get("stageEnabled") or {}).get("expression", ""))
    for name, status in tests:
        if status == "FAILED_CONTINUE":
            other = by_name[name]
            mode = NATIVE_FAULT if other["type"] in NATIVE_TYPES else "create:fail-fast-409"
            return {other["refId"]: mode}
    for name, _status in tests:
        found = trigger(stages, by_name[name]["refId"])
        if found:
            return found
    return {}


@pytest.fixture(scope="module")
def shared(source) -> Iterator[dict[str, Any]]:
    """One sidecar and local Kong for the module (rendering and starting them costs more
    than most scenarios); ``world`` puts the upstream back to stable between tests."""
    clock = SimulatedClock()
    with serve_sidecar(clock) as (url, app), httpx.Client(timeout=10.0) as client:
        files = rendered_for(source, url)
        orca_local = files["orca-local.yml"]
        hooks = preconfigured_by_type(orca_local, {"KONG_CANARY_SPINNAKER_TOKEN": TOKEN})
        restrictions = UrlRestrictions.from_config(orca_local["user-configured-url-restrictions"])
        yield {
            "url": url,
            "app": app,
            "clock": clock,
            "client": client,
            "files": files,
            "webhooks": WebhookStageSimulator(
                client, preconfigured=hooks, restrictions=restrictions
            ),
        }


@pytest.fixture
def world(shared) -> dict[str, Any]:
    world_reset(shared)
    assert float(_split(shared)["split"]["stable"]) == 100.0
    return shared


def _api(world: dict[str, Any], method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return world["client"].request(method, world["url"] + path, headers=headers, **kwargs)


def _split(world: dict[str, Any]) -> dict[str, Any]:
    response = _api(world, "GET", f"/v1/upstreams/{UPSTREAM}/split")
    assert response.status_code == 200, response.text
    return response.json()


def _run(world: dict[str, Any], tid: str, plan: Plan):
    if tid == "kong-canary-emergency-rollback":  # something to roll back
        canary = {
            "split": {"stable": 90, "baseline": 5, "canary": 5},
            "targets": {
                "canary": [VARIABLES["canary_target"]],
                "baseline": [VARIABLES["baseline_target"]],
            },
        }
        assert _api(world, "PUT", f"/v1/upstreams/{UPSTREAM}/split", json=canary).status_code == 200
    cluster = Cluster()
    simulator = PipelineSimulator(
        world["webhooks"],
        cluster,
        world["clock"],
        faults=plan,
        execution={"id": "01FAIL", "name": tid, "application": "orders"},
    )
    return simulator.run(_planned(world["files"], tid)), cluster


def _name(stages: list[dict[str, Any]], ref: str) -> str:
    return next(s["name"] for s in stages if s["refId"] == ref)


def _stage_type(world: dict[str, Any], tid: str, ref: str) -> str:
    return next(s["type"] for s in _planned(world["files"], tid)["stages"] if s["refId"] == ref)


@pytest.mark.parametrize(("tid", "ref", "mode"), list(scenarios()))
def test_every_failure_ends_on_stable_with_the_canary_cleaned_up(world, tid, ref, mode) -> None:
    stages = _planned(world["files"], tid)["stages"]
    result, cluster = _run(world, tid, Plan(ref, mode))
    if result.stages[ref] == SKIPPED:  # only reached on a failure path: cause that first
        world_reset(world)
        result, cluster = _run(world, tid, Plan(ref, mode, also=trigger(stages, ref)))
    assert result.stages[ref] not in (SKIPPED, "NOT_STARTED"), "the failure was exercised"
    assert result.stages[ref] != SUCCEEDED, result.stages

    deploys = any(s["type"] == "deployManifest" for s in stages)
    if deploys:
        assert result.status == TERMINAL, result.stages
    failed_type = _stage_type(world, tid, ref)
    leftover = cluster.objects & CANARY_OBJECTS
    guards_deletes = any(
        f"#stage('{_name(stages, ref)}')" in (s.get("stageEnabled") or {}).get("expression", "")
        for s in stages
        if s["type"] == "deleteManifest"
    )
    if failed_type == "kongCanaryRollback" and (guards_deletes or not deploys):
        # Nothing else returns traffic: the pods stay (they may still serve), the lease
        # the sidecar put on every non-stable split brings the upstream back to stable.
        service = world["app"].extensions["kong_canary"].service
        world["clock"].now += 2 * 86_400
        sweep(service, world["clock"]())
        assert leftover == (CANARY_OBJECTS if deploys else set())
    elif ref.endswith("AfterRollback") and failed_type == "deleteManifest":
        variant = "canary" if "Canary" in ref else "baseline"
        assert leftover == {(k, n) for k, n in CANARY_OBJECTS if n.endswith(variant)}
    else:
        assert leftover == set(), (result.stages, cluster.objects)
    view = _split(world)
    assert float(view["split"]["stable"]) == 100.0, (result.stages, view["split"])
    assert all(
        t["weight"] == 0 for t in view["targets"] if t.get("variant") in ("canary", "baseline")
    ), view["targets"]


def world_reset(world: dict[str, Any]) -> None:
    """Back to the seed (stable only, no lease, no ramp), a day later."""
    reply = _api(world, "POST", f"/v1/upstreams/{UPSTREAM}/rollback", json={"remove": True})
    assert reply.status_code in (200, 202), reply.text
    world["clock"].now += 86_400


@pytest.mark.parametrize("tid", template_ids())
def test_the_success_path_runs_every_stage_it_should(world, tid) -> None:
    result, cluster = _run(world, tid, Plan("", ""))
    assert result.status == SUCCEEDED, result.stages
    assert cluster.objects & CANARY_OBJECTS == set()
    assert float(_split(world)["split"]["stable"]) == 100.0


def test_a_user_cancel_mid_ramp_returns_traffic_to_stable(world) -> None:
    """Cancelling the execution runs the ramp task's onCancel: the static cancel endpoint,
    scoped to this execution, rolls the canary back. (Orca runs no later stage after a
    cancel, so the Deployments stay: delete them by hand or re-run the pipeline.)"""
    cluster = Cluster()
    simulator = PipelineSimulator(world["webhooks"], cluster, world["clock"])
    planned = _planned(world["files"], "kong-canary-ramp-analysis")
    result = simulator.run(planned, cancel_at=120)
    assert result.status == "CANCELED" and result.stages["ramp"] == "CANCELED"
    cancels = [c for c in result.runs["ramp"].calls if c.kind == "cancel"]
    assert [c.status for c in cancels] == [200]
    assert float(_split(world)["split"]["stable"]) == 100.0


@pytest.mark.parametrize("timeout", ["template", "none"])
def test_a_ramp_longer_than_an_hour_needs_the_stage_timeout(world, timeout) -> None:
    """MonitorWebhookTask gives up after 1 h unless stageTimeoutMs overrides it; the ramp
    template sets the ramp's duration plus an hour."""
    files = world["files"]
    template, config = (
        files["templates/kong-canary-ramp-analysis.json"],
        files["samples/kong-canary-ramp-analysis.json"],
    )
    variables = {**config["variables"], **VARIABLES, "ramp_seconds": 5400, "ramp_steps": 3}
    planned = plan_templated_pipeline(template, {**config, "variables": variables})
    stage = next(s for s in planned["stages"] if s["refId"] == "ramp")
    assert stage["stageTimeoutMs"] == (5400 + 3600) * 1000
    if timeout == "none":
        del stage["stageTimeoutMs"]

    def advance(seconds: float) -> None:
        world["clock"].now += seconds

    simulator = WebhookStageSimulator(
        world["client"],
        preconfigured=world["webhooks"].preconfigured,
        restrictions=world["webhooks"].restrictions,
        sleep=advance,
    )
    result = simulator.run(stage, execution={"id": "01LONG", "name": "n", "application": "a"})
    if timeout == "none":
        assert result.status == "FAILED_CONTINUE" and 3600 - 15 <= result.elapsed_s <= 3600
    else:
        assert result.status == SUCCEEDED, result.webhook.get("monitor")
        assert result.elapsed_s >= 5400


def test_a_failed_ramp_is_rolled_back_before_the_analysis_beside_it_ends(world) -> None:
    """FAILED_CONTINUE calls no cancel endpoint, so the template rolls a failed ramp back
    itself, at once, instead of leaving its traffic split until the analysis ends."""
    refused = Plan("ramp", "monitor:connection-refused")
    result, _ = _run(world, "kong-canary-ramp-analysis", refused)
    assert result.stages["ramp"] == "FAILED_CONTINUE"
    assert result.stages["rollbackFailedRamp"] == SUCCEEDED
    assert result.ended_at["rollbackFailedRamp"] < result.ended_at["analysis"] / 2
    assert result.status == TERMINAL
