"""Split: percentages in, exact hundredths out, and a SplitError naming field and rule."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import sidecar.core.split as split_module
from sidecar.core.split import (
    TOTAL,
    VARIANTS,
    Split,
    SplitError,
    _hundredths,
    _hundredths_exactly,
)

SANE = settings(max_examples=200, deadline=None)


@st.composite
def hundredths(draw: st.DrawFn) -> dict[str, int]:
    a, b = sorted(draw(st.lists(st.integers(0, TOTAL), min_size=2, max_size=2)))
    return {"stable": a, "baseline": b - a, "canary": TOTAL - b}


def test_common_inputs_parse_exactly() -> None:
    split = Split.from_percentages({"stable": 95, "baseline": 2.5, "canary": "2.5"})
    assert split == Split(stable=9500, baseline=250, canary=250)
    assert split.percent("canary") == Decimal("2.5")
    assert split.fraction("canary") == Fraction(1, 40)
    assert split.as_percentages() == {"stable": 95.0, "baseline": 2.5, "canary": 2.5}


def test_sums_are_exact_where_float_addition_is_not() -> None:
    assert 73.13 + 16.77 + 10.1 != 100  # the float trap this class exists for
    split = Split.from_percentages({"stable": 73.13, "baseline": 16.77, "canary": 10.1})
    assert split == Split(7313, 1677, 1010)
    split = Split.from_percentages({"stable": 33.33, "baseline": 33.33, "canary": 33.34})
    assert split == Split(3333, 3333, 3334)


def test_float_noise_from_arithmetic_is_tolerated_but_real_decimals_are_not() -> None:
    noisy = 100 - 99.7  # 0.29999999999999716
    assert Split.from_percentages({"stable": 99.7, "canary": noisy}).canary == 30
    with pytest.raises(SplitError, match="two decimals"):
        Split.from_percentages({"stable": 97.495, "canary": 2.505})


def test_missing_variants_are_zero_when_the_rest_sum_to_100() -> None:
    assert Split.from_percentages({"stable": 100}) is not None
    assert Split.from_percentages({"stable": 100}) == Split.STABLE_ONLY
    assert Split.from_percentages({"canary": Decimal("50.00"), "baseline": 50}) == Split(
        0, 5000, 5000
    )


@pytest.mark.parametrize(
    ("values", "field", "rule"),
    [
        ({"stable": 95, "canray": 5}, "split.canray", "unknown variant"),
        ({"stable": 100, "canary": True}, "split.canary", "boolean"),
        ({"stable": float("nan"), "canary": 0}, "split.stable", "finite"),
        ({"stable": float("inf")}, "split.stable", "finite"),
        ({"stable": "NaN"}, "split.stable", "finite"),
        ({"stable": "-Infinity"}, "split.stable", "finite"),
        ({"stable": 105, "canary": -5}, "split.stable", "at most 100"),
        ({"stable": 100, "canary": -0.0001}, "split.canary", "negative"),
        ({"stable": 95, "canary": -5}, "split.canary", "negative"),
        ({"stable": "97.505", "canary": "2.495"}, "split.stable", "two decimals"),
        ({"stable": Decimal("99.999"), "canary": Decimal("0.001")}, "split.stable", "two dec"),
        ({"stable": "ninety"}, "split.stable", "must be a number"),
        ({"stable": None}, "split.stable", "must be a number"),
        ({"stable": [100]}, "split.stable", "must be a number"),
        ({"stable": 95}, "split", "sum to exactly 100, got 95"),
        ({"stable": 95, "canary": 2.5}, "split", "sum to exactly 100, got 97.5"),
        ({"stable": 99.99, "canary": 0.02}, "split", "got 100.01"),
        ({}, "split", "sum to exactly 100, got 0"),
    ],
)
def test_bad_input_names_field_and_rule(values: dict, field: str, rule: str) -> None:
    with pytest.raises(SplitError) as caught:
        Split.from_percentages(values)
    assert caught.value.field == field
    assert rule in caught.value.rule
    assert str(caught.value) == f"{field}: {caught.value.rule}"
    assert isinstance(caught.value, ValueError)


def test_field_prefix_and_non_mapping() -> None:
    with pytest.raises(SplitError) as caught:
        Split.from_percentages({"canary": 101}, field="body.split")
    assert caught.value.field == "body.split.canary"
    with pytest.raises(SplitError, match="must be an object"):
        Split.from_percentages([("stable", 100)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "shares", [(10000, 0, 1), (9999, 0, 0), (-1, 10001, 0), (10000, 0, True), (1.0, 9999, 0)]
)
def test_constructor_refuses_invalid_hundredths(shares: tuple) -> None:
    with pytest.raises(SplitError):
        Split(*shares)


def first_broken_rule(shares: tuple) -> str | None:
    """The constructor's rules, one variant at a time, as written before its quick path."""
    for variant, value in zip(VARIANTS, shares, strict=True):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"split.{variant}: must be an integer number of hundredths"
        if not 0 <= value <= TOTAL:
            return f"split.{variant}: must be between 0 and 10000 hundredths"
    if sum(shares) != TOTAL:
        return "split: shares must sum to exactly 100"
    return None


