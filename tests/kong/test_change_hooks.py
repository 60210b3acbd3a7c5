"""Preparers run after a change is planned and before its first Kong write; observers after
it reached Kong. What the gateway window (open before traffic moves) and cohorts (gone
before the canary loses its weight) rely on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidecar.core.split import Split
from sidecar.errors import ApiError
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.traffic import ChangeEvent, TrafficService
from tests.kong.conftest import local_settings, seed, start_local

CANARY = Split.from_percentages({"stable": 90, "baseline": 5, "canary": 5})


@pytest.fixture
def kong() -> Iterator[KongAdmin]:
    with start_local("kong-3.4", seed_data=seed("orders")) as server:
        admin = KongAdmin(build_http_client(local_settings("kong-3.4", server.url)))
        try:
            yield admin
        finally:
            admin.close()


def _kong_view(kong: KongAdmin) -> tuple[dict[str, int], tuple[str, ...]]:
    targets = {t.target: t.weight for t in kong.targets("orders")}
    return targets, tuple(sorted(kong.upstream("orders").tags))


def test_preparers_see_kong_before_the_change_and_observers_after(kong: KongAdmin) -> None:
    service = TrafficService(kong)
    seen: list[tuple[str, ChangeEvent, tuple]] = []
    before = _kong_view(kong)
    service.preparers.append(lambda e: seen.append(("prepare", e, _kong_view(kong))) or None)
    service.observers.append(lambda e: seen.append(("observe", e, _kong_view(kong))) or None)

    result = service.set_split("orders", CANARY)

    assert [s[0] for s in seen] == ["prepare", "observe"]
    (_, planned, at_prepare), (_, done, at_observe) = seen
    assert planned == done == ChangeEvent("orders", "set_split", Split.STABLE_ONLY, CANARY)
    assert at_prepare == before  # nothing written yet, not even the lease tag
    assert at_observe == _kong_view(kong) != before
    assert result.split == CANARY


def test_a_preparer_that_refuses_leaves_kong_as_it_was(kong: KongAdmin) -> None:
    service = TrafficService(kong)
    before = _kong_view(kong)

    def refuse(event: ChangeEvent) -> None:
        raise ApiError(409, "not_ready", "refused by a preparer")

    service.preparers.append(refuse)
    with pytest.raises(ApiError) as raised:
        service.set_split("orders", CANARY)
    assert raised.value.code == "not_ready"
    assert _kong_view(kong) == before
    assert [u.name for u in kong.upstreams()] == ["orders"]  # no lock left behind


def test_dry_runs_and_changes_that_write_nothing_prepare_nothing(kong: KongAdmin) -> None:
    service = TrafficService(kong)
    seen: list[ChangeEvent] = []
    service.preparers.append(lambda e: seen.append(e) or ["prepared"])
    assert service.set_split("orders", CANARY, dry_run=True).warnings == []
    assert seen == []
    assert "prepared" in service.set_split("orders", CANARY).warnings
    service.set_split("orders", CANARY)  # already there: no write, no preparation
    assert len(seen) == 1
