"""Traffic-moving calls finish only when Kong's nodes serve them (issue 12 §2): their
``status``/``statusUrl``, the rollback's default wait, and ramps that neither advance nor
complete before their step is served. The sidecar in front of a two-node local Kong whose
second node is ``LAG`` s behind, on one FakeClock; every answer is checked against the
OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

from tests.propagation.conftest import CANARY, LAG, Api

SCHEDULE = {
    "schedule": [{"stable": 90, "canary": 10}, {"stable": 80, "canary": 20}],
    "interval": 60,
    "targets": {"canary": ["10.0.0.3:80"]},
    "allow_unequal": True,
}


def _poll(api: Api, url: str) -> dict[str, Any]:
    response = api.http.get(url)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_split_without_wait_is_running_until_its_status_url_sees_every_node(api: Api) -> None:
    r = api.http.put("/v1/upstreams/orders/split", json=CANARY)
    assert r.status_code == 200 and r.json()["status"] == "RUNNING"
    url = r.json()["statusUrl"]
    assert "/v1/upstreams/orders/propagation?split=90,0,10&since=" in url
    first = _poll(api, url)
    assert first["status"] == "RUNNING"
    assert first["propagation"]["nodes"][1]["confirmed"] is False
    assert "not served yet" in first["message"]
    api.clock.advance(LAG)
    done = _poll(api, url)
    assert done["status"] == "SUCCEEDED", done
    assert done["split"] == {"stable": 90.0, "baseline": 0.0, "canary": 10.0}


def test_a_split_that_waited_and_was_served_answers_succeeded(api: Api) -> None:
    r = api.http.put("/v1/upstreams/orders/split", json={**CANARY, "wait": 10})
    assert r.json()["status"] == "SUCCEEDED"
    assert _poll(api, r.json()["statusUrl"])["status"] == "SUCCEEDED"


def test_a_status_url_fails_when_another_change_replaced_the_split(api: Api) -> None:
    url = api.http.put("/v1/upstreams/orders/split", json=CANARY).json()["statusUrl"]
    api.http.post("/v1/upstreams/orders/rollback", json={"wait": 0})
    replaced = _poll(api, url)
    assert replaced["status"] == "FAILED" and "another change" in replaced["message"]


def test_a_status_url_fails_once_its_window_passed(api: Api) -> None:
    url = api.http.put("/v1/upstreams/orders/split", json=CANARY).json()["statusUrl"]
    since = int(url.split("since=")[1].split("&")[0])
    late = url.split("&until=")[0] + f"&until={since}"
    failed = _poll(api, late)
    assert failed["status"] == "FAILED" and "still not served" in failed["message"]


@pytest.mark.parametrize(
    "query",
    ["split=90,10&since=1&until=2", "split=90,0,10&since=x&until=2", "split=90,0,10&since=1"],
)
def test_a_bad_status_url_is_refused_naming_the_field(api: Api, query: str) -> None:
    r = api.http.get(f"/v1/upstreams/orders/propagation?{query}")
    assert r.status_code == 422 and r.json()["error"]["field"] in ("split", "since", "until")


def test_a_rollback_waits_for_every_node_by_default(api: Api) -> None:
    """Its answer means traffic has stopped: no ``wait`` needed."""
    api.http.put("/v1/upstreams/orders/split", json=CANARY)
    api.clock.advance(LAG)
    back = api.http.post("/v1/upstreams/orders/rollback")
    assert back.status_code == 200
    assert back.json()["propagation"]["confirmed"] is True
    assert back.json()["propagation"]["waited_ms"] >= LAG * 1000
    assert back.json()["status"] == "SUCCEEDED"
    assert "split=100,0,0" in back.json()["statusUrl"]


def test_an_explicit_wait_zero_keeps_the_old_immediate_rollback(api: Api) -> None:
    api.http.put("/v1/upstreams/orders/split", json=CANARY)
    back = api.http.post("/v1/upstreams/orders/rollback", json={"wait": 0})
    assert back.json()["propagation"]["confirmed"] is False
    assert back.json()["status"] == "RUNNING"


def test_a_ramp_waits_at_a_step_the_nodes_do_not_serve_yet(api: Api) -> None:
    schedule = {**SCHEDULE, "interval": 1}
    view = api.http.post("/v1/upstreams/orders/ramps", json=schedule).json()
    api.clock.advance(1)  # step 2 is due, but step 1 is still not on the other node
    held = _poll(api, view["statusUrl"])
    assert held["status"] == "RUNNING"
    assert held["split"]["canary"] == 10.0, "moved on before step 1 was served"
    assert "the next step waits until Kong's nodes serve it" in held["message"]
    api.clock.advance(LAG)
    moved = _poll(api, view["statusUrl"])
    assert moved["split"]["canary"] == 20.0
    assert moved["status"] == "RUNNING", "reported SUCCEEDED before the last step was served"
    assert "waiting until Kong's nodes serve it" in moved["message"]
    api.clock.advance(LAG)
    assert _poll(api, view["statusUrl"])["status"] == "SUCCEEDED"


def test_a_cancel_waits_for_every_node_and_hands_back_a_status_url(api: Api) -> None:
    context = {"context": {"execution_id": "01EXEC"}}
    api.http.post("/v1/upstreams/orders/ramps", json={**SCHEDULE, **context})
    api.clock.advance(LAG)
    cancel = api.http.post("/v1/upstreams/orders/ramps/cancel", json=context)
    assert cancel.status_code == 200, cancel.text
    body = cancel.json()
    assert body["propagation"]["confirmed"] is True
    assert body["propagation"]["waited_ms"] >= LAG * 1000
    assert _poll(api, body["statusUrl"])["status"] == "SUCCEEDED"


def test_a_cancelled_ramp_reports_canceled_only_once_canary_traffic_stopped(api: Api) -> None:
    view = api.http.post("/v1/upstreams/orders/ramps", json=SCHEDULE).json()
    api.clock.advance(LAG)
    canceled = api.http.post(view["cancelUrl"]).json()  # waits (the default) until served
    assert canceled["propagation"]["confirmed"] is True
    assert canceled["propagation"]["waited_ms"] >= LAG * 1000
    assert _poll(api, view["statusUrl"])["status"] == "CANCELED"


def test_a_ramp_another_rollback_ended_reports_it_once_canary_traffic_stopped(
    api: Api,
) -> None:
    """A rollback by anyone cancels the running ramp; its status says so only once served."""
    view = api.http.post("/v1/upstreams/orders/ramps", json=SCHEDULE).json()
    api.clock.advance(LAG)
    api.http.post("/v1/upstreams/orders/rollback", json={"wait": 0})
    ramp = _poll(api, view["statusUrl"])
    assert ramp["status"] == "RUNNING" and "stop canary traffic" in ramp["message"]
    api.clock.advance(LAG)
    assert _poll(api, view["statusUrl"])["status"] == "CANCELED"
