"""``"guard": null`` on ``PUT …/split`` and ``POST …/ramps`` means no guard, as when absent:
the webhook stages send it when their guard parameter is not given (Orca's preconfigured
payload is one fixed string and cannot leave a member out; pipeline-templates/README.md)."""

from __future__ import annotations

from tests.api.test_split import BASELINE, CANARY, start_canary

SPLIT = {"stable": 95, "baseline": 2.5, "canary": 2.5}


def test_a_split_with_a_null_guard_is_a_split_without_one(sidecar, upstream):
    client = sidecar.client()
    body = {"split": SPLIT, "targets": {"canary": [CANARY], "baseline": [BASELINE]}}
    response = client.put(f"/v1/upstreams/{upstream}/split", json={**body, "guard": None})
    assert response.status_code == 200, response.text
    assert not client.get(f"/v1/upstreams/{upstream}/guard").json()["armed"]
    assert sidecar.kong_weights(upstream) != {}


def test_a_ramp_with_a_null_guard_is_a_ramp_without_one(sidecar, upstream):
    client = sidecar.client()
    start_canary(client, upstream, {"stable": 99, "baseline": 0.5, "canary": 0.5})
    body = {"split": SPLIT, "duration": 600, "steps": 5, "guard": None}
    response = client.post(f"/v1/upstreams/{upstream}/ramps", json=body)
    assert response.status_code == 202, response.text
    assert not client.get(f"/v1/upstreams/{upstream}/guard").json()["armed"]
