"""The string formats the OpenAPI document declares, as a checker that really checks them.

jsonschema checks ``date-time`` and ``uri`` only when optional packages (rfc3339-validator,
rfc3987) are installed, and they are not dependencies: without this checker the declared
formats would be comments. Every response the tests see is validated with it, so a
``format`` in the document is a promise the tests hold the sidecar to.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from jsonschema import FormatChecker

from sidecar.core.timestamps import parse_rfc3339

FORMAT_CHECKER = FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    """RFC 3339 section 5.6, by the same rule a ramp's ``start_at`` is read with
    (``parse_rfc3339``): one definition for what the document calls a date-time."""
    if not isinstance(value, str):
        return True  # formats apply to strings only (JSON Schema 2020-12, 7.1)
    parse_rfc3339(value)
    return True


@FORMAT_CHECKER.checks("uri")
def is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986 section 4.3 needs a scheme); ours are http(s) with a host."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and not any(c.isspace() for c in value)
