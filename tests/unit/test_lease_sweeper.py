"""The lease sweeper's jitter: a fraction of the interval, random per process, injectable."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.leases import LeaseSweeper, sweep_delay


@given(
    interval=st.floats(0.1, 3600),
    jitter=st.floats(0, 0.99),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_a_delay_is_never_longer_than_the_interval_nor_shorter_than_its_jitter(
    interval: float, jitter: float, draw: float
) -> None:
    delay = sweep_delay(interval, jitter, draw)
    assert interval * (1 - jitter) - 1e-9 <= delay <= interval


def _delays(rng: random.Random, n: int = 50) -> list[float]:
    sweeper = LeaseSweeper(None, 15.0, jitter=0.2, rng=rng)  # type: ignore[arg-type]
    return [sweeper.next_delay() for _ in range(n)]


def test_processes_with_their_own_random_source_do_not_sweep_in_step() -> None:
    first, second = _delays(random.Random(1)), _delays(random.Random(2))
    assert first != second
    assert all(12.0 <= d <= 15.0 for d in first + second)
    assert max(first) - min(first) > 1.0  # spread over the fraction, not a fixed offset
    assert _delays(random.Random(1)) == first  # injected: reproducible


def test_no_jitter_is_the_interval_and_a_whole_interval_is_refused() -> None:
    assert LeaseSweeper(None, 15.0, jitter=0.0).next_delay() == 15.0  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jitter"):
        LeaseSweeper(None, 15.0, jitter=1.0)  # type: ignore[arg-type]
