"""Request-body validation that is quick for valid bodies and exact for every body.

``jsonschema``'s ``iter_errors`` + ``best_match`` walks its whole machinery (descend, evolve,
``is_type``) even for a valid body: ~0.3 ms of every ramp step (issue 17 item 8). Valid
bodies are first shown to ``jsonschema_rs`` (a compiled Draft 2020-12 validator, ~1 µs);
only a body it does not accept goes through ``jsonschema``, so every answer about an invalid
body (its field, message and order) is exactly as before.

That is exact only if the quick validator never accepts what ``jsonschema`` refuses. It may
refuse more (it is then merely slower), so it is built narrower where the two could differ:

- ``pattern``: ``jsonschema`` searches with Python's ``re``, where ``\\d`` and ``\\s`` are
  Unicode classes of Python's own Unicode version, and ``$`` also matches before a final
  newline; the quick copy uses ASCII ``[0-9]`` and ASCII whitespace (subsets of both) and
  Rust's ``$`` (end of text only). A pattern with any other class or escape keeps its schema
  off the quick path until the rewrite below learns it.
- only schemas made of the keywords the equivalence property test exercises
  (``tests/api/test_quick_validation.py``) get a quick validator at all;
- ``format`` is an annotation for ``jsonschema`` without a format checker, as here, so the
  quick validator does not check formats either (``validate_formats=False``);
- anything the quick validator cannot take (a lone surrogate, an integer beyond 64 bits)
  raises there, and ``jsonschema`` decides.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

# The keywords the property test compares the two validators on; a schema with any other
# keyword (or annotation) is validated by jsonschema alone.
TESTED_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "properties",
        "additionalProperties",
        "required",
        "minProperties",
        "oneOf",
        "not",
        "enum",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
    }
)
_ASCII_CLASSES = {"d": "[0-9]", "s": r"[ \t\n\x0B\x0C\r]"}
# The regex pieces that mean the same in Python's re and Rust's regex (the quick validator's):
# an escape, a bracketed set of ASCII letters, digits and ranges (no negation, nesting or
# Rust's set operations), or one ASCII letter, digit or operator outside any set.
_PIECE = re.compile(
    r"\\(?P<escape>.)|(?P<set>\[[A-Za-z0-9_-]+\])|(?P<plain>[A-Za-z0-9^$()|?*+{},])"
)


class NotQuick(ValueError):
    """A schema the quick validator is not known to agree on with jsonschema."""


def ascii_pattern(pattern: str) -> str:
    """``pattern`` with ``\\d`` and ``\\s`` narrowed to ASCII; NotQuick for any syntax not
    listed in ``_PIECE``, or an escape other than those two and escaped punctuation."""
    out = []
    at = 0
    while at < len(pattern):
        piece = _PIECE.match(pattern, at)
        if piece is None:
            raise NotQuick(f"pattern {pattern!r}: {pattern[at:]!r} is not narrowed")
        escaped = piece.group("escape")
        if escaped is None:
            out.append(piece.group(0))
        elif escaped in _ASCII_CLASSES:
            out.append(_ASCII_CLASSES[escaped])
        elif escaped.isascii() and not escaped.isalnum() and escaped != " ":
            out.append(piece.group(0))
        else:
            raise NotQuick(f"pattern {pattern!r}: escape \\{escaped} is not narrowed")
        at = piece.end()
    return "".join(out)


def quick_schema(schema: Any) -> dict[str, Any]:
    """A copy of ``schema`` whose patterns are ASCII-narrowed; NotQuick when it uses a
    keyword outside TESTED_KEYWORDS."""
    if not isinstance(schema, dict):
        raise NotQuick(f"schema {schema!r} is not an object")
    untested = set(schema) - TESTED_KEYWORDS
    if untested:
        raise NotQuick(f"keywords {sorted(untested)} are not compared by the tests")
    out = dict(schema)
    if "pattern" in out:
        out["pattern"] = ascii_pattern(out["pattern"])
    if "properties" in out:
        out["properties"] = {k: quick_schema(v) for k, v in out["properties"].items()}
    for keyword in ("items", "not"):
        if keyword in out:
            out[keyword] = quick_schema(out[keyword])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = quick_schema(out["additionalProperties"])
    if "oneOf" in out:
        out["oneOf"] = [quick_schema(s) for s in out["oneOf"]]
    return out


class BodyValidator:
    """The error ``best_match`` picks from jsonschema's errors for a body, or None; asked of
    jsonschema only when the quick validator (if the schema has one) does not accept it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.full = Draft202012Validator(schema)
        self.quick: jsonschema_rs.Draft202012Validator | None
        try:
            self.quick = jsonschema_rs.Draft202012Validator(
                quick_schema(schema), validate_formats=False
            )
        except ValueError:  # NotQuick, or a pattern Rust's regex does not compile
            self.quick = None

    def quick_accepts(self, body: Any) -> bool:
        if self.quick is None:
            return False
        try:
            return bool(self.quick.is_valid(body))
        except (ValueError, TypeError, OverflowError, RecursionError):
            return False  # not representable there (lone surrogate, huge integer): ask jsonschema

    def first_error(self, body: Any) -> ValidationError | None:
        if self.quick_accepts(body):
            return None
        return best_match(self.full.iter_errors(body))
