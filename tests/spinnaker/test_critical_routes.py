"""Per-route analysis in the templates (issue 15): ``critical_routes`` enables one
route-level ``kayentaCanary`` per listed route (fixed slots, MPT v2 cannot loop), beside
the service-level analysis, each able to roll the canary back. Played by the Orca pipeline
simulator against the real sidecar and the local Kong."""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from sidecar.spinnaker.orca import (
    FAILED_CONTINUE,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    plan_templated_pipeline,
)
from sidecar.spinnaker.pipeline import Cluster, PipelineSimulator
from tests.spinnaker.test_failure_paths import (  # noqa: F401
    CANARY_OBJECTS,
    VARIABLES,
    Plan,
    _split,
    shared,
    world,
)

KAYENTA, RAMP = "kong-canary-kayenta", "kong-canary-ramp-analysis"
ROUTE_STAGES = {
    KAYENTA: [f"analysis{p}Route{i}" for p in (1, 2) for i in range(1, 6)],
    RAMP: [f"analysisRoute{i}" for i in range(1, 6)] + [f"cancelRampRoute{i}" for i in range(1, 6)],
}


def planned(files: dict[str, Any], tid: str, **variables: Any) -> dict[str, Any]:
    template, config = files[f"templates/{tid}.json"], files[f"samples/{tid}.json"]
    given = {**config["variables"], **VARIABLES, **variables}
    declared = {v["name"] for v in template["variables"]}
    given = {k: v for k, v in given.items() if k in declared}
    return plan_templated_pipeline(template, {**config, "variables": given})


def stages_of(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["refId"]: s for s in pipeline["stages"]}


def run(world: dict[str, Any], pipeline: dict[str, Any], plan: Any = None):  # noqa: F811
    cluster = Cluster()
    simulator = PipelineSimulator(
        world["webhooks"],
        cluster,
        world["clock"],
        faults=plan or Plan("", ""),
        execution={"id": "01ROUTES", "name": "routes", "application": "orders"},
    )
    return simulator.run(pipeline), cluster


@pytest.mark.parametrize("tid", [KAYENTA, RAMP])
def test_each_listed_route_gets_its_config_and_its_scope(source, tid) -> None:
    from tests.spinnaker.conftest import rendered_for

    files = rendered_for(source, source["sidecar_url"])
    stages = stages_of(planned(files, tid, critical_routes=["refunds", "payouts"]))
    first = "analysis1Route" if tid == KAYENTA else "analysisRoute"
    for slot, route in ((1, "refunds"), (2, "payouts")):
        config = stages[f"{first}{slot}"]["canaryConfig"]
        assert config["canaryConfigId"] == "3b9d5e0a-6c1f-4f2a-8e47-0d2c9a7b5e13"
        assert config["scopes"][0]["extendedScopeParams"] == {"service": "orders", "route": route}
        assert stages[f"{first}{slot}"]["stageEnabled"]["expression"].endswith("&& true")
    for slot in (3, 4, 5):
        assert stages[f"{first}{slot}"]["stageEnabled"]["expression"].endswith("&& false")
    service = stages["analysis1" if tid == KAYENTA else "analysis"]
    assert service["canaryConfig"]["scopes"][0]["extendedScopeParams"] == {"service": "orders"}
    assert service["requisiteStageRefIds"] == stages[f"{first}1"]["requisiteStageRefIds"]


def test_the_route_goes_alone_into_empty_scope_params(source) -> None:
    from tests.spinnaker.conftest import rendered_for

    files = rendered_for(source, source["sidecar_url"])
    stages = stages_of(planned(files, KAYENTA, extended_scope_params={}))
    scope = stages["analysis2Route1"]["canaryConfig"]["scopes"][0]
    assert scope["extendedScopeParams"] == {"route": "refunds"}


@pytest.mark.parametrize(
    ("tid", "failing"),
    [(KAYENTA, "analysis1Route2"), (KAYENTA, "analysis2Route1"), (RAMP, "analysisRoute2")],
)
def test_a_failed_route_analysis_rolls_the_canary_back(world, tid, failing) -> None:  # noqa: F811
    longer = {"ramp_seconds": 1200} if tid == RAMP else {}  # the ramp outlives the analyses
    pipeline = planned(world["files"], tid, **longer)
    result, cluster = run(world, pipeline, Plan(failing, "task-fails"))
    assert result.stages[failing] == FAILED_CONTINUE
    assert result.stages["rollback"] == SUCCEEDED
    assert result.stages["promote"] == SKIPPED and result.stages["deployStable"] == SKIPPED
    assert result.status == TERMINAL  # the rollback branch fails the execution on purpose
    assert cluster.objects & CANARY_OBJECTS == set()
    assert float(_split(world)["split"]["stable"]) == 100.0
    if tid == RAMP:  # the ramp is stopped as soon as the route fails, not at its end
        assert result.stages["cancelRampRoute2"] == SUCCEEDED
        assert result.stages["ramp"] == FAILED_CONTINUE  # CANCELED by the sidecar
        assert result.ended_at["ramp"] < 1200


