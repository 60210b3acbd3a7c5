"""start_at accepts exactly RFC 3339 date-times (issue 13 item 13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.timestamps import parse_rfc3339


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-04 23:30:00+00:00",  # space for T (fromisoformat took it)
        "2026-W49-5T23:30:00Z",  # ISO week date
        "2026-338T23:30:00Z",  # ISO ordinal date
        "20261204T233000Z",  # ISO basic format
        "2026-12-04T23:30Z",  # no seconds
        "2026-12-04T23:30:00",  # no offset
        "2026-12-04T23:30:00+01",  # hour-only offset
        "2026-12-04T23:30:00+0100",  # offset without colon
        "2026-12-04",  # date only
        "2026-12-04T23:30:00Z\n",  # trailing newline
        " 2026-12-04T23:30:00Z",
        "2026-12-04T23:30:00,5Z",  # comma fraction
        "2026-02-30T00:00:00Z",  # no such day
        "2026-12-04T24:00:00Z",
        "2026-12-04T23:30:61Z",
        "2026-12-04T23:30:00+24:00",
        "２０２６-12-04T23:30:00Z",  # non-ASCII digits (\\d in Python matches them)
    ],
)
def test_forms_that_are_not_rfc_3339_are_refused(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04T23:30:00Z", datetime(2026, 12, 4, 23, 30, tzinfo=UTC)),
        ("2026-12-04t23:30:00z", datetime(2026, 12, 4, 23, 30, tzinfo=UTC)),
        ("2026-12-05T00:30:00+01:00", datetime(2026, 12, 4, 23, 30, tzinfo=UTC)),
        ("2026-12-04T23:30:00.250-00:00", datetime(2026, 12, 4, 23, 30, 0, 250000, UTC)),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),
    ],
)
def test_rfc_3339_forms_are_accepted(text, expected):
    assert parse_rfc3339(text) == pytest.approx(expected.timestamp())


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(datetime(1970, 1, 2), datetime(9999, 12, 30)),
    offset_minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
    with_fraction=st.booleans(),
)
def test_every_rfc_3339_rendering_parses_to_its_instant(moment, offset_minutes, with_fraction):
    zone = timezone(timedelta(minutes=offset_minutes))
    aware = moment.replace(tzinfo=zone)
    if not with_fraction:
        aware = aware.replace(microsecond=0)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = aware.strftime("%Y-%m-%dT%H:%M:%S")
    if with_fraction:
        text += f".{aware.microsecond:06d}"
    text += f"{sign}{hours:02d}:{minutes:02d}"
    assert parse_rfc3339(text) == pytest.approx(aware.timestamp(), abs=1e-6)
