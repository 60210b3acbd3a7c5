"""The Orca simulator against a scripted server on loopback (real HTTP).

Rules are Orca's (spinnaker/spinnaker monorepo, orca/orca-webhook):
WebhookResponseProcessor.java (create), MonitorWebhookTask.java (monitor),
WebhookService.java (headers, cancel), PreconfiguredWebhookStage.java (merge).
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from sidecar.spinnaker.orca import (
    CANCELED,
    FAILED_CONTINUE,
    STOPPED,
    SUCCEEDED,
    TERMINAL,
    UnknownHost,
    UrlRestrictions,
    WebhookStageSimulator,
    preconfigured_by_type,
)
from tests.spinnaker.conftest import TOKEN, rendered_for
from tests.spinnaker.fakehttp import Reply

LOCAL = UrlRestrictions(reject_localhost=False)


def sim(client, preconfigured=None, sleeps=None, **kwargs) -> WebhookStageSimulator:
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return WebhookStageSimulator(
        client, preconfigured=preconfigured, restrictions=LOCAL, sleep=record, **kwargs
    )


def plain(url: str, **extra) -> dict:
    return {"type": "webhook", "refId": "1", "name": "hook", "url": url, "method": "POST", **extra}


@pytest.fixture
def hooks(source, fake):
    """Our rendered preconfigured stages, pointed at the fake server."""
    doc = rendered_for(source, fake.url)["orca-local.yml"]
    return preconfigured_by_type(doc, {"KONG_CANARY_SPINNAKER_TOKEN": TOKEN})


def stage(stage_type: str, **values) -> dict:
    return {
        "type": stage_type,
        "alias": "preconfiguredWebhook",
        "refId": "s",
        "name": stage_type,
        "parameterValues": values,
    }


def test_fail_fast_code_is_terminal_without_retry(client, fake) -> None:
    fake.on("POST", "/x", Reply(422, {"error": {"code": "invalid_split"}}))
    sleeps: list[float] = []
    run = sim(client, sleeps=sleeps).run(plain(fake.url + "/x", failFastStatusCodes=[422]))
    assert run.status == TERMINAL
    assert run.webhook["body"] == {"error": {"code": "invalid_split"}}
    assert len(fake.requests) == 1 and sleeps == []


@pytest.mark.parametrize("code", [429, 502, 503])
def test_retryable_codes_retry_every_ten_seconds(client, fake, code) -> None:
    fake.on("POST", "/x", Reply(code, {}), Reply(code, {}), Reply(200, {"ok": True}))
    sleeps: list[float] = []
    run = sim(client, sleeps=sleeps).run(plain(fake.url + "/x", failFastStatusCodes=[400]))
    assert run.status == SUCCEEDED
    assert sleeps == [10.0, 10.0] and len(fake.requests) == 3


def test_504_fails_fast_by_default_but_retries_when_the_list_is_replaced(client, fake) -> None:
    fake.on("POST", "/x", Reply(504, {}), Reply(200, {}))
    assert sim(client).run(plain(fake.url + "/x")).status == TERMINAL
    fake.requests.clear()
    fake.on("POST", "/x", Reply(504, {}), Reply(200, {}))
    assert sim(client).run(plain(fake.url + "/x", failFastStatusCodes=[400])).status == SUCCEEDED


def test_persistent_5xx_gives_up_after_five_minutes(client, fake) -> None:
    fake.on("POST", "/x", Reply(503, {}))
    sleeps: list[float] = []
    run = sim(client, sleeps=sleeps).run(plain(fake.url + "/x", failFastStatusCodes=[400]))
    assert run.status == TERMINAL and sum(sleeps) == 300.0
    assert len(fake.requests) == 31


def test_other_client_error_is_terminal(client, fake) -> None:
    fake.on("POST", "/x", Reply(418, "teapot"))
    run = sim(client).run(plain(fake.url + "/x", failFastStatusCodes=[400]))
    assert run.status == TERMINAL and run.webhook["body"] == "teapot"


def test_connection_refused_is_terminal(client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = sim(client).run(plain(f"http://localhost:{port}/x"))
    assert run.status == TERMINAL and "exception" in run.webhook["error"]


def test_url_restrictions_block_before_any_request(client, fake) -> None:
    strict = WebhookStageSimulator(client, restrictions=UrlRestrictions())
    run = strict.run(plain(fake.url + "/x"))
    assert run.status == TERMINAL and "Host not allowed" in run.context["exception"]
    assert fake.requests == []


def test_string_payload_without_content_type_goes_as_text_plain(client, fake) -> None:
    fake.on("POST", "/x", Reply(200, {}))
    sim(client).run(
        plain(fake.url + "/x", payload='{"a": 1}', customHeaders={"X-Spinnaker-User": "x"})
    )
    seen = fake.requests[0]
    assert seen.headers["Content-Type"] == "text/plain" and seen.body == '{"a": 1}'
    assert "X-Spinnaker-User" not in seen.headers


def test_preconfigured_stage_needs_the_alias(client, hooks) -> None:
    bad = stage("kongCanaryReadSplit", upstream="orders")
    del bad["alias"]
    with pytest.raises(ValueError, match="alias"):
        sim(client, hooks).run(bad)


def test_set_split_sends_json_with_parameters_and_a_sensitive_token(client, fake, hooks) -> None:
    served = {"status": "RUNNING", "statusUrl": fake.url + "/v1/upstreams/orders/propagation"}
    fake.on("PUT", "/v1/upstreams/orders/split", Reply(200, {"upstream": "orders", **served}))
    fake.on(
        "GET",
        "/v1/upstreams/orders/propagation",
        Reply(200, {"status": "SUCCEEDED", "message": "served"}),
    )
    values = {p["name"]: p["defaultValue"] for p in hooks["kongCanarySetSplit"]["parameters"]}
    values.update(upstream="orders", stable="95", baseline="2.5", canary="2.5")
    run = sim(client, hooks).run(
        stage("kongCanarySetSplit", **values),
        execution={"id": "01EXEC", "name": "deploy", "application": "orders"},
        trigger={"user": "jane"},
    )
    assert run.status == SUCCEEDED
    seen = fake.requests[0]
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"] == "application/json"
    body = json.loads(seen.body)
    assert body["split"] == {"stable": "95", "baseline": "2.5", "canary": "2.5"}
    assert body["targets"] == {} and body["context"]["user"] == "jane"
    assert body["wait"] == "10", "the call itself waits, inside Orca's read timeout"
    assert [c.kind for c in run.calls] == ["create", "monitor"], "then polls until served"
    assert TOKEN not in json.dumps(run.context), "sensitive headers never enter the context"


def _ramp(fake, *statuses: dict) -> None:
    fake.on(
        "POST",
        "/v1/upstreams/orders/ramps",
        Reply(202, {"id": "r1", "status": "RUNNING", "statusUrl": fake.url + "/v1/ramps/r1"}),
    )
    fake.on("GET", "/v1/ramps/r1", *[Reply(200, s) for s in statuses])
    fake.on(
        "POST",
        "/v1/upstreams/orders/ramps/cancel",
        Reply(200, {"status": "CANCELED", "message": "rolled back"}),
    )


def _ramp_stage(hooks) -> dict:
    values = {p["name"]: p["defaultValue"] for p in hooks["kongCanaryRamp"]["parameters"]}
    return stage("kongCanaryRamp", **{**values, "upstream": "orders"})


def test_ramp_polls_until_success_case_insensitively(client, fake, hooks) -> None:
    _ramp(
        fake,
        {"status": "RUNNING", "message": "step 1/2"},
        {"status": "weird", "message": "?"},
        {"status": "succeeded", "message": "done"},
    )
    sleeps: list[float] = []
    run = sim(client, hooks, sleeps=sleeps).run(_ramp_stage(hooks))
    assert run.status == SUCCEEDED
    assert run.webhook["monitor"]["progressMessage"] == "done"
    assert [c.kind for c in run.calls] == ["create", "monitor", "monitor", "monitor"]
    assert sleeps == [1.0, 1.0]
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in run.calls)


@pytest.mark.parametrize(
    ("poll", "status"),
    [
        ({"status": "FAILED", "message": "kong refused"}, TERMINAL),
        ({"status": "CANCELED", "message": "cancelled"}, CANCELED),
        ({"state": "RUNNING", "message": "x"}, TERMINAL),  # status path missing
        ({"status": "RUNNING", "message": None}, TERMINAL),  # progress not a string
    ],
)
def test_ramp_failure_calls_the_cancel_endpoint(client, fake, hooks, poll, status) -> None:
    _ramp(fake, poll)
    run = sim(client, hooks).run(_ramp_stage(hooks))
    assert run.status == status
    cancel = [c for c in run.calls if c.kind == "cancel"]
    assert len(cancel) == 1 and cancel[0].url == fake.url + "/v1/upstreams/orders/ramps/cancel"
    assert json.loads(cancel[0].body)["context"]["execution_id"] == "01SIMULATED"


def test_monitor_404_is_fatal_and_5xx_is_retried(client, fake, hooks) -> None:
    fake.on(
        "POST", "/v1/upstreams/orders/ramps", Reply(202, {"statusUrl": fake.url + "/v1/ramps/r1"})
    )
    fake.on("GET", "/v1/ramps/r1", Reply(503, {}), Reply(404, {}))
    run = sim(client, hooks).run(_ramp_stage(hooks))
    assert run.status == TERMINAL and run.webhook["monitor"]["pastStatusCodes"] == [503]


def test_missing_status_url_is_terminal(client, fake, hooks) -> None:
    fake.on("POST", "/v1/upstreams/orders/ramps", Reply(202, {"id": "r1"}))
    run = sim(client, hooks).run(_ramp_stage(hooks))
    assert run.status == TERMINAL and "status URL" in run.webhook["error"]


def test_poll_slows_to_fifteen_seconds_after_a_minute_and_times_out(client, fake) -> None:
    fake.on("POST", "/x", Reply(200, {"statusUrl": fake.url + "/s"}))
    fake.on("GET", "/s", Reply(200, {"status": "RUNNING"}))
    sleeps: list[float] = []
    hook = plain(
        fake.url + "/x",
        waitForCompletion=True,
        statusUrlResolution="webhookResponse",
        statusUrlJsonPath="$.statusUrl",
        statusJsonPath="$.status",
        successStatuses="SUCCEEDED",
        stageTimeoutMs=120_000,
    )
    run = sim(client, sleeps=sleeps).run(hook)
    assert run.status == TERMINAL
    assert sleeps[:61] == [1.0] * 61 and set(sleeps[61:]) == {15.0}
    assert sum(sleeps) <= 120


def test_numeric_status_is_percent_complete(client, fake) -> None:
    fake.on("POST", "/x", Reply(200, {}))
    fake.on("GET", "/x", Reply(200, {"p": 50}), Reply(200, {"p": 100}))
    hook = plain(
        fake.url + "/x",
        waitForCompletion=True,
        statusUrlResolution="getMethod",
        statusJsonPath="$.p",
        successStatuses="DONE",
    )
    run = sim(client).run(hook)
    assert run.status == SUCCEEDED and run.webhook["monitor"]["percentComplete"] == 100


def test_user_cancel_calls_the_cancel_endpoint(client, fake, hooks) -> None:
    _ramp(fake, {"status": "SUCCEEDED", "message": "done"})
    simulator = sim(client, hooks)
    run = simulator.run(_ramp_stage(hooks))
    simulator.cancel(run)
    assert [c.kind for c in run.calls][-1] == "cancel"
    assert isinstance(client, httpx.Client)


# -- rules checked against Orca's source (cited in sidecar/spinnaker/orca.py) ---------------


def _monitored(url: str, **extra) -> dict:
    return plain(
        url,
        waitForCompletion=True,
        statusUrlResolution="webhookResponse",
        statusUrlJsonPath="$.statusUrl",
        statusJsonPath="$.status",
        successStatuses="SUCCEEDED",
        canceledStatuses="CANCELED",
        terminalStatuses="FAILED",
        cancelEndpoint=url + "/cancel",
        **extra,
    )


def _faults(**by_kind):
    """Faults for stage refId "1" by call kind; a list is consumed one call at a time."""

    def fault(ref: str, kind: str):
        queue = by_kind.get(kind)
        if ref != "1" or not queue:
            return None
        return queue.pop(0) if isinstance(queue, list) else queue

    return fault


def test_dns_failure_on_create_is_terminal_at_once(client, fake) -> None:
    """CreateWebhookTask calls getRestTemplateData (validateURI resolves the host) outside
    its try: the exception fails the task; it is not WebhookResponseProcessor's retry."""
    fake.on("POST", "/x", Reply(200, {}))
    sleeps: list[float] = []
    run = sim(client, sleeps=sleeps, faults=_faults(create=UnknownHost("no such host"))).run(
        plain(fake.url + "/x")
    )
    assert run.status == TERMINAL and sleeps == [] and fake.requests == []
    assert "no such host" in run.context["exception"]


