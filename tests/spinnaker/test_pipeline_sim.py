"""The pipeline simulator's execution rules (cited in sidecar/spinnaker/pipeline.py), with
webhook stages against a scripted server on loopback."""

from __future__ import annotations

import pytest

from sidecar.spinnaker.orca import (
    CANCELED,
    FAILED_CONTINUE,
    SKIPPED,
    STOPPED,
    SUCCEEDED,
    TERMINAL,
    UrlRestrictions,
    WebhookStageSimulator,
)
from sidecar.spinnaker.pipeline import Cluster, PipelineSimulator, SimulatedClock, condition_holds
from tests.spinnaker.fakehttp import Reply


def _wait(ref: str, seconds: float, after: tuple[str, ...] = (), **extra) -> dict:
    return {
        "refId": ref,
        "name": ref,
        "type": "wait",
        "waitTime": seconds,
        "requisiteStageRefIds": list(after),
        **extra,
    }


def _hook(fake, ref: str, path: str, after: tuple[str, ...] = (), **extra) -> dict:
    return {
        "refId": ref,
        "name": ref,
        "type": "webhook",
        "url": fake.url + path,
        "method": "POST",
        "failFastStatusCodes": [400],
        "requisiteStageRefIds": list(after),
        **extra,
    }


def _polled(fake, ref: str) -> dict:
    fake.on("POST", "/ramp", Reply(202, {"statusUrl": fake.url + "/ramp/1"}))
    fake.on("GET", "/ramp/1", Reply(200, {"status": "RUNNING"}))
    fake.on("POST", "/ramp/cancel", Reply(200, {}))
    return _hook(
        fake,
        ref,
        "/ramp",
        waitForCompletion=True,
        statusUrlResolution="webhookResponse",
        statusUrlJsonPath="$.statusUrl",
        statusJsonPath="$.status",
        successStatuses="SUCCEEDED",
        cancelEndpoint=fake.url + "/ramp/cancel",
    )


def _simulator(client, fails: set[str] = frozenset()) -> PipelineSimulator:
    hooks = WebhookStageSimulator(client, restrictions=UrlRestrictions(reject_localhost=False))
    return PipelineSimulator(
        hooks,
        Cluster(),
        SimulatedClock(),
        faults=lambda ref, kind: True if (ref in fails and kind == "task") else None,
    )


A_OK = "#stage('a')['status'].toString() == 'SUCCEEDED'"
B_OK = "#stage('b')['status'].toString() == 'SUCCEEDED'"
B_FAILED = "#stage('b')['status'].toString() == 'FAILED_CONTINUE'"
A_NOT_OK = "#stage('a')['status'].toString() != 'SUCCEEDED'"


@pytest.mark.parametrize(
    ("expression", "holds"),
    [
        (A_OK, True),
        (B_OK, False),
        (f"{A_OK} && {B_OK}", False),
        (f"{B_FAILED} || {A_NOT_OK}", True),
        (f"{A_NOT_OK} || {B_OK}", False),
    ],
)
def test_stage_enabled_expressions(expression, holds) -> None:
    statuses = {"a": SUCCEEDED, "b": FAILED_CONTINUE}
    assert condition_holds(expression, statuses.__getitem__) is holds


def test_a_stage_waits_for_every_requisite_and_a_skipped_one_lets_it_start(client) -> None:
    never = "#stage('a')['status'].toString() == 'TERMINAL'"
    pipeline = {
        "stages": [
            _wait("a", 10),
            _wait("b", 50),
            _wait("skipped", 5, ("a",), stageEnabled={"type": "expression", "expression": never}),
            _wait("c", 1, ("skipped", "b")),
        ]
    }
    result = _simulator(client).run(pipeline)
    assert result.status == SUCCEEDED
    assert result.stages == {"a": SUCCEEDED, "b": SUCCEEDED, "skipped": SKIPPED, "c": SUCCEEDED}
    assert result.elapsed_s == 51


def test_failed_continue_lets_successors_run(client) -> None:
    pipeline = {"stages": [_wait("a", 1, continuePipeline=True), _wait("b", 1, ("a",))]}
    result = _simulator(client, {"a"}).run(pipeline)
    assert result.stages == {"a": FAILED_CONTINUE, "b": SUCCEEDED}
    assert result.status == SUCCEEDED


def test_a_terminal_stage_ends_the_execution_and_cancels_running_stages_silently(
    client, fake
) -> None:
    """CompleteExecutionHandler -> CancelStage -> RunTaskHandler sees a complete execution:
    the running webhook ends CANCELED and its cancel endpoint is not called."""
    pipeline = {"stages": [_polled(fake, "ramp"), _wait("fails", 30), _wait("next", 1, ("fails",))]}
    result = _simulator(client, {"fails"}).run(pipeline)
    assert result.status == TERMINAL
    assert result.stages == {"ramp": CANCELED, "fails": TERMINAL, "next": "NOT_STARTED"}
    assert not [r for r in fake.requests if r.path == "/ramp/cancel"]


def test_a_user_cancel_calls_the_running_webhook_cancel_endpoint(client, fake) -> None:
    result = _simulator(client).run({"stages": [_polled(fake, "ramp")]}, cancel_at=90)
    assert result.status == CANCELED and result.stages["ramp"] == CANCELED
    assert [r.path for r in fake.requests].count("/ramp/cancel") == 1


@pytest.mark.parametrize(("fail_after", "status"), [(False, SUCCEEDED), (True, TERMINAL)])
def test_a_stopped_branch_lets_the_others_finish(client, fail_after, status) -> None:
    stopped = _wait("a", 1, failPipeline=False, completeOtherBranchesThenFail=fail_after)
    pipeline = {"stages": [stopped, _wait("b", 60), _wait("after_a", 1, ("a",))]}
    result = _simulator(client, {"a"}).run(pipeline)
    assert result.stages == {"a": STOPPED, "b": SUCCEEDED, "after_a": "NOT_STARTED"}
    assert result.status == status
