"""Issue 17 item 8: a writing change is planned once when Kong shows the same under the Kong
lock as it did to the probe (the same change without the lock, which only learns that it
writes), and planned again, from the fresh read, when anything changed in between."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import sidecar.traffic
from sidecar.core.split import Split
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.traffic import TrafficService
from sidecar.upstream_locks import KongLock, KongLocks
from tests.kong.conftest import local_settings, seed, start_local

CANARY = Split.from_percentages({"stable": 90, "baseline": 5, "canary": 5})
STEP = Split.from_percentages({"stable": 80, "baseline": 10, "canary": 10})


class MeddledLocks(KongLocks):
    """Kong locks that run ``meanwhile`` (someone else's write) just before taking a lock:
    between the probe's read and the read under the lock."""

    def __init__(self, kong: KongAdmin, meanwhile: Callable[[], None]) -> None:
        super().__init__(kong)
        self.meanwhile = meanwhile

    def acquire(self, upstream: str, wait: float | None = None) -> KongLock:
        self.meanwhile()
        return super().acquire(upstream, wait)


@pytest.fixture
def kong() -> Iterator[tuple[KongAdmin, KongAdmin]]:
    """The sidecar's client and another writer's (decK, a person), on one local Kong."""
    with start_local("kong-3.9", seed_data=seed("orders")) as server:
        settings = local_settings("kong-3.9", server.url)
        ours, theirs = (KongAdmin(build_http_client(settings)) for _ in range(2))
        try:
            yield ours, theirs
        finally:
            ours.close()
            theirs.close()


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[Split]:
    """The split of every plan_change the service makes."""
    made: list[Split] = []
    real = sidecar.traffic.plan_change

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(sidecar.traffic, "plan_change", counted)
    return made


def test_a_change_kong_did_not_see_change_meanwhile_is_planned_once(kong, plans) -> None:
    ours, _ = kong
    service = TrafficService(ours)
    try:
        service.set_split("orders", CANARY)  # the lease tag appears: planned twice
        plans.clear()
        result = service.set_split("orders", STEP)  # a ramp step: the lease stays
        after = service.read("orders")
    finally:
        service.close()
    assert result.split == after.split() == STEP and result.writes
    assert plans == [STEP]


def test_a_change_is_planned_again_on_what_kong_shows_under_the_lock(kong, plans) -> None:
    """Another writer moves a weight between the probe and the lock: the writes are those
    planned from Kong under the lock, not the probe's, and Kong ends at the split asked."""
    ours, theirs = kong
    meddled: list[bool] = []

    def double_the_stable_weight() -> None:
        if not meddled:
            meddled.append(True)
            stable = next(t for t in theirs.targets("orders") if t.target == "10.0.0.1:80")
            theirs.update_target("orders", stable.target, weight=stable.weight * 2)

    service = TrafficService(ours)
    try:
        service.set_split("orders", CANARY)
        probe_plan = service.set_split("orders", STEP, dry_run=True).writes
        service.kong_locks = MeddledLocks(ours, double_the_stable_weight)
        plans.clear()
        result = service.set_split("orders", STEP)
        service.kong_locks = KongLocks(ours)
        after = service.read("orders")
    finally:
        service.close()
    assert meddled and plans == [STEP, STEP]
    assert result.writes != probe_plan  # the probe's plan would start from the old weight
    assert [w.weight_before for w in result.writes if w.target == "10.0.0.1:80"] == [
        next(w.weight_before for w in probe_plan if w.target == "10.0.0.1:80") * 2
    ]
    assert result.split == after.split() == STEP