def test_dns_failure_while_polling_keeps_polling(client, fake) -> None:
    """MonitorWebhookTask calls getWebhookStatus inside its try; a cause of
    UnknownHostException returns RUNNING."""
    fake.on("POST", "/x", Reply(200, {"statusUrl": fake.url + "/s"}))
    fake.on("GET", "/s", Reply(200, {"status": "SUCCEEDED"}))
    faults = _faults(monitor=[UnknownHost("no such host"), UnknownHost("no such host")])
    run = sim(client, faults=faults).run(_monitored(fake.url + "/x"))
    assert run.status == SUCCEEDED
    assert [c.kind for c in run.calls] == ["create", "monitor", "monitor", "monitor"]
    assert len([r for r in fake.requests if r.method == "GET"]) == 1


def test_connection_refused_while_polling_is_terminal(client, fake) -> None:
    fake.on("POST", "/x", Reply(200, {"statusUrl": fake.url + "/s"}))
    fake.on("GET", "/s", Reply(200, {"status": "SUCCEEDED"}))
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    run = sim(client, faults=_faults(monitor=refused)).run(_monitored(fake.url + "/x"))
    assert run.status == TERMINAL and "exception" in run.webhook["monitor"]["error"]


@pytest.mark.parametrize(
    ("flags", "status", "cancels"),
    [
        ({}, TERMINAL, 1),
        ({"failPipeline": False}, STOPPED, 1),
        ({"continuePipeline": True, "failPipeline": False}, FAILED_CONTINUE, 0),
    ],
)
def test_a_failed_task_maps_through_failure_status_and_only_halts_cancel(
    client, fake, flags, status, cancels
) -> None:
    """RunTaskHandler: TERMINAL -> failureStatus(); CompleteStageHandler plans on-failure
    stages (the cancel call) only for halts, and FAILED_CONTINUE is no halt."""
    fake.on("POST", "/x", Reply(200, {"statusUrl": fake.url + "/s"}))
    fake.on("GET", "/s", Reply(200, {"status": "FAILED"}))
    fake.on("POST", "/x/cancel", Reply(200, {}))
    run = sim(client).run(_monitored(fake.url + "/x", **flags))
    assert run.status == status
    assert len([c for c in run.calls if c.kind == "cancel"]) == cancels


