"""Every way a canary ends disarms the guard in Kong, not only ``POST …/rollback`` and a
ramp's cancel: the lease sweeper, rollback-all, a split back to stable-only and a promote.
Before, those left the ``kong-canary-guard=`` tag armed, so every replica kept the old
guard, and the next canary – started without ``guard`` – was judged, and rolled back, by
it. Two replicas on one Kong: the change goes through A (or A's service), B only reads Kong."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from sidecar.core.guard_tags import read_guard
from sidecar.guard_store import KongGuardStore
from sidecar.leases import rollback_all, sweep
from tests.api import test_guard_shared
from tests.api.conftest import skip_if_other_canaries
from tests.api.test_guard_shared import HEADERS, SPLIT, STABLE_ONLY, audit_trips, feed
from tests.api.test_split import BASELINE, CANARY, start_canary

replicas = test_guard_shared.replicas  # the fixture: two apps on one Kong, one guard clock

ARMED = {"split": SPLIT, "targets": {"canary": [CANARY], "baseline": [BASELINE]}, "guard": {}}


def _put_split(a, upstream: str, body: dict) -> dict:  # type: ignore[no-untyped-def]
    """``PUT …/split`` on replica A; its answer (200 asserted)."""
    answer = a.client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=HEADERS)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _lease_expires(sidecar, upstream, a) -> None:  # type: ignore[no-untyped-def]
    sidecar.clock.advance(121)
    assert sweep(sidecar.app.extensions["kong_canary"].service, sidecar.clock()) == [upstream]


def _rollback_all(sidecar, upstream, a) -> None:  # type: ignore[no-untyped-def]
    [result] = [
        r
        for r in rollback_all(sidecar.app.extensions["kong_canary"].service)
        if r["upstream"] == upstream
    ]
    assert result["result"] == "ok"


def _split_to_stable_only(sidecar, upstream, a) -> None:  # type: ignore[no-untyped-def]
    _put_split(a, upstream, {"split": STABLE_ONLY})


def _promote(sidecar, upstream, a) -> None:  # type: ignore[no-untyped-def]
    answer = a.client.post(f"/v1/upstreams/{upstream}/promote", headers=HEADERS)
    assert answer.status_code == 200, answer.get_json()


# The endings that roll back every managed upstream in Kong, not only the test's.
EVERY_UPSTREAM = {"lease-expiry": "the lease sweep", "rollback-all": "rollback-all"}

ENDINGS: dict[str, Callable[..., None]] = {
    "lease-expiry": _lease_expires,
    "rollback-all": _rollback_all,
    "split-to-stable-only": _split_to_stable_only,
    "promote": _promote,
}


def _skip_where_the_ending_reaches_other_canaries(sidecar, upstream, ending):  # type: ignore[no-untyped-def]
    if ending in EVERY_UPSTREAM:
        skip_if_other_canaries(sidecar, upstream, EVERY_UPSTREAM[ending])


def _guard_in_kong(sidecar, upstream):  # type: ignore[no-untyped-def]
    service = sidecar.app.extensions["kong_canary"].service
    return read_guard(service.kong.upstream(upstream).tags)


@pytest.mark.parametrize("ending", ENDINGS)
def test_every_end_of_the_canary_disarms_the_guard_on_every_replica(
    sidecar, upstream, replicas, ending
):  # type: ignore[no-untyped-def]
    _skip_where_the_ending_reaches_other_canaries(sidecar, upstream, ending)
    a, b, clock = replicas
    _put_split(a, upstream, {**ARMED, "lease": 120})
    assert b.get(f"/v1/upstreams/{upstream}/guard")["armed"]  # B learnt it from Kong
    ENDINGS[ending](sidecar, upstream, a)
    assert _guard_in_kong(sidecar, upstream) is None
    clock.now += 5.0  # past the sync interval: B reads Kong again
    for replica in (a, b):
        assert replica.get(f"/v1/upstreams/{upstream}/guard") == {
            "upstream": upstream,
            "armed": False,
        }


@pytest.mark.parametrize("ending", ["lease-expiry", "rollback-all", "split-to-stable-only"])
def test_a_later_canary_without_a_guard_is_not_judged_by_the_old_one(
    sidecar, upstream, replicas, ending
):  # type: ignore[no-untyped-def]
    _skip_where_the_ending_reaches_other_canaries(sidecar, upstream, ending)
    a, b, clock = replicas
    _put_split(a, upstream, {**ARMED, "lease": 120})
    assert feed(b, clock, upstream, 0, 10) == []  # B guards it, healthy so far
    ENDINGS[ending](sidecar, upstream, a)
    clock.now += 5.0
    start_canary(sidecar.client(), upstream)  # no "guard": nobody asked for one
    assert feed(b, clock, upstream, 5, 30) == []
    assert feed(a, clock, upstream, 5, 30) == []
    assert sidecar.kong_weights(upstream)[CANARY] > 0


def test_a_failure_to_disarm_is_a_warning_never_a_failed_rollback(
    sidecar, upstream, replicas, monkeypatch, caplog
):  # type: ignore[no-untyped-def]
    a = replicas[0]
    _put_split(a, upstream, ARMED)

    def kong_refuses(self, upstream, *, ramp=None, held=False):  # type: ignore[no-untyped-def]
        raise RuntimeError("Kong said no")

    monkeypatch.setattr(KongGuardStore, "disarm", kong_refuses)
    body = {"split": STABLE_ONLY}
    with caplog.at_level(logging.WARNING, logger="kong_canary.guard"):
        answer = a.client.put(f"/v1/upstreams/{upstream}/split", json=body, headers=HEADERS)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["split"] == STABLE_ONLY
    assert sidecar.kong_weights(upstream)[CANARY] == 0
    assert any("still armed in Kong" in w for w in answer.get_json()["warnings"])
    assert any("still armed in Kong" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("ending", ["lease-expiry", "rollback-all", "split-to-stable-only"])
def test_a_stable_only_upstream_never_trips_nor_alerts_on_missing_canary_traffic(
    sidecar, upstream, replicas, ending, caplog
):  # type: ignore[no-untyped-def]
    """Before: B's guard, fed the canary's batches, still looked on its timer after the
    canary ended, and ``trip_on_no_traffic`` tripped it a minute later: a guard_trip audit
    line and an alert "canary rolled back" for an upstream with no canary at all."""
    _skip_where_the_ending_reaches_other_canaries(sidecar, upstream, ending)
    a, b, clock = replicas
    guard = {"trip_on_no_traffic": True, "no_traffic_seconds": 30}
    _put_split(a, upstream, {**ARMED, "guard": guard, "lease": 120})
    assert feed(b, clock, upstream, 0, 10) == []
    ENDINGS[ending](sidecar, upstream, a)
    with caplog.at_level(logging.INFO, logger="kong_canary.audit"):
        for _ in range(60):  # a minute of the guard's timer, no batches: no canary left
            clock.now += 1.0
            assert b.guardian.evaluate() == []
    assert audit_trips(caplog) == []
