"""The window is live before traffic moves (issue 15): a change that starts a canary opens the
http-log window first and writes no target until Kong runs the plugin on every worker, by
Kong's own bound (``sidecar.core.window_live``); beyond ``gateway_live_wait`` it is refused
with 503 and nothing moves. The local Kong models when a plugin runs
(``sidecar.kong_local.worker_state``), so the first requests after the move are checked to be
logged."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.window_live import PluginWritten, live_delay, remaining_wait
from sidecar.kong_local.worker_state import runs_from
from tests.gateway.test_window import CANARY, TARGETS, Env, _env

Call = tuple[float, str, str]  # (time sent, method, path)


# ---- the pure bound ------------------------------------------------------------------------


def test_the_bound_follows_kongs_configuration() -> None:
    eventual = {"role": "traditional", "database": "postgres", "worker_consistency": "eventual",
                "worker_state_update_frequency": 5, "db_update_frequency": 5,
                "db_update_propagation": 0}  # fmt: skip
    assert live_delay(eventual) == 10.0  # other nodes poll in 5 s, then each worker's timer
    assert live_delay({**eventual, "worker_consistency": "strict"}) == 5.0  # 2.8's default
    assert live_delay({**eventual, "db_update_propagation": 2}) == 12.0
    assert live_delay({**eventual, "role": "control_plane"}) is None  # DPs: not shown
    assert live_delay(None) is None  # Konnect: no GET /
    assert live_delay({**eventual, "database": "off"}) == 0.0
    assert live_delay({**eventual, "db_update_frequency": "x"}) is None


@given(
    delay=st.floats(min_value=0, max_value=100),
    now=st.floats(min_value=1e9, max_value=2e9),
    ages=st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=200)), max_size=5),
    ours=st.booleans(),
)
def test_remaining_wait_is_the_latest_plugin_to_run_everywhere(
    delay: float, now: float, ages: list[float | None], ours: bool
) -> None:
    plugins = [PluginWritten(False, None if a is None else now - a) for a in ages]
    if ours:
        plugins.append(PluginWritten(True))
    remaining = remaining_wait(plugins, delay, now)
    eps = 1e-6
    assert 0 <= remaining <= delay + 1 + eps
    # every plugin runs everywhere when the wait is over: ours ``delay`` after now, one found
    # in place ``delay`` after Kong's (whole-second) timestamp of its last write
    needed = [0.0] + ([delay] if ours else []) + [delay + 1 - a for a in ages if a is not None]
    assert all(remaining >= n - eps for n in needed)
    assert any(remaining == pytest.approx(n, abs=eps) for n in needed)  # and no longer


# ---- through the app, in front of the local Kong ------------------------------------------


@pytest.fixture
def env34() -> Iterator[Env]:
    yield from _env("3.4")


@pytest.fixture
def env28() -> Iterator[Env]:
    yield from _env("2.8")


def recorded(env: Env, **settings: Any) -> tuple[httpx.Client, list[Call]]:
    """A sidecar whose Kong client notes when each request is sent."""
    client = env.sidecar(**settings)
    calls: list[Call] = []
    kong = env.app.extensions["kong_canary"].kong
    kong._http.event_hooks["request"].append(
        lambda r: calls.append((time.time(), r.method, r.url.path))
    )
    return client, calls


def start_canary(env: Env, live_wait: float, **kong_configuration: float) -> tuple[Any, list[Call]]:
    """The canary's first split, with Kong's ``GET /`` configuration set as given."""
    env.server.app.store.reconfigure(**kong_configuration)
    client, calls = recorded(env, gateway_live_wait=live_wait)
    answer = client.put(f"/v1/upstreams/{env.upstream}/split", json={**CANARY, "targets": TARGETS})
    return answer, calls


def target_writes(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c[1] != "GET" and "/targets" in c[2]]


def plugin_writes(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c[1] in ("POST", "PATCH", "PUT") and "/plugins" in c[2]]


@pytest.mark.parametrize("profile", ["3.4", "2.8"])
def test_no_weight_is_written_before_the_window_runs_on_every_worker(
    profile: str, request: pytest.FixtureRequest
) -> None:
    env: Env = request.getfixturevalue("env34" if profile == "3.4" else "env28")
    env.server.app.store.reconfigure(worker_state_update_frequency=0.6, db_update_frequency=0.4)
    client, calls = recorded(env, gateway_live_wait=5)
    started = time.time()
    answer = client.put(f"/v1/upstreams/{env.upstream}/split", json={**CANARY, "targets": TARGETS})
    assert answer.status_code == 200, answer.text
    assert not [w for w in answer.json()["warnings"] if w.startswith("gateway metrics")]
    created = plugin_writes(calls)
    assert len(created) == 2 and all(c[1] == "POST" for c in created)  # both services
    writes = target_writes(calls)
    assert writes, "the canary moved"
    last_plugin = max(c[0] for c in created)
    first_weight = min(c[0] for c in writes)
    assert first_weight > max(c[0] for c in created)  # opened first
    config = env.server.app.store.configuration
    # Kong's model: a request proxied from the first weight write on is logged by the plugin
    assert runs_from(last_plugin, config) <= first_weight
    bound = 0.4 + (0.6 if profile == "3.4" else 0)  # eventual in 3.x, strict in 2.8
    assert first_weight - last_plugin >= bound
    assert time.time() - started < 5  # it waited Kong's bound, not the setting's


def test_a_window_found_live_costs_no_wait(env34: Env) -> None:
    """A ramp's next step (or a retry) finds the plugins written long ago: no wait."""
    env = env34
    env.server.app.store.reconfigure(worker_state_update_frequency=0.1, db_update_frequency=0.1)
    client, calls = recorded(env, gateway_live_wait=5)
    assert client.post(f"/v1/upstreams/{env.upstream}/gateway-metrics").status_code == 200
    time.sleep(1.3)  # past Kong's whole-second timestamp and the bound
    calls.clear()
    answer = client.put(f"/v1/upstreams/{env.upstream}/split", json={**CANARY, "targets": TARGETS})
    assert answer.status_code == 200, answer.text
    assert plugin_writes(calls) == []
    writes = target_writes(calls)
    assert writes and writes[0][0] - calls[0][0] < 1.0


