"""Ramps keep the cohorts (issue 14): a ramp started through ``POST …/ramps`` on an
upstream with cohorts set, driven to its end on the injected clock the way Orca polls it;
after each step the cohorts are still in force and the shadow upstreams follow the main
upstream's weights. A ramp cancel, or a rollback after the ramp, removes every cohort
entity."""

from __future__ import annotations

import pytest

from tests.api.conftest import _params
from tests.api.test_ramps import SCHEDULE, TARGETS, orca_status, start_ramp
from tests.api.test_split import CohortMirrorChecker, cohorts  # noqa: F401 (the fixture)

# Cohorts on only, on every profile but Konnect (which refuses them).
pytestmark = [
    pytest.mark.parametrize(
        "sidecar", [p for p in _params() if p.id != "kong-konnect"], indirect=True
    ),
    pytest.mark.parametrize("cohorts", ["cohorts-on"], indirect=True),
    pytest.mark.usefixtures("cohorts"),
]


def mirror_of(sidecar) -> CohortMirrorChecker:
    assert isinstance(sidecar.checker, CohortMirrorChecker)
    return sidecar.checker


def test_a_ramp_to_its_end_keeps_the_cohorts_then_a_rollback_removes_them(sidecar, upstream):
    mirror = mirror_of(sidecar)
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    client = sidecar.client()
    mirror.verify()  # the first step, made by the POST
    splits = []
    for _ in range(len(SCHEDULE) - 1):
        sidecar.clock.advance(60)
        status = orca_status(client, ramp["statusUrl"])  # the poll makes the step
        splits.append(client.get(f"/v1/upstreams/{upstream}/split").json()["split"])
        mirror.verify()
        view = client.get(f"/v1/upstreams/{upstream}/cohorts").json()
        assert view["cohorts"]["header"]["name"] == "X-Canary"
        assert view["canary_live"] is True
    assert status == "SUCCEEDED"
    assert splits == SCHEDULE[1:]
    rollback = client.post(f"/v1/upstreams/{upstream}/rollback", json={})
    assert rollback.status_code == 200, rollback.text
    assert mirror.window_closed  # and the checker found no cohort entity left


def test_a_ramp_cancel_removes_the_cohorts(sidecar, upstream):
    mirror = mirror_of(sidecar)
    ramp = start_ramp(sidecar, upstream, {"schedule": SCHEDULE, "interval": 60, "targets": TARGETS})
    client = sidecar.client()
    sidecar.clock.advance(60)
    assert orca_status(client, ramp["statusUrl"]) == "RUNNING"
    mirror.verify()
    cancelled = client.post(ramp["cancelUrl"])
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELED"
    mirror.window_closed = True
    mirror.verify()  # no plugin, no shadow upstream left
    assert client.get(f"/v1/upstreams/{upstream}/cohorts").json()["cohorts"] is None
