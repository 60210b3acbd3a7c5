"""``guard`` through the templates and webhook stages (issue 18): the template variable
reaches the sidecar's ``PUT …/split`` and ``POST …/ramps`` as the JSON object the user
gave; left out, the stage sends ``"guard": null``, which the sidecar treats as no guard."""

from __future__ import annotations

import json

import pytest

from sidecar.spinnaker.orca import SUCCEEDED, PlanError, plan_templated_pipeline
from tests.spinnaker.test_e2e_sidecar import TARGETS, planned, run, sidecar_url, world  # noqa: F401

GUARD = {"errors_ratio": 2.0, "confidence": 0.995}


def _sent(stage_run) -> dict:
    return json.loads(stage_run.calls[0].body)


def test_a_guard_given_to_the_template_arms_the_sidecar_with_it(world) -> None:  # noqa: F811
    split = planned(world, "kong-canary-kayenta", guard=GUARD, **TARGETS)["splitInitial"]
    result = run(world, split)
    assert result.status == SUCCEEDED, result.webhook
    assert _sent(result)["guard"] == GUARD
    url = split_url(result)
    guard = world["sim"].client.get(url.replace("/split", "/guard"), headers=auth(result))
    assert guard.json()["armed"] is True
    assert guard.json()["config"]["errors_ratio"] == 2.0


def test_no_guard_sends_null_and_the_sidecar_arms_nothing(world) -> None:  # noqa: F811
    split = planned(world, "kong-canary-kayenta", **TARGETS)["splitInitial"]
    result = run(world, split)
    assert result.status == SUCCEEDED, result.webhook
    assert _sent(result)["guard"] is None
    url = split_url(result)
    guard = world["sim"].client.get(url.replace("/split", "/guard"), headers=auth(result))
    assert guard.json()["armed"] is False


def test_empty_guard_means_the_sidecars_defaults(world) -> None:  # noqa: F811
    split = planned(world, "kong-canary-kayenta", guard={}, **TARGETS)["splitInitial"]
    result = run(world, split)
    assert result.status == SUCCEEDED, result.webhook
    assert _sent(result)["guard"] == {}


def test_the_ramp_stage_sends_the_guard(world) -> None:  # noqa: F811
    ramp = planned(world, "kong-canary-ramp-analysis", guard=GUARD, **TARGETS)["ramp"]
    assert json.loads(ramp["parameterValues"]["guard"]) == GUARD
    world["sim"].max_polls = 1  # only the start of the ramp matters here
    result = run(world, ramp)
    assert result.calls[0].status == 202, result.webhook
    assert _sent(result)["guard"] == GUARD


def test_a_guard_given_as_null_is_refused_when_orca_plans(world) -> None:  # noqa: F811
    """configurationVariables collects with Collectors.toMap, which throws on a null value."""
    template = world["files"]["templates/kong-canary-kayenta.json"]
    config = world["files"]["samples/kong-canary-kayenta.json"]
    config = {**config, "variables": {**config["variables"], "guard": None}}
    with pytest.raises(PlanError, match="null"):
        plan_templated_pipeline(template, config)


def split_url(stage_run) -> str:
    return stage_run.calls[0].url


def auth(stage_run) -> dict[str, str]:
    return {"Authorization": stage_run.calls[0].headers["Authorization"]}
