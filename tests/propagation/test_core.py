"""The pure core of ``sidecar.propagation``: deciding from observations, on given clocks."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from sidecar.propagation import (
    DONE,
    HEALTH,
    HYBRID,
    KONNECT,
    STALE_AFTER,
    TIMEOUT,
    WAIT,
    NodeCheck,
    Observation,
    Tracker,
    decide,
    health_check,
    hybrid_observation,
    konnect_observation,
    next_delay,
    result,
    same_weights,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kong"
RECORDED = {"127.0.0.1:9111": 8000, "127.0.0.1:9112": 1000, "127.0.0.1:9113": 1000}
OK, LATE = NodeCheck("a", True), NodeCheck("b", False, "behind")


def _recorded_health(version: str) -> list[dict]:
    return json.loads((FIXTURES / f"kong-{version}-upstream-health.json").read_text())["data"]


def _recorded_step(version: str, step: str) -> dict:
    steps = json.loads((FIXTURES / f"kong-{version}-admin-targets.json").read_text())["steps"]
    return next(s for s in steps if s["step"] == step)["response"]


# ---- decide / next_delay ------------------------------------------------------------------


def test_done_only_when_every_node_is_confirmed() -> None:
    assert decide([OK, OK], now=1.0, deadline=5.0, not_before=None) == DONE
    assert decide([OK, LATE], now=1.0, deadline=5.0, not_before=None) == WAIT
    assert decide([OK, LATE], now=5.0, deadline=5.0, not_before=None) == TIMEOUT


def test_confirmation_wins_over_the_deadline() -> None:
    """Seen in time at the last poll: confirmed, not a timeout."""
    assert decide([OK], now=9.0, deadline=5.0, not_before=None) == DONE


def test_not_before_holds_back_a_confirmation() -> None:
    """Hybrid: every DP on a new hash is not enough until a push interval has passed."""
    assert decide([OK], now=3.0, deadline=10.0, not_before=6.0) == WAIT
    assert decide([OK], now=6.0, deadline=10.0, not_before=6.0) == DONE
    assert decide([OK], now=10.0, deadline=10.0, not_before=11.0) == TIMEOUT


def test_nothing_to_check_is_done() -> None:
    """No connected data plane: nothing can serve the old weights."""
    assert decide([], now=0.0, deadline=0.0, not_before=None) == DONE


def test_backoff_grows_to_a_cap_and_never_passes_the_deadline() -> None:
    delays = [next_delay(n, now=0.0, deadline=100.0) for n in range(12)]
    assert delays[0] == pytest.approx(0.1)
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) == pytest.approx(1.0)
    assert next_delay(10, now=99.7, deadline=100.0) == pytest.approx(0.3)
    assert next_delay(3, now=100.0, deadline=100.0) == 0.0


def test_sleeps_straight_to_not_before_once_the_nodes_are_there() -> None:
    assert next_delay(0, now=1.0, deadline=20.0, not_before=6.0, ready=True) == pytest.approx(5.0)
    assert next_delay(0, now=1.0, deadline=3.0, not_before=6.0, ready=True) == pytest.approx(2.0)
    assert next_delay(0, now=1.0, deadline=20.0, not_before=6.0, ready=False) == pytest.approx(0.1)


def test_weight_zero_and_absent_are_the_same() -> None:
    assert same_weights({"a:80": 95, "b:80": 0}, {"a:80": 95})
    assert same_weights({"a:80": 95}, {"a:80": 95, "gone:80": 0})
    assert not same_weights({"a:80": 95}, {"a:80": 95, "gone:80": 5})
    assert not same_weights({"a:80": 95, "b:80": 5}, {"a:80": 95})


# ---- health (traditional nodes) ------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2", "3.9.3"])
def test_recorded_health_confirms_the_weights_the_balancer_holds(version: str) -> None:
    """``data.nodeWeight`` of real Kong's ``/health`` (recordings) is what the node balances."""
    rows = _recorded_health(version)
    assert health_check("n", RECORDED, {"id": "u", "health": "HEALTHCHECKS_OFF"}, rows).confirmed
    moved = {**RECORDED, "127.0.0.1:9113": 2000}
    check = health_check("n", moved, {"id": "u"}, rows)
    assert not check.confirmed and "127.0.0.1:9113=1000" in (check.detail or "")


def test_database_weight_does_not_count_only_the_balancers() -> None:
    """The top-level ``weight`` comes from the shared database (``page_for_upstream`` in
    kong/db/dao/targets.lua) and is new on every node at once; ``data`` is the node's."""
    rows = _recorded_health("3.9.3")
    rows[0] = {**rows[0], "weight": 2000}  # the database has the new weight, the balancer not
    expected = {**RECORDED, rows[0]["target"]: 2000}
    assert not health_check("n", expected, {"id": "u"}, rows).confirmed


def test_a_target_missing_from_the_balancer_counts_as_weight_zero() -> None:
    """Kong lists it from the database with ``DNS_ERROR`` and no ``data``."""
    rows = _recorded_health("3.9.3")
    rows.append({"target": "10.9.9.9:80", "weight": 50, "health": "DNS_ERROR"})
    assert not health_check("n", {**RECORDED, "10.9.9.9:80": 50}, {"id": "u"}, rows).confirmed
    assert health_check("n", {**RECORDED, "10.9.9.9:80": 0}, {"id": "u"}, rows).confirmed


