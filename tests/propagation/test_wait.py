"""``Propagation.wait`` against local Kong clusters whose other nodes see writes late.

The clusters run on the test's FakeClock: a node ``lag`` seconds behind answers with the
configuration of ``lag`` fake seconds ago, and the waiter's sleeps advance that clock.
"""

from __future__ import annotations

import threading

import httpx

from sidecar.core.split import Split
from sidecar.kong_local.server import serve_in_thread
from sidecar.propagation import HEALTH, HYBRID, KONNECT
from sidecar.traffic import TrafficService
from tests.propagation.conftest import Cluster, FakeClock, StartCluster

CANARY = Split.from_percentages({"stable": 90, "canary": 10})
TARGETS = {"canary": ["10.0.0.3:80"]}


def _service(cluster: Cluster, **waiter_kwargs) -> TrafficService:  # type: ignore[no-untyped-def]
    return TrafficService(
        cluster.kong,
        propagation=cluster.waiter(**waiter_kwargs),
        clock=cluster.clock,
        wall_clock=cluster.clock,
    )


def _after(propagation: dict) -> list[int | None]:
    return [n["after_ms"] for n in propagation["nodes"]]


def test_confirmed_once_the_slowest_node_serves_the_weights(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("3.9", nodes=3, lag=(0.5, 2.0))
    service = _service(cluster)
    done = service.set_split("orders", CANARY, targets=TARGETS, wait=10)
    waited = done.propagation
    assert waited is not None and waited["confirmed"] is True and waited["method"] == HEALTH
    assert [n["node"] for n in waited["nodes"]] == cluster.server.node_urls
    first, second, third = _after(waited)
    assert first == 0  # the node that took the writes
    assert second is not None and 500 <= second < 2000
    assert third is not None and 2000 <= third <= waited["waited_ms"] < 3000
    assert max(clock.sleeps) <= 1.0  # backoff capped: the lag is seen within a second


def test_a_timeout_is_reported_not_raised_and_a_retry_confirms(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("3.9", nodes=2, lag=3.0)
    service = _service(cluster)
    late = service.set_split("orders", CANARY, targets=TARGETS, wait=1)
    waited = late.propagation
    assert waited is not None and waited["confirmed"] is False
    assert 1000 <= waited["waited_ms"] < 1100
    behind = waited["nodes"][1]
    assert behind["confirmed"] is False and behind["after_ms"] is None
    assert "10.0.0.1:80=100" in behind["detail"]  # still the old balancer
    assert "not confirmed within 1 s" in waited["message"]
    assert service.read("orders").split() == CANARY  # the change itself is in Kong
    clock.advance(2.5)
    again = service.set_split("orders", CANARY, targets=TARGETS, wait=1)
    assert again.writes == [] and again.propagation["confirmed"] is True


def test_deleted_targets_count_until_every_balancer_dropped_them(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    """Promote keeps stable's weight and deletes the canary: only the balancer's own host list
    (3.x ``details.hosts``) shows a node still sending the canary its share."""
    cluster = start_cluster("3.9", nodes=2, lag=1.5)
    service = _service(cluster)
    service.set_split("orders", CANARY, targets=TARGETS)
    clock.advance(5)
    promoted = service.promote("orders", wait=10)
    assert {w.action for w in promoted.writes} >= {"delete"}
    waited = promoted.propagation
    assert waited["confirmed"] is True and 1500 <= waited["waited_ms"] < 2500


def test_kong_2x_is_read_from_the_health_rows(start_cluster: StartCluster) -> None:
    """2.8 answers ``?balancer_health=1`` without ``details`` when health checks are off
    (recording "balancer health of upstream"), so the rows' ``data.nodeWeight`` decide."""
    cluster = start_cluster("2.8", nodes=2, lag=0.7)
    done = _service(cluster).set_split("orders", CANARY, targets=TARGETS, wait=5)
    assert done.propagation["confirmed"] is True
    assert 700 <= done.propagation["waited_ms"] < 1700


def test_kong_2x_cannot_see_deleted_targets(start_cluster: StartCluster, clock: FakeClock) -> None:
    """The known blind spot: without ``details.hosts`` a deleted target is invisible, so a
    promote that keeps stable's weight is confirmed at once."""
    cluster = start_cluster("2.8", nodes=2, lag=1.5)
    service = _service(cluster)
    service.set_split("orders", CANARY, targets=TARGETS)
    clock.advance(5)
    promoted = service.promote("orders", wait=10)
    assert promoted.propagation["confirmed"] is True and promoted.propagation["waited_ms"] == 0


def test_an_upstream_without_a_balancer_is_confirmed_at_once(start_cluster: StartCluster) -> None:
    """3.x builds a balancer on the first proxied request, from the database."""
    cluster = start_cluster("3.9", nodes=2, lag=5.0)
    raw = cluster.raw()
    raw.post("/upstreams", json={"name": "fresh"}).raise_for_status()
    raw.post("/upstreams/fresh/targets", json={"target": "10.0.0.1:80", "weight": 7})
    waited = cluster.waiter().wait("fresh", {"10.0.0.1:80": 7}, 10)
    assert waited["confirmed"] is True and waited["waited_ms"] == 0
    assert all("no balancer" in n["detail"] for n in waited["nodes"])


def test_unreachable_and_foreign_nodes_are_never_confirmed(start_cluster: StartCluster) -> None:
    cluster = start_cluster("3.9")
    other = serve_in_thread("3.9")  # another cluster: no upstream "orders"
    try:
        nodes = (cluster.server.url, other.url, "http://127.0.0.1:9")
        once = httpx.HTTPTransport(retries=0)  # no connect retries: refused is final here
        waited = cluster.waiter(nodes=nodes, transport=once).wait(
            "orders", {"10.0.0.1:80": 100}, 0.5
        )
    finally:
        other.stop()
    assert [n["confirmed"] for n in waited["nodes"]] == [True, False, False]
    assert "no upstream 'orders'" in waited["nodes"][1]["detail"]
    assert "cannot read" in waited["nodes"][2]["detail"]
    assert waited["confirmed"] is False


def test_hybrid_waits_for_new_agreed_hashes_and_one_push_interval(
    start_cluster: StartCluster,
) -> None:
    """The CP pushes on the first change and again db_update_frequency (5 s, its ``GET /``)
    later (control_plane.lua ``push_config_loop``): a DP's first new hash may be an
    intermediate configuration, so nothing is confirmed before 5 s + the margin."""
    cluster = start_cluster("hybrid", nodes=2, lag=(0.2, 0.4))
    service = _service(cluster)
    done = service.set_split("orders", CANARY, targets=TARGETS, wait=10)
    waited = done.propagation
    assert waited["method"] == HYBRID and waited["confirmed"] is True
    assert [n["node"] for n in waited["nodes"]] == ["kong-local-dp-1", "kong-local-dp-2"]
    assert 6000 <= waited["waited_ms"] < 7000
    assert all(n["after_ms"] < 1000 for n in waited["nodes"])  # the hashes changed early
    short = service.set_split("orders", Split.STABLE_ONLY, wait=3)
    assert short.propagation["confirmed"] is False
    assert "may still push" in short.propagation["message"]


def test_hybrid_before_the_write_is_what_a_new_hash_is_judged_against(
    start_cluster: StartCluster,
) -> None:
    """With a lag longer than the push window, agreement alone would confirm the old
    configuration; the hashes noted before the write prevent that."""
    cluster = start_cluster("hybrid", nodes=2, lag=8.0)
    done = _service(cluster).set_split("orders", CANARY, targets=TARGETS, wait=20)
    assert done.propagation["confirmed"] is True
    assert 8000 <= done.propagation["waited_ms"] < 9000


def test_hybrid_retry_without_writes_needs_agreement_and_the_window(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("hybrid", nodes=2, lag=0.3)
    service = _service(cluster)
    service.set_split("orders", CANARY, targets=TARGETS)
    clock.advance(1)
    again = service.set_split("orders", CANARY, targets=TARGETS, wait=10)
    assert again.writes == [] and again.propagation["confirmed"] is True
    assert 6000 <= again.propagation["waited_ms"] < 7000


def test_konnect_nodes_reach_the_expected_hash(start_cluster: StartCluster) -> None:
    cluster = start_cluster("konnect", nodes=2, lag=(0.3, 1.2))
    done = _service(cluster).set_split("orders", CANARY, targets=TARGETS, wait=10)
    waited = done.propagation
    assert waited["method"] == KONNECT and waited["confirmed"] is True
    assert 1200 <= waited["waited_ms"] < 2200
    assert 300 <= _after(waited)[0] < 1200


def test_the_method_follows_the_node_we_write_to(start_cluster: StartCluster) -> None:
    assert start_cluster("3.9").waiter().method() == HEALTH
    hybrid = start_cluster("hybrid")
    assert hybrid.waiter().method() == HYBRID
    assert hybrid.waiter(nodes=("http://dp-admin:8001",)).method() == HEALTH  # explicit nodes
    assert start_cluster("konnect").waiter().method() == KONNECT


def test_the_upstream_is_not_locked_while_waiting(start_cluster: StartCluster) -> None:
    """A wait may last minutes: a rollback of the same upstream must not queue behind it."""
    cluster = start_cluster("3.9")
    outcome: dict[str, object] = {}

    class Probe:
        def before_write(self, upstream: str) -> None:
            return None

        def wait(self, upstream, weights, timeout, before=None):  # type: ignore[no-untyped-def]
            rollback = threading.Thread(target=lambda: service.rollback(upstream))
            rollback.start()
            rollback.join(timeout=5)
            outcome["blocked"] = rollback.is_alive()
            return {"confirmed": True}

    service = TrafficService(cluster.kong, propagation=Probe(), wall_clock=cluster.clock)
    done = service.set_split("orders", CANARY, targets=TARGETS, wait=1)
    assert outcome == {"blocked": False} and done.propagation == {"confirmed": True}
    assert service.read("orders").split() == Split.STABLE_ONLY  # the rollback went through


def test_a_check_looks_once_and_never_sleeps(start_cluster: StartCluster, clock: FakeClock) -> None:
    """What a polled status URL answers: the state of every node now, no waiting."""
    cluster = start_cluster("3.9", nodes=2, lag=2.0)
    service = _service(cluster)
    service.set_split("orders", CANARY, targets=TARGETS)
    weights = {t.target: t.weight for t in service.read("orders").targets}
    waiter = cluster.waiter()
    behind = waiter.check("orders", weights)
    assert behind["confirmed"] is False and clock.sleeps == []
    assert behind["nodes"][0]["confirmed"] is True and behind["nodes"][1]["confirmed"] is False
    assert behind["message"].startswith("not served yet: 1 of 2 node(s)")
    clock.advance(2.0)
    assert waiter.check("orders", weights)["confirmed"] is True


def test_a_hybrid_check_confirms_no_sooner_than_one_push_interval_after_since(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("hybrid", nodes=2, lag=0.2)
    service = _service(cluster)
    written = clock()
    service.set_split("orders", CANARY, targets=TARGETS)
    clock.advance(1)
    waiter = cluster.waiter()
    early = waiter.check("orders", {}, since=written)
    assert early["method"] == HYBRID and early["confirmed"] is False
    assert all(n["confirmed"] for n in early["nodes"])  # agreed, but the CP may push again
    clock.advance(5)
    assert waiter.check("orders", {}, since=written)["confirmed"] is True
