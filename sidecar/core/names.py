"""The upstream-name rule, one definition for the API, its OpenAPI document and the http-log
ingest (where a bad host is one refused entry, not a refused request).

Kong upstream names are hostnames and ids are UUIDs; anything else must never reach Kong's
Admin API, where ``..`` or ``.`` in a path segment would address another endpoint.
"""

from __future__ import annotations

import re

# Checked with fullmatch: in Python ``$`` also matches before a trailing newline, so
# ``orders\n`` passed ``^...$`` with ``match`` and reached Kong (issue 13 item 13).
UPSTREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# The same rule as a JSON Schema / OpenAPI pattern (searched, ECMA 262 or Python):
# ``(?![\s\S])`` is "end of string" in both, where ``$`` is not in Python.
UPSTREAM_NAME_PATTERN = rf"^{UPSTREAM_NAME.pattern}(?![\s\S])"


def is_upstream_name(name: str) -> bool:
    """Whether ``name`` may be sent to Kong as an upstream name or id, to its last character."""
    return UPSTREAM_NAME.fullmatch(name) is not None
