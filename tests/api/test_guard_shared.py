"""The guard shared through Kong by two app instances (two replicas, or two workers) on one
Kong-compatible server (every profile): armed on one, it is evaluated by the other, which
learns it from Kong; either one's trip rolls back, is recorded once (one audit line, one
metric count) and answers a ramp's poll FAILED on both. The guardians' clock is injected;
the rollback, the arming and the trip are the real writes to Kong."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient

from sidecar.api import guard as guard_api
from sidecar.app import close_app, create_app
from sidecar.guard import Guardian
from tests.api.conftest import TOKENS
from tests.api.test_split import BASELINE, CANARY, start_canary
from tests.unit.test_guard_shell import Clock, batch, trips

SPLIT = {"stable": 95, "baseline": 2.5, "canary": 2.5}
STABLE_ONLY = {"stable": 100, "baseline": 0, "canary": 0}
HEADERS = {"Authorization": f"Bearer {TOKENS[0].token}"}


@dataclass
class Replica:
    client: FlaskClient
    guardian: Guardian

    def get(self, path: str) -> dict:
        response = self.client.get(path, headers=HEADERS)
        assert response.status_code == 200, response.get_json()
        return response.get_json()


def _with_guardian(app, clock: Clock, name: str) -> Guardian:  # type: ignore[no-untyped-def]
    old = app.extensions.get(guard_api.EXTENSION)
    if old is not None:
        old.stop()
    return guard_api.install(app, guard_api.shared_guardian(app, clock=clock, replica=name))


@pytest.fixture
def replicas(sidecar) -> Iterator[tuple[Replica, Replica, Clock]]:  # type: ignore[no-untyped-def]
    """Two apps, each with its own guardian (no timer: looks come with the batches), on one
    Kong and one guard clock."""
    clock = Clock()
    second = create_app(sidecar.app.extensions["kong_canary"].settings, sweep_leases=False)
    first_guardian = _with_guardian(sidecar.app, clock, "pod-a:1")
    second_guardian = _with_guardian(second, clock, "pod-b:1")
    # no ``with``: a test client kept open holds its request context, and two interleave
    a, b = sidecar.app.test_client(), second.test_client()
    yield Replica(a, first_guardian), Replica(b, second_guardian), clock
    first_guardian.stop()
    close_app(second)


def feed(replica: Replica, clock: Clock, upstream: str, canary_errors: int, seconds: int) -> list:
    """One batch a second: 190 stable, 5 baseline, 5 canary requests of which some 5xx."""
    tripped = []
    for _ in range(seconds):
        clock.now += 1.0
        tally = batch(
            upstream, {"stable": (190, 1), "baseline": (5, 0), "canary": (5, canary_errors)}
        )
        tripped += replica.guardian.record(tally)
    return tripped


def audit_trips(caplog: pytest.LogCaptureFixture) -> list[dict]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kong_canary.audit"]
    return [line for line in lines if line["event"] == "guard_trip"]


def test_armed_on_one_replica_the_other_guards_and_its_trip_is_seen_by_both(
    sidecar, upstream, replicas, caplog
):  # type: ignore[no-untyped-def]
    a, b, clock = replicas
    body = {
        "split": SPLIT,
        "targets": {"canary": [CANARY], "baseline": [BASELINE]},
        "guard": {"min_requests": 20, "confidence": 0.995},
    }
    answer = a.client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=HEADERS)
    assert answer.status_code == 200, answer.get_json()
    view = b.get(f"/v1/upstreams/{upstream}/guard")  # B never saw the PUT: it reads Kong
    assert view["armed"] and view["replica"] == "pod-b:1" and view["status"] == "collecting"
    assert view["config"]["min_requests"] == 20
    assert view["config"]["confidence"] == 0.995
    before = trips(upstream, "5xx")
    with caplog.at_level(logging.INFO, logger="kong_canary.audit"):
        assert feed(b, clock, upstream, 0, 30) == []
        assert feed(b, clock, upstream, 3, 20) == [upstream]  # B alone got the batches
        assert sidecar.kong_weights(upstream)[CANARY] == 0  # rolled back in Kong
        clock.now += 5.0  # past A's sync interval: A reads the trip from Kong
        assert feed(a, clock, upstream, 3, 20) == []  # A does not trip a second time
    [line] = audit_trips(caplog)
    assert line["replica"] == "pod-b:1" and line["metric"] == "5xx"
    assert trips(upstream, "5xx") == before + 1
    for replica in (a, b):
        view = replica.get(f"/v1/upstreams/{upstream}/guard")
        assert view["armed"] and view["status"] == "tripped" and view["metric"] == "5xx"
        assert view["trip"]["replica"] == "pod-b:1" and "canary" in view["trip"]["message"]
        assert view["config"]["min_requests"] == 20
    assert a.get(f"/v1/upstreams/{upstream}/split")["split"] == STABLE_ONLY


def test_both_replicas_tripping_at_once_make_one_audit_line(sidecar, upstream, replicas, caplog):  # type: ignore[no-untyped-def]
    a, b, clock = replicas
    body = {"split": SPLIT, "targets": {"canary": [CANARY], "baseline": [BASELINE]}, "guard": {}}
    assert (
        a.client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=HEADERS).status_code
        == 200
    )
    b.get(f"/v1/upstreams/{upstream}/guard")  # B learns the arming
    before = trips(upstream, "5xx")
    with caplog.at_level(logging.INFO, logger="kong_canary.audit"):
        for _ in range(40):  # both see broken batches, neither has read the other's trip
            b.guardian._synced[upstream] = a.guardian._synced[upstream] = clock.now + 1e9
            feed(a, clock, upstream, 3, 1)
            feed(b, clock, upstream, 3, 1)
    assert a.guardian.view(upstream)["rolled_back"] and b.guardian.view(upstream)["rolled_back"]  # type: ignore[index]
    assert len(audit_trips(caplog)) == 1
    assert trips(upstream, "5xx") == before + 1
    assert sidecar.kong_weights(upstream)[CANARY] == 0


def test_a_ramp_the_guard_ended_is_failed_on_every_replica(sidecar, upstream, replicas):  # type: ignore[no-untyped-def]
    a, b, clock = replicas
    start_canary(sidecar.client(), upstream, {"stable": 99, "baseline": 0.5, "canary": 0.5})
    body = {"split": SPLIT, "duration": 600, "steps": 5, "guard": {"min_requests": 20}}
    answer = a.client.post(f"/v1/upstreams/{upstream}/ramps", json=body, headers=HEADERS)
    assert answer.status_code == 202, answer.get_json()
    status_path = f"/v1/ramps/{answer.get_json()['id']}"
    feed(b, clock, upstream, 0, 30)
    assert feed(b, clock, upstream, 3, 20) == [upstream]
    for replica in (a, b):
        status = replica.get(status_path)
        assert status["status"] == "FAILED", status
        assert status["message"].startswith("guard tripped on 5xx: 5xx ratio canary")


def test_a_rollback_on_one_replica_disarms_the_other(sidecar, upstream, replicas):  # type: ignore[no-untyped-def]
    a, b, clock = replicas
    body = {"split": SPLIT, "targets": {"canary": [CANARY], "baseline": [BASELINE]}, "guard": {}}
    assert (
        a.client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=HEADERS).status_code
        == 200
    )
    assert b.get(f"/v1/upstreams/{upstream}/guard")["armed"]
    assert a.client.post(f"/v1/upstreams/{upstream}/rollback", headers=HEADERS).status_code == 200
    clock.now += 5.0
    assert b.get(f"/v1/upstreams/{upstream}/guard") == {"upstream": upstream, "armed": False}
    # a new canary without a guard is not judged by the old guard on B
    start_canary(sidecar.client(), upstream)
    assert feed(b, clock, upstream, 5, 30) == []
    assert sidecar.kong_weights(upstream)[CANARY] > 0


class CountingStore:
    """The real store, counting its reads of Kong."""

    def __init__(self, store) -> None:  # type: ignore[no-untyped-def]
        self.store, self.loads = store, 0

    def load(self, upstream: str):  # type: ignore[no-untyped-def]
        self.loads += 1
        return self.store.load(upstream)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.store, name)


def test_a_replica_reads_kongs_guard_once_per_sync_interval_not_per_batch(
    sidecar, upstream, replicas
):  # type: ignore[no-untyped-def]
    a, b, clock = replicas
    body = {"split": SPLIT, "targets": {"canary": [CANARY], "baseline": [BASELINE]}, "guard": {}}
    assert (
        a.client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=HEADERS).status_code
        == 200
    )
    b.guardian.store = counting = CountingStore(b.guardian.store)
    for _ in range(60):  # 60 s, four batches a second
        for _ in range(4):
            b.guardian.record(batch(upstream, {"stable": (48, 0), "canary": (1, 0)}))
        clock.now += 1.0
    assert 25 <= counting.loads <= 31  # every 2 s (sync_seconds), not 240 times
    assert b.guardian.view(upstream)["variants"]["canary"]["requests"] > 200  # type: ignore[index]


def test_a_replica_that_ingests_nothing_does_not_judge_the_canary_traffic_missing(
    sidecar, upstream, replicas
):  # type: ignore[no-untyped-def]
    """API-only replicas (the one that armed the guard, one that read it) get no batches:
    they must not roll back for "no canary traffic"; a replica that ingests batches without
    any canary request does."""
    a, b, clock = replicas
    guard = {"trip_on_no_traffic": True, "no_traffic_seconds": 30}
    body = {"split": SPLIT, "targets": {"canary": [CANARY], "baseline": [BASELINE]}, "guard": guard}
    assert (
        a.client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=HEADERS).status_code
        == 200
    )
    assert b.get(f"/v1/upstreams/{upstream}/guard")["armed"]
    for _ in range(60):  # neither the replica that armed it nor the other gets batches
        clock.now += 1.0
        assert a.guardian.evaluate() == [] and b.guardian.evaluate() == []
    assert sidecar.kong_weights(upstream)[CANARY] > 0
    for _ in range(40):
        clock.now += 1.0
        tripped = b.guardian.record(batch(upstream, {"stable": (190, 0), "baseline": (5, 0)}))
        if tripped:
            break
    assert tripped == [upstream]
    assert b.get(f"/v1/upstreams/{upstream}/guard")["metric"] == "traffic"


def test_cancelling_a_ramp_ends_the_guard_it_armed_on_every_replica(sidecar, upstream, replicas):  # type: ignore[no-untyped-def]
    a, b, clock = replicas
    start_canary(sidecar.client(), upstream, {"stable": 99, "baseline": 0.5, "canary": 0.5})
    body = {"split": SPLIT, "duration": 600, "steps": 5, "guard": {}}
    answer = a.client.post(f"/v1/upstreams/{upstream}/ramps", json=body, headers=HEADERS)
    assert answer.status_code == 202, answer.get_json()
    ramp_id = answer.get_json()["id"]
    assert b.get(f"/v1/upstreams/{upstream}/guard")["armed"]
    canceled = a.client.post(f"/v1/ramps/{ramp_id}/cancel", json={"wait": 0}, headers=HEADERS)
    assert canceled.status_code == 200, canceled.get_json()
    clock.now += 5.0
    assert b.get(f"/v1/upstreams/{upstream}/guard") == {"upstream": upstream, "armed": False}
    # a guard armed since (PUT …/guard) is not the old ramp's: cancelling it again keeps it
    armed = a.client.put(f"/v1/upstreams/{upstream}/guard", json={}, headers=HEADERS)
    assert armed.status_code == 200
    again = a.client.post(f"/v1/ramps/{ramp_id}/cancel", json={"wait": 0}, headers=HEADERS)
    assert again.status_code == 200
    clock.now += 5.0
    assert b.get(f"/v1/upstreams/{upstream}/guard")["armed"]