def test_a_bound_beyond_the_setting_refuses_the_change_and_moves_nothing(env34: Env) -> None:
    env = env34
    answer, calls = start_canary(env, 2, db_update_frequency=60)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "window_not_live"
    assert "gateway_live_wait" in error["message"]
    assert error["details"]["retry_after"] >= 60
    assert target_writes(calls) == []  # nothing moved
    weights = {t["target"]: t["weight"] for t in env.kong.get(
        f"/upstreams/{env.upstream}/targets").json()["data"]}  # fmt: skip
    assert weights == {"10.0.0.1:80": 100}
    assert len(env.ours()) == 2  # the window stays attached: a retry finds it in place


def test_a_live_wait_of_zero_opens_the_window_without_waiting(env34: Env) -> None:
    """The operator's opt-out: the window still opens first, and traffic moves at once."""
    answer, calls = start_canary(env34, 0, db_update_frequency=60)
    assert answer.status_code == 200, answer.text
    created, writes = plugin_writes(calls), target_writes(calls)
    assert created and writes and max(c[0] for c in created) < min(c[0] for c in writes)
    assert min(c[0] for c in writes) - max(c[0] for c in created) < 5


def test_on_a_hybrid_control_plane_traffic_waits_for_the_data_planes(
    request: pytest.FixtureRequest,
) -> None:
    """Kong shows no data plane interval: the window waits until every DP runs the new
    configuration (a new config hash), then the canary moves."""
    env = next(envs := _env("hybrid", nodes=2, lag=(0.3, 0.6)))
    request.addfinalizer(lambda: next(envs, None))
    client, calls = recorded(env, gateway_live_wait=10)
    started = time.time()
    answer = client.put(f"/v1/upstreams/{env.upstream}/split", json={**CANARY, "targets": TARGETS})
    assert answer.status_code == 200, answer.text
    created, writes = plugin_writes(calls), target_writes(calls)
    assert created and writes
    assert min(c[0] for c in writes) - max(c[0] for c in created) >= 0.6  # the slower DP
    assert time.time() - started < 8  # the data planes' hashes, not the whole bound


def test_data_planes_slower_than_the_bound_refuse_the_change(
    request: pytest.FixtureRequest,
) -> None:
    env = next(envs := _env("hybrid", nodes=1, lag=30.0))
    request.addfinalizer(lambda: next(envs, None))
    client, calls = recorded(env, gateway_live_wait=1)
    answer = client.put(f"/v1/upstreams/{env.upstream}/split", json={**CANARY, "targets": TARGETS})
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "window_not_live"
    assert target_writes(calls) == []


def test_a_rollback_during_the_wait_is_not_held_up_behind_it(env34: Env) -> None:
    """The change waits for the window with the upstream's locks released: a rollback sent
    meanwhile answers first (before, it queued behind the whole wait), and the split, planned
    again after the wait, still moves once the window runs everywhere."""
    env = env34
    env.server.app.store.reconfigure(worker_state_update_frequency=2.0, db_update_frequency=1.0)
    client, calls = recorded(env, gateway_live_wait=10)
    other = env.sidecar()  # the same app, another caller
    finished: list[tuple[str, int]] = []

    def first_split() -> None:
        answer = client.put(
            f"/v1/upstreams/{env.upstream}/split", json={**CANARY, "targets": TARGETS}
        )
        finished.append(("split", answer.status_code))

    thread = threading.Thread(target=first_split)
    thread.start()
    deadline = time.time() + 10
    while not plugin_writes(calls) and time.time() < deadline:
        time.sleep(0.02)
    assert plugin_writes(calls), "the window was opened"
    time.sleep(0.2)  # the split is now waiting for Kong's bound (3 s)
    rolled = other.post(f"/v1/upstreams/{env.upstream}/rollback", json={"wait": 0})
    finished.append(("rollback", rolled.status_code))
    thread.join(30)
    assert finished == [("rollback", 200), ("split", 200)]
    weights = {
        t["target"]: t["weight"]
        for t in env.kong.get(f"/upstreams/{env.upstream}/targets").json()["data"]
    }
    assert weights["10.0.0.3:80"] > 0  # the split moved after the wait
