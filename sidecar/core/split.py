"""A traffic split as exact hundredths of a percent.

Spinnaker stages send percentages such as ``2.5`` or ``"33.33"``. Floats cannot hold those
exactly (``0.1 + 0.2 != 0.3``), so everything is parsed through :class:`~decimal.Decimal` and
stored as integer hundredths of a percent that sum to exactly 10000. From there on all
arithmetic is integer or :class:`~fractions.Fraction`, never float.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import ClassVar

VARIANTS: tuple[str, ...] = ("stable", "baseline", "canary")
_KNOWN = frozenset(VARIANTS)

TOTAL = 10000  # hundredths of a percent in 100 %
_FLOAT_NOISE = Decimal("1e-9")  # far below 0.005, far above float64 error for values <= 100


class SplitError(ValueError):
    """A split (or the weights asked for it) breaks a rule; carries where and which rule.

    ``field`` is a JSON-pointer-ish path (``"split.canary"``) so the API layer can point the
    Spinnaker user at the offending input; ``rule`` is a sentence a human can act on.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


# A plain percentage: 0..999 with at most two decimals, ASCII digits only. For those the
# Decimal route below gives whole * 100 + decimals, so they skip it (one parse per variant of
# every split in every request); anything else, and anything past 100, takes it.
_PLAIN_PERCENT = re.compile(r"([0-9]{1,3})(?:\.([0-9]{1,2}))?")


def _hundredths(value: object, field: str) -> int:
    """Parse one percentage into hundredths, refusing anything that is not exactly representable."""
    # exact types: a bool (an int subclass) must not pass as an int
    if type(value) is int:
        if 0 <= value <= 100:
            return value * 100
    elif type(value) is str or type(value) is float:
        text = value.strip() if isinstance(value, str) else repr(value)
        plain = _PLAIN_PERCENT.fullmatch(text)
        if plain is not None:
            whole, decimals = plain.groups()
            hundredths = int(whole) * 100 + (int(decimals.ljust(2, "0")) if decimals else 0)
            if hundredths <= TOTAL:
                return hundredths
    return _hundredths_exactly(value, field)