@pytest.mark.parametrize("tid", [KAYENTA, RAMP])
def test_all_routes_passing_promotes(world, tid) -> None:  # noqa: F811
    result, cluster = run(world, planned(world["files"], tid))
    assert result.status == SUCCEEDED, result.stages
    first = "analysis1Route" if tid == KAYENTA else "analysisRoute"
    assert [result.stages[f"{first}{i}"] for i in range(1, 6)] == [SUCCEEDED] * 2 + [SKIPPED] * 3
    assert result.stages["promote"] == SUCCEEDED
    assert cluster.objects & CANARY_OBJECTS == set()
    service = "analysis1" if tid == KAYENTA else "analysis"
    assert result.ended_at[f"{first}1"] == result.ended_at[service], "they run side by side"


def _without_route_stages(pipeline: dict[str, Any], tid: str) -> dict[str, Any]:
    """The pipeline as it was before route slots: their stages and the references to them
    removed (the check stage too, and the deploys start first again)."""
    gone = set(ROUTE_STAGES[tid]) | {"checkRoutes"}
    names = [s["name"] for s in pipeline["stages"] if s["refId"] in gone]
    out = copy.deepcopy(pipeline)
    out["stages"] = [s for s in out["stages"] if s["refId"] not in gone]
    for stage in out["stages"]:
        stage["requisiteStageRefIds"] = [r for r in stage["requisiteStageRefIds"] if r not in gone]
        enabled = stage.get("stageEnabled")
        if enabled:
            for name in names:
                clause = f"#stage('{name}')['status'].toString() "
                for joined in (
                    f" && {clause}!= 'FAILED_CONTINUE'",
                    f" || {clause}== 'FAILED_CONTINUE'",
                ):
                    enabled["expression"] = enabled["expression"].replace(joined, "")
            assert not any(f"'{n}'" in enabled["expression"] for n in names), enabled
    return out


def _calls(result) -> list[tuple[str, str, str, str | None]]:
    """Each webhook call (the path: status URLs carry the clock in their query, ramp ids a
    fresh nonce)."""
    return [
        (
            ref,
            call.kind,
            call.method,
            re.sub(r"/v1/ramps/[^/]+", "/v1/ramps/ID", urlsplit(call.url).path),
        )
        for ref, run_ in sorted(result.runs.items())
        for call in run_.calls
    ]


@pytest.mark.parametrize(
    ("tid", "failing", "mode"),
    [
        (KAYENTA, None, ""),
        (KAYENTA, "analysis1", "task-fails"),
        (KAYENTA, "splitRamp", "create:fail-fast-409"),
        (RAMP, None, ""),
        (RAMP, "analysis", "task-fails"),
        (RAMP, "ramp", "monitor:status-FAILED"),
    ],
)
def test_zero_routes_behaves_exactly_as_without_route_stages(world, tid, failing, mode) -> None:  # noqa: F811
    pipeline = planned(world["files"], tid, critical_routes=[])
    plan = Plan(failing or "", mode)
    with_slots, _ = run(world, pipeline, plan)
    world["clock"].now += 86_400
    from tests.spinnaker.test_failure_paths import world_reset

    world_reset(world)
    without, _ = run(world, _without_route_stages(pipeline, tid), plan)
    assert all(with_slots.stages[r] == SKIPPED for r in ROUTE_STAGES[tid])
    assert with_slots.stages["checkRoutes"] == SUCCEEDED
    same = {r: s for r, s in with_slots.stages.items() if r in without.stages}
    assert same == without.stages
    assert with_slots.status == without.status
    assert _calls(with_slots) == _calls(without)
    assert with_slots.elapsed_s == without.elapsed_s


def test_more_routes_than_slots_fail_before_anything_is_deployed(world) -> None:  # noqa: F811
    routes = ["a", "b", "c", "d", "e", "f"]
    result, cluster = run(world, planned(world["files"], KAYENTA, critical_routes=routes))
    assert result.stages["checkRoutes"] == TERMINAL and result.status == TERMINAL
    assert result.runs == {} and cluster.objects == set()