@settings(max_examples=400, deadline=None)
@given(
    st.tuples(*[st.integers(-2, TOTAL + 2) | st.booleans() | st.just(1.0) for _ in VARIANTS])
    | hundredths().map(lambda h: tuple(h.values()))
    | st.tuples(st.integers(-5, TOTAL + 5), st.integers(-5, TOTAL + 5)).map(
        lambda ab: (*ab, TOTAL - ab[0] - ab[1])  # sums to 10000, maybe through a negative
    )
    | st.tuples(st.integers(0, TOTAL - 1), st.sampled_from([True, False, 1.0, 0.0])).map(
        lambda ab: (TOTAL - ab[0] - int(ab[1]), *ab)  # sums to 10000 with a bool or a float
    )
)
def test_constructor_refuses_exactly_what_its_rules_refuse(shares: tuple) -> None:
    broken = first_broken_rule(shares)
    if broken is None:
        assert Split(*shares).hundredths("stable") == shares[0]
    else:
        with pytest.raises(SplitError) as caught:
            Split(*shares)
        assert str(caught.value) == broken


@SANE
@given(hundredths(), st.sampled_from(["str", "decimal", "float", "int-if-whole"]))
def test_every_hundredths_split_round_trips_through_percentages(
    shares: dict[str, int], kind: str
) -> None:
    def render(h: int) -> object:
        exact = Decimal(h) / 100
        if kind == "str":
            return f"{exact:.2f}"
        if kind == "decimal":
            return exact
        if kind == "float":
            return h / 100
        return h // 100 if h % 100 == 0 else float(exact)

    split = Split.from_percentages({v: render(h) for v, h in shares.items()})
    assert split == Split(**shares)
    assert sum(split.percent(v) for v in VARIANTS) == 100
    assert Split.from_percentages(split.as_percentages()) == split


@SANE
@given(hundredths(), st.integers(1, 50))
def test_from_weights_recovers_the_split_of_proportional_weights(
    shares: dict[str, int], scale: int
) -> None:
    split = Split(**shares)
    assert Split.from_weights({v: h * scale for v, h in shares.items()}) == split


@SANE
@given(st.lists(st.integers(0, 65535), min_size=3, max_size=3).filter(any))
def test_from_weights_sums_to_100_and_rounds_each_share_within_a_hundredth(
    weights: list[int],
) -> None:
    by_variant = dict(zip(VARIANTS, weights, strict=True))
    split = Split.from_weights(by_variant)
    total = sum(weights)
    for variant, weight in by_variant.items():
        assert abs(Fraction(split.hundredths(variant), TOTAL) - Fraction(weight, total)) < Fraction(
            1, TOTAL
        )


def largest_remainder_by_fractions(weights: dict[str, int]) -> Split:
    """The rounding as it was written before the integer version: exact Fractions."""
    total = sum(weights.values())
    exact = {v: Fraction(weights.get(v, 0) * TOTAL, total) for v in VARIANTS}
    floors = {v: int(exact[v]) for v in VARIANTS}
    leftover = TOTAL - sum(floors.values())
    by_remainder = sorted(VARIANTS, key=lambda v: (-(exact[v] - floors[v]), VARIANTS.index(v)))
    for variant in by_remainder[:leftover]:
        floors[variant] += 1
    return Split(**floors)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.integers(0, 65535) | st.integers(0, 1000 * 65535) | st.sampled_from([0, 1, 2, 3]),
        min_size=3,
        max_size=3,
    ).filter(any)
)
def test_integer_largest_remainder_is_the_fraction_one(weights: list[int]) -> None:
    by_variant = dict(zip(VARIANTS, weights, strict=True))
    assert Split.from_weights(by_variant) == largest_remainder_by_fractions(by_variant)


