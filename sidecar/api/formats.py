"""The string formats the OpenAPI document declares, as a checker that really checks them.

jsonschema checks ``date-time`` and ``uri`` only when optional packages (rfc3339-validator,
rfc3987) are installed, and they are not dependencies: without this checker the declared
formats would be comments. Every response the tests see is validated with it, so a
``format`` in the document is a promise the tests hold the sidecar to.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from jsonschema import FormatChecker

# RFC 3339 section 5.6 ``date-time``: full-date "T" full-time, with an offset or Z
# (the T and Z may be lower case; ISO 8601's other spellings are not RFC 3339).
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)

FORMAT_CHECKER = FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats apply to strings only (JSON Schema 2020-12, 7.1)
    if not _DATE_TIME.fullmatch(value):
        return False
    # the calendar: month 1-12, the month's days, hour 0-23 ... (leap seconds are not sent)
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@FORMAT_CHECKER.checks("uri")
def is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986 section 4.3 needs a scheme); ours are http(s) with a host."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and not any(c.isspace() for c in value)
