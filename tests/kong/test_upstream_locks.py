"""The upstream lock in Kong, against the Kong-compatible server of every writable profile:
exclusion between independent clients, takeover of a dead holder's lock, lost answers,
DB-less refusal, and the in-process table that forgets unused names."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sidecar.core.upstream_lock import lock_name
from sidecar.errors import ApiError
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.upstream_locks import KongLocks, LocalLocks
from tests.kong.conftest import local_settings, seed, start_local

WRITABLE = ("kong-2.8", "kong-3.4", "kong-3.9", "kong-3.4-rbac-workspace", "konnect")


class Clock:
    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def kong(name: str) -> Iterator[tuple[object, list[KongAdmin]]]:
    """The server and a factory of independent clients (each its own connection pool, as
    another worker or replica would have)."""
    with start_local(name, seed_data=seed("orders"), test_controls=True) as server:
        settings = local_settings(name, server.url)
        clients: list[KongAdmin] = []

        def client() -> KongAdmin:
            admin = KongAdmin(build_http_client(settings))
            clients.append(admin)
            return admin

        try:
            yield server, client
        finally:
            for admin in clients:
                admin.close()


def lock_entities(admin: KongAdmin) -> list[str]:
    return [u.name for u in admin.upstreams() if u.name.startswith("kong-canary-lock-")]


@pytest.mark.parametrize("name", WRITABLE)
def test_only_one_holder_at_a_time_among_independent_clients(name: str) -> None:
    with kong(name) as (_, client):
        inside = 0
        most = 0
        entries = 0
        guard = threading.Lock()

        def work() -> None:
            nonlocal inside, most, entries
            locks = KongLocks(client(), wait=20.0)
            for _ in range(15):
                with locks.held("orders"):
                    with guard:
                        inside += 1
                        most = max(most, inside)
                        entries += 1
                    with guard:
                        inside -= 1

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert entries == 60
        assert most == 1
        assert lock_entities(client()) == []  # every lock released


@pytest.mark.parametrize("name", ("kong-2.8", "kong-3.9", "konnect"))
def test_a_dead_holders_lock_is_taken_over_only_after_expiry_and_skew(name: str) -> None:
    with kong(name) as (_, client):
        clock = Clock()
        dead = KongLocks(client(), ttl=30, skew=5, clock=clock)
        stale = dead.acquire("orders")  # and never released: the process was killed
        other = KongLocks(client(), ttl=30, skew=5, wait=0.0, clock=clock)
        clock.now += 34.9  # not yet expiry + skew
        with pytest.raises(ApiError) as busy:
            other.acquire("orders")
        assert busy.value.status == 503 and busy.value.code == "upstream_busy"
        assert busy.value.details["holder"] == stale.holder
        clock.now += 0.2
        taken = other.acquire("orders")
        assert taken.id != stale.id
        dead.release(stale)  # by id: the dead holder's late release cannot free the new lock
        assert lock_entities(client()) == [lock_name("orders")]
        with pytest.raises(ApiError) as lost:
            dead.renew(stale)
        assert lost.value.code == "lock_lost"
        other.release(taken)
        assert lock_entities(client()) == []


@pytest.mark.parametrize("name", ("kong-2.8", "kong-3.4"))
def test_renewal_moves_the_expiry_in_kong(name: str) -> None:
    with kong(name) as (_, client):
        clock = Clock()
        admin = client()
        locks = KongLocks(admin, ttl=30, clock=clock)
        lock = locks.acquire("orders")
        clock.now += 10
        locks.renew(lock)  # two thirds left: nothing to do
        assert lock.until == pytest.approx(1_900_000_030.0)
        clock.now += 10
        locks.renew(lock)
        assert lock.until == pytest.approx(1_900_000_050.0)
        tags = admin.upstream(lock_name("orders")).tags
        assert "kong-canary-lock-until=1900000050.000" in tags
        locks.release(lock)


@pytest.mark.parametrize("mode", ("reset", "500"))
def test_a_lock_create_whose_answer_is_lost_leaves_no_lock_behind(mode: str) -> None:
    with kong("kong-3.9") as (server, client):
        admin = client()
        server.app.faults.fail(1, mode, ("POST",), after_apply=True, path_contains="/upstreams")
        with pytest.raises(ApiError) as failed:
            KongLocks(admin).acquire("orders")
        assert failed.value.status in (502, 503)
        assert lock_entities(admin) == []
        KongLocks(admin).release(KongLocks(admin).acquire("orders"))  # free again


def test_a_dbless_node_is_refused_before_any_write() -> None:
    with kong("dbless") as (server, client):
        with pytest.raises(ApiError) as refused:
            KongLocks(client()).acquire("orders")
        assert refused.value.code == "kong_read_only"
        assert not [c for c in server.app.calls if c[0] != "GET"]


def test_the_in_process_table_forgets_names_nobody_holds() -> None:
    locks = LocalLocks()
    for i in range(1000):
        with locks.hold(f"no-such-upstream-{i}"):
            assert len(locks) == 1
    assert len(locks) == 0
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with locks.hold("orders"):
            entered.set()
            release.wait(5)
            order.append("holder")

    def waiter() -> None:
        with locks.hold("orders"):
            order.append("waiter")

    first = threading.Thread(target=holder)
    first.start()
    entered.wait(5)
    second = threading.Thread(target=waiter)
    second.start()
    second.join(0.2)
    assert second.is_alive() and len(locks) == 1  # one entry, shared by holder and waiter
    release.set()
    first.join(5)
    second.join(5)
    assert order == ["holder", "waiter"]
    assert len(locks) == 0


def _slow_writes(admin: KongAdmin, clock: Clock, seconds: float, then=None) -> None:
    """Each target write takes ``seconds`` of the injected clock (a slow Kong); ``then``
    runs after the second one (something happening mid-change)."""
    count = [0]
    for name in ("create_target", "update_target"):
        real = getattr(admin, name)

        def slow(*args, _real=real, **kwargs):  # type: ignore[no-untyped-def]
            result = _real(*args, **kwargs)
            clock.now += seconds
            count[0] += 1
            if count[0] == 2 and then is not None:
                then()
            return result

        setattr(admin, name, slow)


BODY_TARGETS = {"canary": ["10.0.0.3:80", "10.0.0.5:80"], "baseline": ["10.0.0.2:80"]}


def test_a_long_change_renews_its_lock_between_write_batches() -> None:
    from sidecar.core.split import Split
    from sidecar.traffic import TrafficService

    with kong("kong-3.9") as (server, client):
        admin, clock = client(), Clock()
        service = TrafficService(
            admin, kong_locks=KongLocks(admin, ttl=10, clock=clock), parallel_writes=1
        )
        _slow_writes(admin, clock, 6.0)
        split = Split.from_percentages({"stable": 80, "baseline": 10, "canary": 10})
        result = service.set_split("orders", split, targets=BODY_TARGETS)
        service.close()
        assert result.split == split and len(result.writes) >= 3
        renewals = [c for c in server.app.calls if c[0] == "PATCH"]
        by_id = re.compile(r"^/upstreams/[0-9a-f-]{36}$")  # the lock, addressed by its id
        assert len([c for c in renewals if by_id.match(c[1])]) >= 2  # at half of its 10 s
        assert lock_entities(admin) == []


def test_a_change_that_lost_its_lock_stops_and_undoes_its_writes() -> None:
    from sidecar.core.split import Split
    from sidecar.traffic import TrafficService

    with kong("kong-3.9") as (_, client):
        admin, clock = client(), Clock()
        before = {t.target: t.weight for t in admin.targets("orders")}
        other = KongLocks(client(), ttl=10, skew=5, clock=clock)
        taken = []

        def expire_and_take_over() -> None:  # the holder stalled past its lock
            clock.now += 60
            taken.append(other.acquire("orders"))

        service = TrafficService(
            admin, kong_locks=KongLocks(admin, ttl=10, skew=5, clock=clock), parallel_writes=1
        )
        _slow_writes(admin, clock, 0.0, then=expire_and_take_over)
        split = Split.from_percentages({"stable": 80, "baseline": 10, "canary": 10})
        with pytest.raises(ApiError) as lost:
            service.set_split("orders", split, targets=BODY_TARGETS)
        service.close()
        assert lost.value.status == 503 and lost.value.code == "lock_lost"
        after = {t.target: t.weight for t in admin.targets("orders")}
        assert {t: w for t, w in after.items() if w} == {t: w for t, w in before.items() if w}
        assert taken and lock_entities(admin) == [lock_name("orders")]  # the new holder's
        other.release(taken[0])
