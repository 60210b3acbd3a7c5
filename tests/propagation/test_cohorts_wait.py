"""Cohorts' ``wait`` in hybrid mode: the control plane pushes one configuration holding the
post-function and the shadow upstreams, and the wait confirms only once the data planes run
it (their config hashes, as for a split)."""

from __future__ import annotations

from sidecar.cohorts import CohortService
from sidecar.core.cohorts import CohortSpec, HeaderOverride
from sidecar.propagation import HYBRID
from sidecar.traffic import TrafficService
from tests.propagation.conftest import FakeClock, StartCluster


def test_hybrid_wait_covers_the_plugin_and_the_shadows(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("hybrid", nodes=2, lag=8.0)
    cluster.raw().post("/services", json={"name": "orders", "host": "orders"}).raise_for_status()
    traffic = TrafficService(
        cluster.kong,
        propagation=cluster.waiter(),
        clock=clock,
        wall_clock=clock,
    )
    cohorts = CohortService(traffic, clock=clock)
    spec = CohortSpec(header=HeaderOverride("X-Canary"))
    answer = cohorts.set("orders", spec, wait=20)
    waited = answer["propagation"]
    assert waited["method"] == HYBRID and waited["confirmed"] is True
    assert waited["waited_ms"] >= 8000  # the data planes' lag: not confirmed before they ran it
    short = cohorts.set("orders", CohortSpec(header=HeaderOverride("X-Other")), wait=3)
    assert short["propagation"]["confirmed"] is False