@pytest.mark.parametrize("version", ["3.4.2", "3.9.3"])
def test_no_balancer_yet_is_confirmed(version: str) -> None:
    """Recorded 3.x: before the first proxied request neither ``?balancer_health=1`` has
    ``data`` nor the rows ``health``/``data``; the balancer is then built from the database."""
    balancer = _recorded_step(version, "balancer health of upstream").get("data")
    rows = _recorded_step(version, "health of upstream")["data"]
    assert balancer is None
    check = health_check("n", {"10.0.0.1:80": 7}, balancer, None)
    assert check.confirmed and "no balancer" in (check.detail or "")
    assert health_check("n", {"10.0.0.1:80": 7}, {"id": "u"}, rows).confirmed


def test_balancer_hosts_show_targets_deleted_since() -> None:
    """3.x ``details.hosts`` is the balancer's own list (balancers.lua ``getStatus``), so a
    node still balancing to a deleted canary is caught; the rows could not show it."""
    hosts = [
        {"host": "10.0.0.1", "port": 80, "nodeWeight": 95},
        {"host": "10.0.0.3", "port": 80, "nodeWeight": 5},
    ]
    balancer = {"id": "u", "details": {"healthy": True, "hosts": hosts}}
    assert not health_check("n", {"10.0.0.1:80": 95}, balancer, None).confirmed
    hosts[1]["nodeWeight"] = 0
    assert health_check("n", {"10.0.0.1:80": 95}, balancer, None).confirmed
    six = {"id": "u", "details": {"hosts": [{"host": "[::1]", "port": 80, "nodeWeight": 3}]}}
    assert health_check("n", {"[::1]:80": 3}, six, None).confirmed


# ---- hybrid and Konnect --------------------------------------------------------------------


def _plane(ident: str, config_hash: str, last_seen: float = 1000.0) -> dict:
    return {
        "id": ident,
        "hostname": f"dp-{ident}",
        "config_hash": config_hash,
        "last_seen": last_seen,
    }


def test_hybrid_needs_a_new_hash_and_agreement() -> None:
    before = {"1": "old", "2": "old"}
    seen = hybrid_observation([_plane("1", "new"), _plane("2", "old")], before, wall_now=1000)
    assert [c.confirmed for c in seen.checks] == [True, False]
    assert "before the write" in (seen.checks[1].detail or "")
    split = hybrid_observation([_plane("1", "new"), _plane("2", "other")], before, wall_now=1000)
    assert not all(c.confirmed for c in split.checks)
    agreed = hybrid_observation([_plane("1", "new"), _plane("2", "new")], before, wall_now=1000)
    assert all(c.confirmed for c in agreed.checks) and agreed.agreed == "new"


def test_hybrid_without_a_before_snapshot_needs_agreement_only() -> None:
    seen = hybrid_observation([_plane("1", "h"), _plane("2", "h")], None, wall_now=1000)
    assert all(c.confirmed for c in seen.checks)


def test_disconnected_data_planes_are_ignored() -> None:
    """An OSS CP keeps DP rows for cluster_data_plane_purge_delay (14 days)."""
    planes = [_plane("1", "new"), _plane("2", "old", last_seen=1000 - STALE_AFTER - 1)]
    seen = hybrid_observation(planes, {"1": "old", "2": "old"}, wall_now=1000)
    assert [c.node for c in seen.checks] == ["dp-1"] and seen.ignored == ("dp-2",)


def test_konnect_compares_with_the_expected_hash() -> None:
    nodes = [
        {"id": "1", "hostname": "a", "config_hash": "x", "last_ping": 1000},
        {"id": "2", "hostname": "b", "config_hash": "y", "last_ping": 1000},
    ]
    seen = konnect_observation("x", nodes, wall_now=1000)
    assert [c.confirmed for c in seen.checks] == [True, False]


# ---- the reported result --------------------------------------------------------------------


def test_result_reports_per_node_times_and_the_total() -> None:
    tracker = Tracker(started=10.0)
    tracker.update([NodeCheck("a", True), NodeCheck("b", False)], 10.2)
    tracker.update([NodeCheck("a", True), NodeCheck("b", True)], 11.5)
    done = Observation((NodeCheck("a", True), NodeCheck("b", True)))
    out = result(HEALTH, done, tracker, verdict=DONE, now=11.5, timeout=5)
    assert out["confirmed"] is True and out["waited_ms"] == 1500 and out["method"] == HEALTH
    assert [(n["node"], n["after_ms"]) for n in out["nodes"]] == [("a", 200), ("b", 1500)]


def test_a_node_that_falls_behind_again_restarts_its_time() -> None:
    tracker = Tracker(started=0.0)
    tracker.update([NodeCheck("a", True)], 1.0)
    tracker.update([NodeCheck("a", False)], 2.0)
    tracker.update([NodeCheck("a", True)], 3.0)
    assert tracker.after_ms("a") == 3000


def test_a_timeout_names_the_late_nodes_and_is_not_an_error() -> None:
    tracker = Tracker(started=0.0)
    late = Observation((NodeCheck("a", True), NodeCheck("b", False, "balancer has x=1")), ("c",))
    tracker.update(late.checks, 2.0)
    out = result(HYBRID, late, tracker, verdict=TIMEOUT, now=2.0, timeout=2)
    assert out["confirmed"] is False and out["nodes"][1]["after_ms"] is None
    assert "1 of 2 data plane(s)" in out["message"] and "b: balancer has x=1" in out["message"]
    assert "will still propagate" in out["message"] and "ignored" in out["message"]
    waiting = result(KONNECT, Observation((OK,)), tracker, verdict=TIMEOUT, now=2.0, timeout=2)
    assert "may still push" in waiting["message"]
