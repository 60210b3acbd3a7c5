"""``sidecar.traffic``'s integer ceiling check answers as the Fraction comparison it replaced,
for every split and every ceiling ``max_shifted_percent`` can be set to."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.split import TOTAL
from sidecar.traffic import TrafficService, above_ceiling

_CEILINGS = st.floats(0, 100, allow_nan=False) | st.integers(0, 100).map(float)
_CEILINGS = _CEILINGS | st.sampled_from([0.0, 0.01, 12.345, 33.333333, 49.99, 50.0, 100.0])


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, TOTAL), _CEILINGS)
def test_the_ceiling_is_crossed_as_the_fractions_say(shifted: int, percent: float) -> None:
    ceiling = Fraction(str(percent))  # as TrafficService reads max_shifted_percent
    assert above_ceiling(shifted, ceiling) == (Fraction(shifted, 100) > ceiling)


def test_the_services_ceiling_is_the_one_it_was_given() -> None:
    service = TrafficService(None, max_shifted_percent=12.5)  # type: ignore[arg-type]
    try:
        assert not above_ceiling(1250, service.max_shifted)
        assert above_ceiling(1251, service.max_shifted)
    finally:
        service.close()