@pytest.mark.parametrize(
    ("flags", "status"),
    [({}, CANCELED), ({"continuePipeline": True, "failPipeline": False}, FAILED_CONTINUE)],
)
def test_a_canceled_status_calls_cancel_once_then_maps_to_the_failure_status(
    client, fake, flags, status
) -> None:
    """RunTaskHandler: a CANCELED result runs the task's onCancel (cancelWebhook), then
    failureStatus(default = CANCELED); neither is a failure halt, so no second call."""
    fake.on("POST", "/x", Reply(200, {"statusUrl": fake.url + "/s"}))
    fake.on("GET", "/s", Reply(200, {"status": "canceled"}))
    fake.on("POST", "/x/cancel", Reply(200, {}))
    run = sim(client).run(_monitored(fake.url + "/x", **flags))
    assert run.status == status
    assert len([c for c in run.calls if c.kind == "cancel"]) == 1


def test_expressions_are_evaluated_at_stage_start_and_again_at_task_start(client, fake) -> None:
    """StartStageHandler.plan and StartTaskHandler each store withMergedContext: a value
    that evaluates to another expression is evaluated by the second pass."""
    fake.on("POST", "/x", Reply(200, {}))
    run = sim(client).run(plain(fake.url + "/x", payload="${b}", b="${c}", c="deep"))
    assert run.status == SUCCEEDED and fake.requests[0].body == "deep"


