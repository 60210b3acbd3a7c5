"""``sidecar.ramps.decide``'s message before a ramp's first step: Orca shows it as the
stage's progress, so it must say what the ramp waits for."""

from __future__ import annotations

from sidecar.core.ramp import RampSchedule, linear_steps, schedule_steps
from sidecar.core.split import Split
from sidecar.ramps import RUNNING, decide

STABLE = Split.from_percentages({"stable": 100, "baseline": 0, "canary": 0})
TARGET = Split.from_percentages({"stable": 80, "baseline": 10, "canary": 10})


def _decide(schedule: RampSchedule, now: float):  # type: ignore[no-untyped-def]
    return decide(schedule, "f", now, STABLE, owner="f", canceled=None, origin=STABLE)


def test_a_started_linear_ramp_says_it_waits_for_its_first_step():
    schedule = RampSchedule("orders", 1000.0, linear_steps(STABLE, TARGET, 4, 120))
    decision = _decide(schedule, now=1010.0)  # started; step 1 is due at +30 s
    assert decision.status == RUNNING and decision.apply is None
    assert decision.message == "waiting for step 1/4 (95/2.5/2.5); Kong stays at 100/0/0"


def test_a_ramp_before_its_start_at_says_it_waits_for_the_start():
    schedule = RampSchedule("orders", 1000.0, schedule_steps([TARGET], 60))
    decision = _decide(schedule, now=990.0)
    assert decision.status == RUNNING and decision.apply is None
    assert decision.message == "waiting for the start; Kong stays at 100/0/0"
