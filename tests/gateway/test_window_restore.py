"""A window someone else removed is restored on the sweeper's schedule (issue 15): while it is
detached ``GET …/split`` warns and ``kong_canary_gateway_window_attached`` is 0; the next
sweep re-attaches it (1 again) and writes an audit line."""

from __future__ import annotations

import json
import logging
import time

import pytest
from prometheus_client import REGISTRY

from sidecar.api.kong_log import WINDOW_CHECK
from sidecar.leases import LeaseSweeper
from tests.gateway.test_window import Env, _open, env39  # noqa: F401  (the fixture)


def attached_gauge(upstream: str) -> float | None:
    return REGISTRY.get_sample_value("kong_canary_gateway_window_attached", {"upstream": upstream})


def detached_warnings(env: Env, client) -> list[str]:  # type: ignore[no-untyped-def]
    view = client.get(f"/v1/upstreams/{env.upstream}/split")
    assert view.status_code == 200, view.text
    return [w for w in view.json()["warnings"] if "detached" in w]


@pytest.mark.parametrize("how", ["deleted", "disabled"])
def test_the_next_sweep_restores_a_window_another_client_removed(
    env39: Env,  # noqa: F811
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = env39
    client = env.sidecar()
    _open(env, client)
    assert attached_gauge(env.upstream) == 1.0
    assert detached_warnings(env, client) == []
    victim = env.ours()[0]
    if how == "deleted":
        env.kong.delete(f"/plugins/{victim['id']}").raise_for_status()
    else:
        env.kong.patch(f"/plugins/{victim['id']}", json={"enabled": False}).raise_for_status()
    check = env.app.extensions[WINDOW_CHECK]
    check._cache.clear()  # the split view's check is cached a few seconds

    (warning,) = detached_warnings(env, client)  # in between: warned, and the gauge says so
    assert victim["service"]["id"] in warning
    assert attached_gauge(env.upstream) == 0.0

    with caplog.at_level(logging.INFO, logger="kong_canary.audit"):
        assert check.sweep() == [env.upstream]
    ours = env.ours()
    assert len(ours) == 2 and all(p["enabled"] for p in ours)
    assert {p["service"]["id"] for p in ours} == set(env.services)
    assert attached_gauge(env.upstream) == 1.0
    assert detached_warnings(env, client) == []
    audited = [r for r in caplog.records if r.name == "kong_canary.audit"]
    (line,) = [json.loads(r.message) for r in audited if "restored" in r.message]
    assert line["event"] == "gateway_window_restored" and line["upstream"] == env.upstream
    assert line["detached_services"] == [victim["service"]["id"]]
    assert check.sweep() == []  # nothing left to restore: no write


def test_a_stable_only_upstream_has_no_window_to_restore(env39: Env) -> None:  # noqa: F811
    env = env39
    client = env.sidecar()
    _open(env, client)
    assert client.post(f"/v1/upstreams/{env.upstream}/rollback").status_code == 200
    assert env.ours() == [] and attached_gauge(env.upstream) == 0.0
    assert env.app.extensions[WINDOW_CHECK].sweep() == []
    assert env.ours() == []  # a closed window stays closed
    assert detached_warnings(env, client) == []


def test_the_lease_sweeper_runs_the_check_on_its_schedule(env39: Env) -> None:  # noqa: F811
    env = env39
    client = env.sidecar()
    _open(env, client)
    env.kong.delete(f"/plugins/{env.ours()[0]['id']}").raise_for_status()
    runtime = env.app.extensions["kong_canary"]
    sweeper = LeaseSweeper(runtime.service, interval=0.1, clock=env.clock)
    sweeper.also.append(env.app.extensions[WINDOW_CHECK].sweep)
    sweeper.start()
    try:
        deadline = time.monotonic() + 20
        while len(env.ours()) < 2:
            assert time.monotonic() < deadline, "the sweeper did not restore the window"
            time.sleep(0.1)
    finally:
        sweeper.stop()
    assert attached_gauge(env.upstream) == 1.0
