"""``wait`` and ``wait_strict`` over real HTTP: the sidecar in front of a local Kong cluster
whose second node is 2 s behind, everything on one FakeClock. Every response is checked
against the sidecar's OpenAPI document."""

from __future__ import annotations

import pytest

from tests.propagation.conftest import CANARY, LAG, Api


def test_split_waits_for_every_node_and_reports_it(api: Api) -> None:
    r = api.http.put("/v1/upstreams/orders/split", json={**CANARY, "wait": "10"})
    assert r.status_code == 200
    waited = r.json()["propagation"]
    assert waited["confirmed"] is True and waited["method"] == "health"
    assert LAG * 1000 <= waited["waited_ms"] < LAG * 1000 + 1000
    assert waited["nodes"][1]["after_ms"] >= LAG * 1000


def test_without_wait_there_is_nothing_to_report(api: Api) -> None:
    r = api.http.put("/v1/upstreams/orders/split", json=CANARY)
    assert r.status_code == 200 and r.json()["propagation"] is None


@pytest.mark.parametrize("wait", [301, "301", "soon", -1, True])
def test_wait_is_bounded(api: Api, wait: object) -> None:
    r = api.http.put("/v1/upstreams/orders/split", json={**CANARY, "wait": wait})
    assert r.status_code == 422 and r.json()["error"]["field"] == "wait"
    assert api.weights() == {"10.0.0.1:80": 100}


def test_a_timeout_is_a_warning_by_default(api: Api) -> None:
    r = api.http.put("/v1/upstreams/orders/split", json={**CANARY, "wait": 0.5})
    assert r.status_code == 200
    waited = r.json()["propagation"]
    assert waited["confirmed"] is False and "will still propagate" in waited["message"]


def test_wait_strict_turns_a_timeout_into_a_retryable_503(api: Api) -> None:
    """Orca retries 5xx on the create call; the retry re-PUTs (no writes) and waits again."""
    body = {**CANARY, "wait": 1, "wait_strict": "true"}
    r = api.http.put("/v1/upstreams/orders/split", json=body)
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["code"] == "propagation_timeout"
    assert error["details"]["propagation"]["confirmed"] is False
    assert error["details"]["split"] == {"stable": 90.0, "baseline": 0.0, "canary": 10.0}
    assert api.weights() == {"10.0.0.1:80": 9, "10.0.0.3:80": 1}  # applied all the same
    api.clock.advance(LAG)
    retry = api.http.put("/v1/upstreams/orders/split", json=body)
    assert retry.status_code == 200
    assert retry.json()["writes"] == [] and retry.json()["propagation"]["confirmed"] is True


def test_rollback_and_promote_wait_too(api: Api) -> None:
    api.http.put("/v1/upstreams/orders/split", json=CANARY)
    api.clock.advance(LAG)
    back = api.http.post("/v1/upstreams/orders/rollback", json={"wait": 10})
    assert back.status_code == 200 and back.json()["propagation"]["confirmed"] is True
    assert back.json()["propagation"]["waited_ms"] >= LAG * 1000
    api.http.put("/v1/upstreams/orders/split", json=CANARY)
    api.clock.advance(LAG)
    done = api.http.post("/v1/upstreams/orders/promote", json={"wait": 10, "wait_strict": True})
    assert done.status_code == 200 and done.json()["propagation"]["confirmed"] is True


def test_each_ramp_step_waits_when_a_poll_applies_it(api: Api) -> None:
    start = api.http.post(
        "/v1/upstreams/orders/ramps",
        json={
            "schedule": [{"stable": 90, "canary": 10}, {"stable": 80, "canary": 20}],
            "interval": 60,
            "targets": {"canary": ["10.0.0.3:80"]},
            "allow_unequal": True,
            "wait": 5,
        },
    )
    assert start.status_code == 202
    view = start.json()
    assert view["statusUrl"].endswith("?wait=5")
    assert view["propagation"]["confirmed"] is True  # the first step was due at once
    poll = api.http.get(view["statusUrl"])
    assert poll.status_code == 200 and "propagation" not in poll.json()  # nothing applied
    api.clock.advance(60)
    step = api.http.get(view["statusUrl"]).json()
    assert step["split"]["canary"] == 20.0
    assert step["propagation"]["confirmed"] is True
    assert step["propagation"]["waited_ms"] >= LAG * 1000
    assert step["statusUrl"] == view["statusUrl"]
    bad = api.http.get(view["statusUrl"].replace("wait=5", "wait=later"))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "wait"
