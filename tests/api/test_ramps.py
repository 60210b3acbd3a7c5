"""Ramps and leases end to end, polled the way Orca polls, on an injected clock."""

from __future__ import annotations

import uuid

import pytest

from sidecar.app import close_app, create_app
from sidecar.leases import sweep
from tests.api.conftest import _serve, skip_if_other_canaries
from tests.api.test_split import BASELINE, CANARY, start_canary

SCHEDULE = [
    {"stable": 95, "baseline": 2.5, "canary": 2.5},
    {"stable": 90, "baseline": 5, "canary": 5},
    {"stable": 80, "baseline": 10, "canary": 10},
]
TARGETS = {"canary": [CANARY], "baseline": [BASELINE]}
LEASED = {"split": SCHEDULE[0], "targets": TARGETS, "lease": 120}


def orca_status(client, status_url: str) -> str:
    """Orca's monitor: GET, JSON, ``$.status`` upper-cased and matched exactly."""
    response = client.get(status_url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    status = response.json()["status"]
    assert isinstance(status, str)
    return status.upper()


def start_ramp(sidecar, upstream, body):
    response = sidecar.client().post(f"/v1/upstreams/{upstream}/ramps", json=body)
    assert response.status_code == 202, response.text
    ramp = response.json()
    assert ramp["statusUrl"].startswith("http://") and ramp["cancelUrl"].startswith("http://")
    assert response.headers["Location"] == ramp["statusUrl"]
    return ramp


def test_schedule_ramp_reaches_succeeded(sidecar, upstream):
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    client = sidecar.client()
    assert ramp["status"] == "RUNNING"
    assert ramp["split"] == SCHEDULE[0]
    seen = []
    for _ in range(4):
        seen.append((orca_status(client, ramp["statusUrl"]), sidecar.kong_weights(upstream)))
        sidecar.clock.advance(60)
    statuses = [s for s, _ in seen]
    assert statuses == ["RUNNING", "RUNNING", "SUCCEEDED", "SUCCEEDED"]
    final = client.get(ramp["statusUrl"]).json()
    assert final["split"] == SCHEDULE[-1] and final["progress"] == 100
    view = client.get(f"/v1/upstreams/{upstream}/split").json()
    assert view["split"] == SCHEDULE[-1]
    assert view["lease"] is not None


def test_linear_ramp_keeps_canary_and_baseline_equal(sidecar, upstream):
    start_canary(sidecar.client(), upstream)
    ramp = start_ramp(
        sidecar,
        upstream,
        {"split": {"stable": 80, "baseline": 10, "canary": 10}, "duration": 300, "steps": 3},
    )
    client = sidecar.client()
    splits = []
    for _ in range(3):
        sidecar.clock.advance(100)
        body = client.get(ramp["statusUrl"]).json()
        splits.append(body["split"])
    assert [s["canary"] for s in splits] == [5, 7.5, 10]
    assert all(s["canary"] == s["baseline"] for s in splits)
    assert body["status"] == "SUCCEEDED"


def test_cancel_rolls_back_and_is_idempotent(sidecar, upstream):
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    client = sidecar.client()
    sidecar.clock.advance(60)
    assert orca_status(client, ramp["statusUrl"]) == "RUNNING"
    cancelled = client.post(ramp["cancelUrl"])
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELED"
    assert cancelled.json()["split"] == {"stable": 100, "baseline": 0, "canary": 0}
    weights = sidecar.kong_weights(upstream)
    assert weights[CANARY] == 0 and weights[BASELINE] == 0
    sidecar.clock.advance(600)  # the schedule would have gone on: it must not
    assert orca_status(client, ramp["statusUrl"]) == "CANCELED"
    assert sidecar.kong_weights(upstream)[CANARY] == 0
    assert client.post(ramp["cancelUrl"]).json()["status"] == "CANCELED"


def test_a_later_split_takes_the_upstream_away_from_the_ramp(sidecar, upstream):
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    client = sidecar.client()
    manual = client.put(
        f"/v1/upstreams/{upstream}/split",
        json={"split": {"stable": 97, "baseline": 1.5, "canary": 1.5}},
    )
    assert manual.status_code == 200
    sidecar.clock.advance(60)
    assert orca_status(client, ramp["statusUrl"]) == "FAILED"
    assert sidecar.client().get(f"/v1/upstreams/{upstream}/split").json()["split"]["canary"] == 1.5
    # Its cancel (Orca calls it when the stage fails) must not undo the other change.
    cancelled = client.post(ramp["cancelUrl"]).json()
    assert "not rolled back" in cancelled["message"]
    assert sidecar.kong_weights(upstream)[CANARY] > 0


def test_ramp_survives_a_new_process(sidecar, upstream):
    """The ramp lives in its signed id and Kong's tags: another app instance (another
    replica, or the one started after a crash) picks it up."""
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    runtime = sidecar.app.extensions["kong_canary"]
    other = create_app(runtime.settings, sweep_leases=False, clock=sidecar.clock)
    url, stop = _serve(other)
    try:
        sidecar.clock.advance(120)
        path = ramp["statusUrl"].split("/v1/", 1)[1]
        body = sidecar.client().get(f"{url}/v1/{path}").json()
        assert body["status"] == "SUCCEEDED" and body["split"] == SCHEDULE[-1]
    finally:
        stop()
        close_app(other)


def test_forged_or_unknown_ramp_ids_are_404(sidecar):
    client = sidecar.client()
    assert client.get("/v1/ramps/not-a-ramp").status_code == 404
    assert client.post("/v1/ramps/abc.def/cancel").status_code == 404


@pytest.mark.parametrize("lease", [0, "0", 0.0, -1])
def test_a_zero_lease_is_refused_by_ramps_as_by_split(sidecar, upstream, lease):
    """Issue 13 item 11: a ramp's ``lease: 0`` silently meant the default while ``PUT split``
    refused it. One rule, one answer, and nothing changes in Kong."""
    client = sidecar.client()
    before = sidecar.kong_weights(upstream)
    ramp = client.post(
        f"/v1/upstreams/{upstream}/ramps",
        json={"schedule": SCHEDULE, "interval": 60, "targets": TARGETS, "lease": lease},
    )
    split = client.put(
        f"/v1/upstreams/{upstream}/split",
        json={"split": SCHEDULE[0], "targets": TARGETS, "lease": lease},
    )
    for response in (ramp, split):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "lease"
    assert ramp.json()["error"] == split.json()["error"]
    assert sidecar.kong_weights(upstream) == before


@pytest.mark.parametrize("suffix", ["==", "~~~", ".!!"])
def test_an_altered_ramp_id_is_404_and_cancels_nothing(sidecar, upstream, suffix):
    """Issue 13 item 8: ``id + "=="`` read as the same ramp; exactly the issued id, or 404."""
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    client = sidecar.client()
    before = sidecar.kong_weights(upstream)
    status = client.get(f"/v1/ramps/{ramp['id']}{suffix}")
    assert status.status_code == 404, status.text
    assert status.json()["error"]["code"] == "unknown_ramp"
    cancel = client.post(f"/v1/ramps/{ramp['id']}{suffix}/cancel", json={})
    assert cancel.status_code == 404, cancel.text
    assert sidecar.kong_weights(upstream) == before
    assert orca_status(client, ramp["statusUrl"]) == "RUNNING"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"schedule": SCHEDULE}, "body"),
        ({"split": {"stable": 80, "canary": 20}, "duration": 60}, "body"),
        ({"schedule": [{"stable": 90, "baseline": 2, "canary": 8}], "interval": 60}, "schedule"),
        ({"schedule": [{"stable": 40, "baseline": 30, "canary": 30}], "interval": 60}, "split"),
        ({"schedule": SCHEDULE, "interval": 60, "start_at": "tomorrow"}, "start_at"),
        ({"schedule": SCHEDULE, "interval": 60, "lease": 10**7}, "lease"),
        ({"schedule": SCHEDULE, "interval": 60, "lease": 10**400}, "lease"),
        ({"schedule": SCHEDULE, "interval": 60, "start_at": "2020-01-01T00:00:00Z"}, "start_at"),
        # issue 13 item 13: ISO 8601 forms that are not RFC 3339 (fromisoformat took them)
        (
            {"schedule": SCHEDULE, "interval": 60, "start_at": "2027-12-04 23:30:00+00:00"},
            "start_at",
        ),
        ({"schedule": SCHEDULE, "interval": 60, "start_at": "2027-W49-5T23:30:00Z"}, "start_at"),
        ({"schedule": SCHEDULE, "interval": 60, "start_at": "2027-12-04T23:30:00"}, "start_at"),
    ],
)
def test_bad_ramps_are_refused_and_change_nothing(sidecar, upstream, body, field):
    before = sidecar.kong_weights(upstream)
    r = sidecar.client().post(f"/v1/upstreams/{upstream}/ramps", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith(field)
    assert sidecar.kong_weights(upstream) == before


def test_lapsed_lease_returns_traffic_to_stable(sidecar, upstream):
    skip_if_other_canaries(sidecar, upstream, "the lease sweep")
    client = sidecar.client()
    body = LEASED
    assert client.put(f"/v1/upstreams/{upstream}/split", json=body).status_code == 200
    service = sidecar.app.extensions["kong_canary"].service
    sidecar.clock.advance(119)
    assert sweep(service, sidecar.clock()) == []
    sidecar.clock.advance(2)
    assert sweep(service, sidecar.clock()) == [upstream]
    view = client.get(f"/v1/upstreams/{upstream}/split").json()
    assert view["split"] == {"stable": 100, "baseline": 0, "canary": 0}
    assert view["lease"] is None
    assert sweep(service, sidecar.clock()) == []


def test_renewal_by_a_later_call_keeps_the_canary(sidecar, upstream):
    skip_if_other_canaries(sidecar, upstream, "the lease sweep")
    client = sidecar.client()
    body = LEASED
    client.put(f"/v1/upstreams/{upstream}/split", json=body)
    service = sidecar.app.extensions["kong_canary"].service
    sidecar.clock.advance(100)
    client.put(f"/v1/upstreams/{upstream}/split", json=body)  # renews to now + 120
    sidecar.clock.advance(100)
    assert sweep(service, sidecar.clock()) == []
    assert client.get(f"/v1/upstreams/{upstream}/split").json()["split"]["canary"] == 2.5


def test_rollback_all_needs_admin_and_rolls_back_every_managed_upstream(sidecar, upstream):
    skip_if_other_canaries(sidecar, upstream, "rollback-all")
    start_canary(sidecar.client(), upstream)
    from tests.api.conftest import TOKENS

    assert sidecar.client().post("/v1/rollback-all").status_code == 403
    r = sidecar.client(token=TOKENS[3].token).post("/v1/rollback-all")
    assert r.status_code == 200, r.text
    assert upstream in [x["upstream"] for x in r.json()["results"]]
    assert sidecar.kong_weights(upstream)[CANARY] == 0


def test_orca_cancel_hook_cancels_only_its_executions_ramp(sidecar, upstream):
    body = {
        "schedule": SCHEDULE,
        "interval": 60,
        "targets": TARGETS,
        "context": {"execution_id": "01HEXEC-A"},
    }
    ramp = start_ramp(sidecar, upstream, body)
    client = sidecar.client()
    other = client.post(
        f"/v1/upstreams/{upstream}/ramps/cancel", json={"context": {"execution_id": "01HEXEC-B"}}
    )
    assert other.status_code == 404
    assert sidecar.kong_weights(upstream)[CANARY] > 0
    mine = client.post(
        f"/v1/upstreams/{upstream}/ramps/cancel", json={"context": {"execution_id": "01HEXEC-A"}}
    )
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "CANCELED"
    assert sidecar.kong_weights(upstream)[CANARY] == 0
    assert orca_status(client, ramp["statusUrl"]) == "CANCELED"
    again = client.post(
        f"/v1/upstreams/{upstream}/ramps/cancel", json={"context": {"execution_id": "01HEXEC-A"}}
    )
    assert again.status_code == 404


def test_a_stale_ramp_step_cannot_undo_a_cancel(sidecar, upstream):
    """A poll that decided to move the ramp on, then lost the race to a cancel, must not
    put the canary back: ownership is checked again under the upstream's lock."""
    from sidecar.core.ramp_token import short_id
    from sidecar.core.refusals import RampSuperseded
    from sidecar.core.split import Split

    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    client = sidecar.client()
    assert client.post(ramp["cancelUrl"]).json()["status"] == "CANCELED"
    service = sidecar.app.extensions["kong_canary"].service
    with pytest.raises(RampSuperseded):
        service.set_split(upstream, Split(9000, 500, 500), owned_by=short_id(ramp["id"]))
    assert sidecar.kong_weights(upstream)[CANARY] == 0


def test_a_sweep_working_from_an_old_listing_spares_a_renewed_lease(sidecar, upstream):
    client = sidecar.client()
    body = LEASED
    client.put(f"/v1/upstreams/{upstream}/split", json=body)
    service = sidecar.app.extensions["kong_canary"].service
    sidecar.clock.advance(121)
    lapsed_at = sidecar.clock()
    client.put(f"/v1/upstreams/{upstream}/split", json=body)  # the pipeline renews
    assert service.rollback(upstream, only_if_expired_at=lapsed_at) is None
    assert sidecar.kong_weights(upstream)[CANARY] > 0


def test_ramp_routes_apply_the_tokens_upstream_scope(sidecar):
    from tests.api.conftest import TOKENS

    kong = sidecar.kong_client()
    payments = f"payments-ramp-{uuid.uuid4().hex[:8]}"  # a shared Kong may hold any fixed name
    kong.post("/upstreams", json={"name": payments}).raise_for_status()
    kong.post(
        f"/upstreams/{payments}/targets", json={"target": "10.0.0.1:80", "weight": 100}
    ).raise_for_status()
    try:
        ramp = start_ramp(
            sidecar, payments, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS}
        )
        scoped = sidecar.client(token=TOKENS[2].token)  # may only touch orders*
        assert scoped.get(ramp["statusUrl"]).status_code == 403
        assert scoped.post(ramp["cancelUrl"]).status_code == 403
        assert sidecar.kong_weights(payments)[CANARY] > 0
        # A read-only token sees the status but does not move the ramp on.
        sidecar.clock.advance(60)
        viewer = sidecar.client(token=TOKENS[1].token)
        seen = viewer.get(ramp["statusUrl"])
        assert seen.status_code == 200 and seen.json()["split"] == SCHEDULE[0]
        assert sidecar.client().get(ramp["statusUrl"]).json()["split"] == SCHEDULE[1]
    finally:
        kong.delete(f"/upstreams/{payments}")


def test_a_ramps_later_steps_stay_on_the_targets_it_was_given(sidecar, upstream):
    """Targets an earlier change dropped keep their variant tag at weight 0; a ramp step (no
    ``targets`` of its own) must not hand them traffic again (found by the two-replica
    hammering test: Kong at 90/5/5 over every target ever named)."""
    client = sidecar.client()
    start_canary(client, upstream)  # CANARY and BASELINE carry the canary
    others = {"canary": ["10.0.0.8:80"], "baseline": ["10.0.0.9:80"]}
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": others})
    sidecar.clock.advance(60)
    assert orca_status(client, ramp["statusUrl"]) == "RUNNING"
    weights = sidecar.kong_weights(upstream)
    assert weights[CANARY] == 0 and weights[BASELINE] == 0, weights
    view = client.get(f"/v1/upstreams/{upstream}/split").json()
    assert view["split"] == SCHEDULE[1]