def test_a_null_part_of_the_payload_stays_literal_and_the_rest_is_replaced(client, fake) -> None:
    fake.on("POST", "/x", Reply(200, {}))
    sim(client).run(
        plain(fake.url + "/x", payload="by ${trigger.user} in ${execution.id}"),
        execution={"id": "01E"},
        trigger={},
    )
    assert fake.requests[0].body == "by ${trigger.user} in 01E"


@pytest.mark.parametrize("flags", [{}, {"continuePipeline": True, "failPipeline": False}])
def test_fail_on_failed_expressions_ends_terminal_after_the_call(client, fake, flags) -> None:
    """CompleteStageHandler: failed expressions + failOnFailedExpressions -> TERMINAL,
    overriding continuePipeline; the task already ran, so the call was sent."""
    fake.on("POST", "/x", Reply(200, {}))
    hook = plain(fake.url + "/x", payload="${nothing.here}", failOnFailedExpressions=True)
    run = sim(client).run({**hook, **flags})
    assert run.status == TERMINAL and fake.requests[0].body == "${nothing.here}"
    without = sim(client).run({**hook, **flags, "failOnFailedExpressions": False})
    assert without.status == SUCCEEDED


def test_stage_timeout_replaces_the_five_minute_create_timeout(client, fake) -> None:
    """CreateWebhookTask is an OverridableTimeoutRetryableTask: stageTimeoutMs wins."""
    fake.on("POST", "/x", Reply(503, {}))
    sleeps: list[float] = []
    hook = plain(fake.url + "/x", failFastStatusCodes=[400], stageTimeoutMs=60_000)
    run = sim(client, sleeps=sleeps).run(hook)
    assert run.status == TERMINAL and sum(sleeps) == 60.0 and len(fake.requests) == 7


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_a_ramp_start_answered_5xx_is_not_retried(client, fake, hooks, code) -> None:
    """Starting a ramp is not idempotent: one POST, then the stage fails (the template's
    rollback takes over); a retry would start a second ramp."""
    fake.on("POST", "/v1/upstreams/orders/ramps", Reply(code, {"error": {"code": "x"}}))
    fake.on("POST", "/v1/upstreams/orders/ramps/cancel", Reply(404, {"error": {"code": "no"}}))
    sleeps: list[float] = []
    run = sim(client, hooks, sleeps=sleeps).run(_ramp_stage(hooks))
    assert run.status == TERMINAL and sleeps == []
    assert [r.path for r in fake.requests].count("/v1/upstreams/orders/ramps") == 1


@pytest.mark.parametrize("kind", ["create", "monitor"])
def test_a_connection_closed_without_an_answer_is_terminal(client, fake, kind) -> None:
    """Neither an UnknownHostException nor a SocketTimeoutException: TERMINAL, both in
    WebhookResponseProcessor.processClientException and in MonitorWebhookTask."""
    fake.on("POST", "/x", Reply(200, {"statusUrl": fake.url + "/s"}))
    fake.on("GET", "/s", Reply(200, {"status": "SUCCEEDED"}))
    closed = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    sleeps: list[float] = []
    run = sim(client, sleeps=sleeps, faults=_faults(**{kind: closed})).run(
        _monitored(fake.url + "/x")
    )
    assert run.status == TERMINAL and sleeps == []
