"""``guard.routes``: listed Kong routes judged one by one (issue 15's critical routes), from
the ``route`` the ingest keys its series by (``sidecar.gateway.entries.route_of``). Clock
injected, deterministic counts."""

from __future__ import annotations

import pytest

from sidecar.core.guard_config import GuardConfig
from sidecar.core.guard_tags import guard_tag, read_guard
from sidecar.core.split import SplitError
from sidecar.gateway.entries import Series, Tally
from sidecar.gateway.metrics import BOUNDS
from sidecar.guard import Guardian
from tests.unit.test_guard_shell import Clock, Rollbacks

# per second: (requests, 5xx) per route and variant. Every route's old version answers 1 %
# 5xx; the canary's browse route too, its checkout route 50 %: on the whole upstream the
# canary is 1.96 % against 0.98 %, under the +1 point floor (errors_increase), so only a
# look at checkout alone can see it.
TRAFFIC = {
    "browse": {"stable": (1900, 19), "baseline": (100, 1), "canary": (100, 1)},
    "checkout": {"stable": (38, 0), "baseline": (2, 0), "canary": (2, 1)},
}


def routed_batch(upstream: str) -> Tally:
    out = Tally()
    for route, variants in TRAFFIC.items():
        for variant, (requests, errors) in variants.items():
            series = Series.empty(len(BOUNDS))
            series.codes = {"2xx": requests - errors, "5xx": errors}
            series.request[BOUNDS.index(20.0)] = requests
            out.series[(upstream, variant, route)] = series  # type: ignore[index]
    return out


def run(config: GuardConfig, seconds: int) -> tuple[int | None, Rollbacks, Guardian]:
    clock, rollback = Clock(), Rollbacks()
    guardian = Guardian(clock=clock, rollback=rollback, bounds=BOUNDS, replica="r")
    guardian.arm("shop", config)
    for second in range(1, seconds + 1):
        clock.now += 1.0
        if guardian.record(routed_batch("shop")):
            return second, rollback, guardian
    return None, rollback, guardian


def test_a_regression_on_a_listed_route_trips_the_guard_naming_the_route() -> None:
    tripped_at, rollback, guardian = run(GuardConfig(routes=("checkout",)), 120)
    assert tripped_at is not None and tripped_at <= 60, tripped_at
    [(upstream, reason)] = rollback.calls
    assert upstream == "shop" and reason.startswith("guard tripped on 5xx: route checkout: ")
    view = guardian.view("shop")
    assert view is not None and view["status"] == "tripped"
    assert view["routes"]["checkout"]["variants"]["canary"]["errors_5xx"] >= 1
    assert view["routes"]["checkout"]["status"] == "tripped"


def test_without_the_route_listed_the_upstream_as_a_whole_does_not_see_it() -> None:
    tripped_at, rollback, guardian = run(GuardConfig(), 120)
    assert tripped_at is None and rollback.calls == []
    assert "routes" not in guardian.view("shop")  # type: ignore[operator]


def test_the_routes_travel_in_the_kong_tag() -> None:
    config = GuardConfig(routes=("checkout", "0b8e1f0c-5d6e-4b0a-9c4d-3f2a1b0c9d8e"))
    assert read_guard([guard_tag(config, None, "g1")]).config == config  # type: ignore[union-attr]
    assert config.as_json()["routes"] == ["checkout", "0b8e1f0c-5d6e-4b0a-9c4d-3f2a1b0c9d8e"]


@pytest.mark.parametrize(
    ("routes", "field", "rule"),
    [
        ("checkout", "guard.routes", "must be a list"),
        (["checkout", ""], "guard.routes[1]", "route name or id"),
        (["checkout", 7], "guard.routes[1]", "route name or id"),
        (["checkout", "checkout"], "guard.routes", "twice"),
        ([f"r{i}" for i in range(51)], "guard.routes", "at most 50"),
    ],
)
def test_bad_routes_are_refused_naming_the_field(routes: object, field: str, rule: str) -> None:
    with pytest.raises(SplitError) as refused:
        GuardConfig.from_json({"routes": routes})
    assert refused.value.field == field and rule in refused.value.rule
