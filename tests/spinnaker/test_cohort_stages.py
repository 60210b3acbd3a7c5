"""The cohort stages (issue 14): ``kongCanarySetCohorts`` and ``kongCanaryClearCohorts`` as
Orca would run them, against a recording server (the sidecar's cohorts API is another
branch's: only the request our stages send is modelled), and the Kubernetes canary
template's optional cohorts step."""

from __future__ import annotations

import json

import httpx
import pytest

from sidecar.spinnaker.orca import (
    FAILED_CONTINUE,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    UrlRestrictions,
    WebhookStageSimulator,
    plan_templated_pipeline,
    preconfigured_by_type,
)
from tests.spinnaker.conftest import TOKEN, rendered_for
from tests.spinnaker.fakehttp import Reply
from tests.spinnaker.test_critical_routes import KAYENTA, planned, run, stages_of
from tests.spinnaker.test_failure_paths import CANARY_OBJECTS, Plan, _split, shared, world  # noqa: F401

COHORTS = {
    "never_canary": {"consumers": ["acme-payments"], "groups": ["key-accounts"]},
    "header": {"name": "X-Canary", "always": "always", "never": "never"},
    "lease": 1800,
}
EXECUTION = {"id": "01COHORT", "name": "orders-canary", "application": "orders"}


@pytest.fixture
def stages(source, fake):
    """The rendered preconfigured stages pointed at the recording server, and the kayenta
    template planned with cohorts."""
    files = rendered_for(source, fake.url)
    hooks = preconfigured_by_type(files["orca-local.yml"], {"KONG_CANARY_SPINNAKER_TOKEN": TOKEN})
    template, config = files[f"templates/{KAYENTA}.json"], files[f"samples/{KAYENTA}.json"]
    config = {**config, "variables": {**config["variables"], "cohorts": COHORTS}}
    return hooks, stages_of(plan_templated_pipeline(template, config))


def simulator(client, hooks) -> WebhookStageSimulator:
    return WebhookStageSimulator(
        client, preconfigured=hooks, restrictions=UrlRestrictions(reject_localhost=False)
    )


def test_the_template_sends_the_cohorts_the_user_gave(client, fake, stages) -> None:
    hooks, planned_stages = stages
    fake.on("PUT", "/v1/upstreams/orders/cohorts", Reply(200, {"upstream": "orders"}))
    result = simulator(client, hooks).run(planned_stages["setCohorts"], execution=EXECUTION)
    assert result.status == SUCCEEDED, result.webhook
    [seen] = fake.requests
    assert (seen.method, seen.path) == ("PUT", "/v1/upstreams/orders/cohorts")
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(seen.body)
    assert body["never_canary"] == COHORTS["never_canary"]
    assert body["always_canary"] == {}  # not given: no one is sent to the canary on purpose
    assert body["header"] == COHORTS["header"]
    assert body["lease"] == 1800
    assert (body["dry_run"], body["wait"]) == ("false", "10")
    assert body["context"]["execution_id"] == "01COHORT"
    assert body["context"]["stage"] == "kongCanarySetCohorts"


def test_parts_not_given_are_sent_as_the_sidecars_defaults(client, fake, source) -> None:
    files = rendered_for(source, fake.url)
    hooks = preconfigured_by_type(files["orca-local.yml"], {"KONG_CANARY_SPINNAKER_TOKEN": TOKEN})
    template, config = files[f"templates/{KAYENTA}.json"], files[f"samples/{KAYENTA}.json"]
    only = {"always_canary": {"groups": ["qa"]}}
    config = {**config, "variables": {**config["variables"], "cohorts": only}}
    stage = stages_of(plan_templated_pipeline(template, config))["setCohorts"]
    fake.on("PUT", "/v1/upstreams/orders/cohorts", Reply(200, {}))
    assert simulator(client, hooks).run(stage, execution=EXECUTION).status == SUCCEEDED
    body = json.loads(fake.requests[0].body)
    assert body["always_canary"] == {"groups": ["qa"]} and body["never_canary"] == {}
    assert body["header"] is None and body["lease"] is None


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 422])
def test_a_refused_cohorts_call_fails_fast(client, fake, stages, code) -> None:
    hooks, planned_stages = stages
    fake.on("PUT", "/v1/upstreams/orders/cohorts", Reply(code, {"error": {"code": "x"}}))
    result = simulator(client, hooks).run(planned_stages["setCohorts"], execution=EXECUTION)
    assert result.status == FAILED_CONTINUE  # the template continues into its rollback
    assert len(fake.requests) == 1


def test_clear_cohorts_deletes_them(client, fake, source) -> None:
    hooks = preconfigured_by_type(
        rendered_for(source, fake.url)["orca-local.yml"], {"KONG_CANARY_SPINNAKER_TOKEN": TOKEN}
    )
    fake.on("DELETE", "/v1/upstreams/orders/cohorts", Reply(200, {"upstream": "orders"}))
    stage = {
        "type": "kongCanaryClearCohorts",
        "alias": "preconfiguredWebhook",
        "refId": "clear",
        "name": "Clear cohorts",
        "parameterValues": {"upstream": "orders", "dryRun": "false", "reason": "done"},
    }
    result = simulator(client, hooks).run(stage, execution=EXECUTION)
    assert result.status == SUCCEEDED
    [seen] = fake.requests
    assert (seen.method, seen.path) == ("DELETE", "/v1/upstreams/orders/cohorts")
    body = json.loads(seen.body)
    assert (body["dry_run"], body["reason"]) == ("false", "done")
    assert body["context"]["stage"] == "kongCanaryClearCohorts"
    fake.on("DELETE", "/v1/upstreams/orders/cohorts", Reply(422, {"error": {"code": "x"}}))
    assert simulator(client, hooks).run(stage, execution=EXECUTION).status == TERMINAL


def test_no_cohorts_skips_the_step(world) -> None:  # noqa: F811
    result, _ = run(world, planned(world["files"], KAYENTA))
    assert result.stages["setCohorts"] == SKIPPED and result.status == SUCCEEDED


def _cohorts_answer(ref: str, kind: str):
    """The sidecar's cohorts API (not on this branch) answering the step."""
    if ref == "setCohorts" and kind == "create":
        return httpx.Response(200, json={"upstream": "orders"})
    return None


def test_the_analysis_starts_once_the_cohorts_are_set(world) -> None:  # noqa: F811
    pipeline = planned(world["files"], KAYENTA, cohorts=COHORTS)
    result, cluster = run(world, pipeline, _cohorts_answer)
    assert result.status == SUCCEEDED, result.stages
    assert result.stages["setCohorts"] == SUCCEEDED
    assert [c.method for c in result.runs["setCohorts"].calls] == ["PUT"]
    assert result.ended_at["setCohorts"] <= result.ended_at["analysis1"] - 5 * 60
    assert cluster.objects & CANARY_OBJECTS == set()


def test_a_refused_cohorts_step_rolls_the_canary_back_before_any_analysis(world) -> None:  # noqa: F811
    pipeline = planned(world["files"], KAYENTA, cohorts=COHORTS)
    result, cluster = run(world, pipeline, Plan("setCohorts", "create:fail-fast-409"))
    assert result.stages["setCohorts"] == FAILED_CONTINUE
    assert result.stages["analysis1"] == SKIPPED and result.stages["analysis1Route1"] == SKIPPED
    assert result.stages["rollback"] == SUCCEEDED and result.status == TERMINAL
    assert float(_split(world)["split"]["stable"]) == 100.0
    assert cluster.objects & CANARY_OBJECTS == set()
