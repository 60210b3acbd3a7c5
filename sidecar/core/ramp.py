"""Ramp schedules: where a ramp should be at a given moment. Pure: ``now`` is passed in.

A ramp is a list of steps, each a split and an offset in seconds from the ramp's start.
The state of a ramp is a function of its schedule and the clock, nothing else, so any
replica that holds the (signed) schedule computes the same step – two replicas can
never drive one upstream in two directions.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.core.split import TOTAL, VARIANTS, Split, SplitError

MAX_STEPS = 100


@dataclass(frozen=True)
class RampStep:
    offset: float  # seconds after the ramp's start
    split: Split


@dataclass(frozen=True)
class RampSchedule:
    upstream: str
    start_at: float  # epoch seconds
    steps: tuple[RampStep, ...]
    lease: float | None = None  # seconds each step's split may live without renewal
    nonce: str = ""
    origin: Split | None = None  # the split before the ramp started

    def __post_init__(self) -> None:
        if not self.steps:
            raise SplitError("schedule", "a ramp needs at least one step")
        if len(self.steps) > MAX_STEPS:
            raise SplitError("schedule", f"a ramp has at most {MAX_STEPS} steps")
        offsets = [s.offset for s in self.steps]
        if offsets != sorted(offsets) or offsets[0] < 0:
            raise SplitError("schedule", "step offsets must be non-negative and ascending")

    @property
    def ends_at(self) -> float:
        return self.start_at + self.steps[-1].offset

    def step_index(self, now: float) -> int:
        """Index of the step that should be in force at ``now``; -1 before the first."""
        elapsed = now - self.start_at
        index = -1
        for i, step in enumerate(self.steps):
            if step.offset <= elapsed:
                index = i
            else:
                break
        return index

    def next_change_at(self, now: float) -> float | None:
        """When the next step is due, or None once the last one is."""
        index = self.step_index(now)
        if index + 1 >= len(self.steps):
            return None
        return self.start_at + self.steps[index + 1].offset

    def progress(self, now: float) -> int:
        """0..100: share of steps in force; 100 only when the last step is due."""
        return int(100 * (self.step_index(now) + 1) / len(self.steps))

    def target(self) -> Split:
        return self.steps[-1].split


def linear_steps(start: Split, target: Split, steps: int, duration: float) -> tuple[RampStep, ...]:
    """``steps`` evenly spaced moves from ``start`` to ``target``; step i is due at
    ``i * duration / steps`` (the last at ``duration``), as Kong's canary plugin spreads its
    ``steps`` over ``duration``. Canary and baseline move by the same amount whenever they
    start and end equal, so Kayenta always compares like with like; stable takes the rest."""
    if not 1 <= steps <= MAX_STEPS:
        raise SplitError("steps", f"must be between 1 and {MAX_STEPS}")
    if duration < 0:
        raise SplitError("duration", "must not be negative")
    out = []
    for i in range(1, steps + 1):
        shares = {}
        for variant in ("baseline", "canary"):
            a, b = start.hundredths(variant), target.hundredths(variant)
            shares[variant] = a + (b - a) * i // steps if b >= a else a - (a - b) * i // steps
        shares["stable"] = TOTAL - shares["baseline"] - shares["canary"]
        split = target if i == steps else Split(**shares)
        out.append(RampStep(offset=duration * i / steps, split=split))
    return tuple(out)


def schedule_steps(splits: list[Split], interval: float) -> tuple[RampStep, ...]:
    """An explicit list of splits: the first is applied at once, then one every ``interval``."""
    if interval < 0:
        raise SplitError("interval", "must not be negative")
    return tuple(RampStep(offset=interval * i, split=s) for i, s in enumerate(splits))


def unequal_steps(steps: tuple[RampStep, ...]) -> list[int]:
    """Indexes of steps where canary and baseline differ (callers warn or refuse)."""
    return [i for i, s in enumerate(steps) if s.split.canary != s.split.baseline]


__all__ = [
    "MAX_STEPS",
    "VARIANTS",
    "RampSchedule",
    "RampStep",
    "linear_steps",
    "schedule_steps",
    "unequal_steps",
]
