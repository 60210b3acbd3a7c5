"""``guard`` on ``PUT …/split`` and ``POST …/ramps``, end to end over HTTP against the
Kong-compatible server (every profile); every response is checked against the OpenAPI
document by the ``sidecar`` fixture's client."""

from __future__ import annotations

from sidecar.api.guard import EXTENSION
from sidecar.app import close_app, create_app
from tests.api.conftest import TOKENS
from tests.api.test_split import BASELINE, CANARY, start_canary

SPLIT = {"stable": 95, "baseline": 2.5, "canary": 2.5}


def test_a_split_with_a_guard_arms_it_and_a_rollback_disarms_it(sidecar, upstream):
    client = sidecar.client()
    body = {
        "split": SPLIT,
        "targets": {"canary": [CANARY], "baseline": [BASELINE]},
        "guard": {"confidence": 0.995, "alert_url": "https://hooks.example.com/services/x"},
    }
    assert client.put(f"/v1/upstreams/{upstream}/split", json=body).status_code == 200
    view = client.get(f"/v1/upstreams/{upstream}/guard").json()
    assert view["armed"] and view["status"] == "collecting"
    assert view["config"]["confidence"] == 0.995
    assert view["config"]["alert_url"] == "https://hooks.example.com/…"
    split = client.get(f"/v1/upstreams/{upstream}/split").json()
    assert split["guard"]["armed"] and split["guard"]["variants"]["canary"]["requests"] == 0
    assert client.post(f"/v1/upstreams/{upstream}/rollback").status_code == 200
    assert client.get(f"/v1/upstreams/{upstream}/guard").json() == {
        "upstream": upstream,
        "armed": False,
    }
    assert "guard" not in client.get(f"/v1/upstreams/{upstream}/split").json()


def test_a_bad_guard_refuses_the_split_and_kong_is_unchanged(sidecar, upstream):
    client = sidecar.client()
    before = sidecar.kong_weights(upstream)
    body = {
        "split": SPLIT,
        "targets": {"canary": [CANARY], "baseline": [BASELINE]},
        "guard": {"alert_url": "not a url"},
    }
    response = client.put(f"/v1/upstreams/{upstream}/split", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "guard.alert_url"
    assert sidecar.kong_weights(upstream) == before
    assert not client.get(f"/v1/upstreams/{upstream}/guard").json()["armed"]


def test_a_ramp_with_a_guard_arms_it(sidecar, upstream):
    client = sidecar.client()
    start_canary(client, upstream, {"stable": 99, "baseline": 0.5, "canary": 0.5})
    body = {"split": SPLIT, "duration": 600, "steps": 5, "guard": {}}
    response = client.post(f"/v1/upstreams/{upstream}/ramps", json=body)
    assert response.status_code == 202, response.text
    view = client.get(f"/v1/upstreams/{upstream}/guard").json()
    assert view["armed"] and view["config"]["errors_ratio"] == 1.5


def test_closing_the_app_stops_the_guards_timer(sidecar, upstream):
    """Its timer looks at the canary and may roll it back: an app closed (a worker's exit,
    a test) must not leave it running."""
    app = create_app(sidecar.app.extensions["kong_canary"].settings, sweep_leases=False)
    body = {"split": SPLIT, "targets": {"canary": [CANARY], "baseline": [BASELINE]}, "guard": {}}
    headers = {"Authorization": f"Bearer {TOKENS[0].token}"}
    with app.test_client() as client:
        answer = client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=headers)
        assert answer.status_code == 200, answer.get_json()
    timer = app.extensions[EXTENSION]._timer
    assert timer.is_alive()
    close_app(app)
    assert not timer.is_alive()


def test_put_guard_reads_its_body_whatever_the_content_type(sidecar, upstream):
    """Every body is JSON whatever its Content-Type (README, Endpoints): ``curl -d '{}'``
    sends a form type and Orca sends string payloads as text/plain. The guard's PUT
    answered 400 to both, alone among the endpoints."""
    client = sidecar.client()
    start_canary(client, upstream)
    path = f"/v1/upstreams/{upstream}/guard"
    for content_type in ("application/x-www-form-urlencoded", "text/plain; charset=UTF-8"):
        response = client.put(path, content='{"confidence": 0.995}',
                              headers={"Content-Type": content_type})  # fmt: skip
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["config"]["confidence"] == 0.995
    assert client.put(path, content="{confidence").json()["error"]["code"] == "invalid_json"
    refused = client.put(path, content='{"confidence": 2}', headers={"Content-Type": "text/plain"})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "guard.confidence"
