"""The CLI's pure pieces: arguments, bars, countdowns, ETA and exit codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.client.format import (
    ArgumentError,
    ExitCode,
    bar,
    countdown,
    exit_code_for_ramp,
    exit_code_for_status,
    parse_duration,
    parse_split,
    ramp_eta,
    split_text,
)


def test_parse_split_reads_three_percentages_in_variant_order() -> None:
    assert parse_split("95/2.5/2.5") == {"stable": 95, "baseline": 2.5, "canary": 2.5}
    assert parse_split(" 80 / 10 / 10 ") == {"stable": 80, "baseline": 10, "canary": 10}


@pytest.mark.parametrize("text", ["90/10", "a/b/c", "90/5/5/0", "-1/51/50", ""])
def test_parse_split_refuses_other_shapes(text: str) -> None:
    with pytest.raises(ArgumentError, match="stable/baseline/canary"):
        parse_split(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("0.5s", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30x", "m", "1h and 5m"])
def test_parse_duration_refuses_the_rest(text: str) -> None:
    with pytest.raises(ArgumentError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (-3, "now"), (0, "now"), (0.2, "1s"), (59, "59s"), (61, "1m 01s"),
     (3599.5, "1h 00m"), (3725, "1h 02m")],
)  # fmt: skip
def test_countdown(seconds, text) -> None:
    assert countdown(seconds) == text


def test_bar_shows_small_shares_in_eighths_of_a_cell() -> None:
    assert bar(100, 4) == "████"
    assert bar(0, 4) == "    "
    assert bar(50, 4) == "██  "
    assert bar(2.5, 40) == "█   ".ljust(40)  # 2.5 % of 40 cells is one cell
    assert bar(0.01, 40).strip() == "▏"  # never invisible when non-zero


@given(st.floats(0, 100), st.integers(1, 80))
def test_bar_is_always_its_width_and_grows_with_the_share(share: float, width: int) -> None:
    drawn = bar(share, width)
    assert len(drawn) == width
    assert len(bar(min(100.0, share + 10), width).rstrip()) >= len(drawn.rstrip())


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]
    assert exit_code_for_status(200) is ExitCode.OK
    assert exit_code_for_status(202) is ExitCode.OK
    assert exit_code_for_status(401) is ExitCode.AUTH
    assert exit_code_for_status(403) is ExitCode.AUTH
    for status in (400, 404, 409, 422, 500, 502, 503):
        assert exit_code_for_status(status) is ExitCode.FAILED
    assert exit_code_for_ramp("SUCCEEDED") is ExitCode.OK
    assert exit_code_for_ramp("FAILED") is ExitCode.FAILED
    assert exit_code_for_ramp("CANCELED") is ExitCode.FAILED


def test_ramp_eta_only_while_running() -> None:
    assert ramp_eta({"status": "RUNNING", "ends_at": 160.0}, 100.0) == 60.0
    assert ramp_eta({"status": "RUNNING", "ends_at": 90.0}, 100.0) == 0.0
    assert ramp_eta({"status": "SUCCEEDED", "ends_at": 160.0}, 100.0) is None
    assert ramp_eta({"status": "RUNNING", "ends_at": None}, 100.0) is None


def test_split_text() -> None:
    assert split_text({"stable": 95.0, "baseline": 2.5, "canary": 2.5}) == "95/2.5/2.5"
    assert split_text(None) == "no targets"
