"""A change answers 200 only with what Kong shows after it (issue 13 item 1: "every 200
matches Kong"): the sidecar reads the upstream back, and a change someone else made to Kong
meanwhile (decK, a person with curl: they take no lock) is reported, not papered over."""

from __future__ import annotations

from tests.api.test_split import BASELINE, CANARY, start_canary

INTRUDER = "10.0.0.7:80"


def test_a_change_made_behind_the_sidecars_back_is_a_409_with_what_kong_shows(
    sidecar, upstream, monkeypatch
):
    client = sidecar.client()
    start_canary(client, upstream)
    kong = sidecar.app.extensions["kong_canary"].kong
    real_update = kong.update_target
    intruded = []

    def update_then_intrude(*args, **kwargs):  # another tool writes right after our write
        result = real_update(*args, **kwargs)
        if not intruded:
            intruded.append(
                sidecar.kong_client().post(
                    f"/upstreams/{upstream}/targets",
                    json={"target": INTRUDER, "weight": 5, "tags": ["variant=canary"]},
                )
            )
        return result

    monkeypatch.setattr(kong, "update_target", update_then_intrude)
    body = {"split": {"stable": 90, "baseline": 5, "canary": 5}}
    r = client.put(f"/v1/upstreams/{upstream}/split", json=body)
    assert intruded and intruded[0].status_code == 201, intruded
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "concurrent_change"
    assert error["details"]["expected"] == body["split"]
    now = client.get(f"/v1/upstreams/{upstream}/split").json()
    assert error["details"]["current"] == now["split"] != body["split"]
    assert sidecar.kong_weights(upstream)[INTRUDER] == 5


def test_a_200_answer_is_kong_read_back(sidecar, upstream):
    client = sidecar.client()
    answer = start_canary(client, upstream)
    weights = {t["target"]: t["weight"] for t in answer["targets"]}
    assert weights == sidecar.kong_weights(upstream)
    assert weights[CANARY] == weights[BASELINE] > 0