def test_as_percentages_are_the_exact_decimals_as_floats() -> None:
    for h in range(TOTAL + 1):
        split = Split(TOTAL - h, h, 0)
        assert split.as_percentages() == {
            "stable": float(Decimal(TOTAL - h) / 100),
            "baseline": float(Decimal(h) / 100),
            "canary": 0.0,
        }
        assert type(split.as_percentages()["canary"]) is float


def test_from_weights_largest_remainder_and_errors() -> None:
    assert Split.from_weights({"stable": 1, "baseline": 1, "canary": 1}) == Split(3334, 3333, 3333)
    assert Split.from_weights({"stable": 38, "canary": 1, "baseline": 1}) == Split(9500, 250, 250)
    with pytest.raises(SplitError) as caught:
        Split.from_weights({"stable": 0, "canary": 0})
    assert caught.value.field == "weights"
    assert "503" in caught.value.rule
    with pytest.raises(SplitError, match="unknown variant"):
        Split.from_weights({"green": 1})
    with pytest.raises(SplitError, match="non-negative"):
        Split.from_weights({"stable": 2, "canary": -1})


def test_stable_only_constant_and_str() -> None:
    assert Split(10000, 0, 0) == Split.STABLE_ONLY
    assert str(Split(9500, 250, 250)) == "95/2.5/2.5"
    with pytest.raises(KeyError):
        Split.STABLE_ONLY.percent("green")


def parsed(parse: Callable[[object, str], int], value: object) -> int | str:
    try:
        return parse(value, "split.canary")
    except SplitError as exc:
        return f"refused {exc.field}: {exc.rule}"
    except ArithmeticError as exc:  # Decimal("sNaN") < 0 signals, on either route
        return f"raised {exc!r}"


percent_like = st.one_of(
    st.integers(-3, 103) | st.integers() | st.booleans() | st.none(),
    st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1, 101),
    st.integers(0, 10100).map(lambda h: h / 100) | st.decimals(allow_nan=True, places=3),
    st.text(alphabet=" 0123456789.-+e_٢\t\n", max_size=8) | st.text(max_size=4),
    st.integers(0, 10100).map(lambda h: f" {h // 100}.{h % 100:02d} ".replace(".00 ", " ")),
)


@settings(max_examples=1500, deadline=None)
@given(percent_like)
@example("100.01")
@example(100.01)
@example(101)
@example("100")
@example(100.0)
@example("999.99")
@example(" 0.5 ")
@example("00.50")
@example(-0.0)
@example(1e-05)
@example("٢")
@example(True)
def test_plain_percentages_parse_as_the_decimal_route_does(value: object) -> None:
    assert parsed(_hundredths, value) == parsed(_hundredths_exactly, value)


def from_weights_uncached(weights_by_variant: dict[str, object]) -> Split:
    """The oracle: ``Split.from_weights`` with its rounding computed afresh, past the cache
    (the rounding itself is checked against Fractions by the tests above)."""
    with mock.patch.object(split_module, "_rounded", split_module._rounded.__wrapped__):
        return Split.from_weights(weights_by_variant)


def _outcome(make: Callable[[], Split]) -> object:
    try:
        split = make()
    except SplitError as exc:
        return ("refused", exc.field, exc.rule)
    return ("split", type(split), split)


_ANY_WEIGHT = (
    st.integers(0, 5)  # few distinct values: the cache is hit again and again
    | st.integers(0, 65535 * 4)
    | st.integers(-3, -1)
    | st.booleans()
    | st.sampled_from([1.0, 2.5, "1", None, [1], (1,)])
)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from([*VARIANTS, "green"]), _ANY_WEIGHT, max_size=4),
        min_size=1,
        max_size=8,
    )
)
def test_cached_from_weights_gives_what_the_uncached_gave(batches: list[dict]) -> None:
    for weights in batches + batches:  # every input twice: once more from the cache
        assert _outcome(lambda w=weights: Split.from_weights(w)) == _outcome(
            lambda w=weights: from_weights_uncached(w)
        )


def test_a_cached_split_is_never_handed_out_for_an_equal_weight_of_another_type() -> None:
    assert Split.from_weights({"stable": 1, "canary": 0}) == Split.STABLE_ONLY
    for equal_but_refused in (True, 1.0):
        with pytest.raises(SplitError, match="non-negative integer"):
            Split.from_weights({"stable": equal_but_refused, "canary": 0})
