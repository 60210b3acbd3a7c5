"""RFC 3339 date-times, exactly (``start_at`` of a ramp).

``datetime.fromisoformat`` (Python 3.11) takes all of ISO 8601's extended forms: a space
for the ``T``, week dates (``2026-W49-5T…``), ordinal dates, basic formats without
separators, hour-only offsets. Those are not RFC 3339 (issue 13 item 13) and Orca's SpEL
(``new java.util.Date()``-style strings) can produce some of them by accident, so the ramp
would start at a time nobody wrote. RFC 3339 section 5.6:

    date-time = full-date "T" full-time   ; "T" and "Z" may be lower case (5.6, NOTE)
    full-date = date-fullyear "-" date-month "-" date-mday
    full-time = partial-time time-offset
    partial-time = time-hour ":" time-minute ":" time-second [time-secfrac]
    time-offset = "Z" / time-numoffset ; time-numoffset = ("+" / "-") time-hour ":" time-minute

with ``time-second`` up to 60 (a leap second, 5.7). The space the NOTE allows "for the sake
of readability" is an application's choice, not the grammar's; we keep the grammar.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DATE_TIME = re.compile(  # DIGIT is ASCII 0-9 (RFC 5234); Python's \d matches any digit
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 date-time; ValueError for anything else."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 date-time (e.g. 2026-12-04T23:30:00Z)")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = float(match[7]) if match[7] else 0.0
    if match[8]:
        offset = timedelta(0)
    else:
        off_hour, off_minute = int(match[10]), int(match[11])
        if off_hour > 23 or off_minute > 59:
            raise ValueError("the time offset must be at most 23:59")
        offset = timedelta(hours=off_hour, minutes=off_minute)
        if match[9] == "-":
            offset = -offset
    if second > 60:
        raise ValueError("the second must be at most 60 (a leap second)")
    leap = second == 60  # POSIX time has no leap seconds: 23:59:60 is 00:00:00 next day
    # datetime checks month, day (leap years included), hour and minute ranges
    moment = datetime(
        year, month, day, hour, minute, 59 if leap else second, tzinfo=timezone(offset)
    )
    return moment.timestamp() + leap + fraction