def _hundredths_exactly(value: object, field: str) -> int:
    """``_hundredths`` through Decimal, for every input and every refusal."""
    if isinstance(value, bool):  # bool is an int subclass; True must not mean 1 %
        raise SplitError(field, "must be a number, not a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest string that round-trips, so 33.33 parses as Decimal("33.33")
        # and not as the binary expansion 33.3299999999999982946974341757595539093017578125.
        number = Decimal(repr(value))
        if number.is_finite() and abs(number - round(number, 2)) <= _FLOAT_NOISE:
            number = round(number, 2)  # 100 - 99.7 == 0.29999999999999716 in float
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise SplitError(field, f"must be a number, got {value!r}") from None
    else:
        raise SplitError(field, f"must be a number, got {type(value).__name__}")
    if not number.is_finite():
        raise SplitError(field, "must be a finite number (no NaN or infinity)")
    if number < 0:
        raise SplitError(field, "must not be negative")
    if number > 100:
        raise SplitError(field, "must be at most 100")
    scaled = number * 100
    if scaled != scaled.to_integral_value():
        raise SplitError(field, "must have at most two decimals (0.01 percentage point)")
    return int(scaled)


@dataclass(frozen=True)
class Split:
    """Shares per variant in hundredths of a percent, summing to 10000 (= 100 %)."""

    stable: int
    baseline: int
    canary: int

    STABLE_ONLY: ClassVar[Split]

    def __post_init__(self) -> None:
        s, b, c = self.stable, self.baseline, self.canary
        if type(s) is type(b) is type(c) is int and min(s, b, c) >= 0 and s + b + c == TOTAL:
            return  # the usual case in a few operations (each share <= TOTAL follows)
        for variant in VARIANTS:  # something is wrong: say what, as always
            value = getattr(self, variant)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SplitError(f"split.{variant}", "must be an integer number of hundredths")
            if not 0 <= value <= TOTAL:
                raise SplitError(f"split.{variant}", "must be between 0 and 10000 hundredths")
        if self.stable + self.baseline + self.canary != TOTAL:
            raise SplitError("split", "shares must sum to exactly 100")

    @classmethod
    def from_percentages(cls, values: Mapping[str, object], *, field: str = "split") -> Split:
        """Parse ``{"stable": 95, "canary": 2.5, "baseline": "2.5"}``; missing variants are 0."""
        if not isinstance(values, Mapping):
            raise SplitError(field, "must be an object mapping variant names to percentages")
        if not values.keys() <= _KNOWN:
            unknown = sorted(str(key) for key in values if key not in VARIANTS)
            raise SplitError(
                f"{field}.{unknown[0]}",
                f"unknown variant; expected one of {', '.join(VARIANTS)}",
            )
        shares = []  # a plain loop: every request with a split parses one or two
        for v in VARIANTS:
            shares.append(_hundredths(values[v], f"{field}.{v}") if v in values else 0)
        total = sum(shares)
        if total != TOTAL:
            given = Decimal(total) / 100
            raise SplitError(field, f"percentages must sum to exactly 100, got {given}")
        return cls(*shares)

    @classmethod
    def from_weights(cls, weights_by_variant: Mapping[str, int]) -> Split:
        """The split that weights produce, rounded to hundredths by largest remainder.

        Largest remainder (ties to the earlier variant in VARIANTS) keeps the sum at exactly
        10000, which independent rounding would not (three thirds round to 33.33 each).
        """
        if not weights_by_variant.keys() <= _KNOWN:
            unknown = sorted(str(key) for key in weights_by_variant if key not in VARIANTS)
            raise SplitError(f"weights.{unknown[0]}", "unknown variant")
        weights = tuple(map(weights_by_variant.get, VARIANTS, _ZEROS))
        try:
            split = _rounded(*weights)
        except TypeError:  # an unhashable weight: refused by the same rule, uncached
            split = _rounded.__wrapped__(*weights)
        return split if cls is Split else cls(*map(split.hundredths, VARIANTS))

    def hundredths(self, variant: str) -> int:
        if variant not in VARIANTS:
            raise KeyError(variant)
        return int(getattr(self, variant))

    def fraction(self, variant: str) -> Fraction:
        """The share as an exact fraction of 1 (``Fraction(1, 40)`` for 2.5 %)."""
        return Fraction(self.hundredths(variant), TOTAL)

    def percent(self, variant: str) -> Decimal:
        """The share in percent as an exact Decimal (``Decimal("2.5")``)."""
        return Decimal(self.hundredths(variant)) / Decimal(100)

    def as_percentages(self) -> dict[str, float]:
        """For JSON: hundredths divided by 100 are exact enough as floats to round-trip.

        ``h / 100`` is IEEE division of two exact integers, so it is the float nearest to
        h/100, as ``float(self.percent(v))`` is (the test compares all 10001 values)."""
        return {v: getattr(self, v) / 100 for v in VARIANTS}

    def __str__(self) -> str:
        return "/".join(str(self.percent(v)) for v in VARIANTS)


Split.STABLE_ONLY = Split(stable=TOTAL, baseline=0, canary=0)
_ZEROS = (0,) * len(VARIANTS)


@functools.lru_cache(maxsize=4096, typed=True)
def _rounded(*weights: int) -> Split:
    """``Split.from_weights`` of the weights per variant (in VARIANTS' order), refusals
    included. Cached: a ramp step rounds the same few totals four times (the split before,
    at the probe and again under the lock, and after), and a Split is immutable. ``typed``
    keeps ``True`` and ``1.0`` from hitting the entry of ``1`` (they must be refused);
    refusals raise and are never cached."""
    for variant, weight in zip(VARIANTS, weights, strict=True):
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise SplitError(f"weights.{variant}", "must be a non-negative integer")
    total = sum(weights)
    if total == 0:
        raise SplitError("weights", "all weights are 0, so there is no split (Kong answers 503)")
    # weight * TOTAL / total as floor and remainder: every share's fraction has the same
    # denominator (total), so remainders order as the fractions' parts do, and the whole
    # rounding is integer arithmetic (the Fraction version cost ~40 Fraction operations
    # per split; tests/unit/core/test_core_split.py compares the two).
    floors: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        floor, remainder = divmod(weight * TOTAL, total)
        floors.append(floor)
        remainders.append(remainder)
    leftover = TOTAL - sum(floors)
    if leftover:
        # largest remainder first; a reversed sort keeps ties in order (the earlier variant)
        largest_first = sorted(range(len(VARIANTS)), key=remainders.__getitem__, reverse=True)
        for index in largest_first[:leftover]:
            floors[index] += 1
    return Split(*floors)
