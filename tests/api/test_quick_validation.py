"""The quick body validator agrees with jsonschema (``sidecar.api.quick_validation``).

It may only ever accept what jsonschema accepts (it decides alone for those bodies), and
should accept every valid body except where it is built narrower on purpose (non-ASCII
digits and whitespace in patterns, values it cannot represent), or it saves nothing.
Bodies are generated around every schema ``parse_body`` validates: valid, near-valid
(bounds ±1, wrong types, unknown and missing fields, strings just off a pattern) and any JSON.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.api.quick_validation import BodyValidator, NotQuick, ascii_pattern, quick_schema
from sidecar.api.schemas import _VALIDATORS, CANCEL, PROMOTE, ROLLBACK, SET_SPLIT, START_RAMP

SCHEMAS = {
    "SET_SPLIT": SET_SPLIT,
    "ROLLBACK": ROLLBACK,
    "PROMOTE": PROMOTE,
    "START_RAMP": START_RAMP,
    "CANCEL": CANCEL,
}
ODD_CHARS = "٢٥۳৪\u00a0\u2003\x1c\x1f\u0085\n\t ."  # Unicode digits/spaces Python's \d, \s take

ASCII = st.characters(codec="ascii")
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
)
any_json = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def near_number(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    bounds = [schema[k] for k in ("minimum", "maximum", "exclusiveMinimum") if k in schema] or [0]
    edges = [b + d for b in bounds for d in (-1, -0.5, -1e-9, 0, 1e-9, 0.5, 1)]
    return (
        st.sampled_from(edges)
        | st.sampled_from([int(b) for b in bounds])
        | st.integers(math.floor(min(bounds)) - 3, math.ceil(max(bounds)) + 3)
        | st.floats(min(bounds) - 3, max(bounds) + 3)
        | st.sampled_from([math.nan, math.inf, -math.inf, True, False, 2**64, -(2**63) - 1])
    )


def near_string(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    shaped: st.SearchStrategy[Any] = st.text(max_size=8)
    if "pattern" in schema:
        matching = st.from_regex(schema["pattern"], fullmatch=True)
        shaped = (
            matching
            | matching.map(lambda s: s + "\n")
            | matching.map(lambda s: s.replace("5", "٥"))
            | st.text(alphabet="0123456789" + ODD_CHARS, max_size=8)
        )
    if "maxLength" in schema:
        top = schema["maxLength"]
        shaped |= st.integers(max(0, top - 1), top + 1).map(lambda n: "x" * n)
    if "minLength" in schema:
        shaped |= st.just("") | st.just("\ud800")
    if "enum" in schema:
        shaped |= st.sampled_from(schema["enum"])
    return shaped


def valid_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly values ``schema`` accepts (a pattern's Unicode digits are valid too)."""
    if "oneOf" in schema and "properties" not in schema:
        return st.one_of([valid_for(branch) for branch in schema["oneOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "object" in types:
        return valid_object(schema)
    if "array" in types:
        unique = schema.get("uniqueItems", False)
        return st.lists(valid_for(schema.get("items", {})), max_size=3, unique=unique)
    if "string" in types:
        if "pattern" in schema:
            matching = st.from_regex(schema["pattern"], fullmatch=True)
            ascii_only = st.from_regex(schema["pattern"], fullmatch=True, alphabet=ASCII)
            return ascii_only | ascii_only | matching
        sizes = {"min_size": schema.get("minLength", 0), "max_size": schema.get("maxLength", 9)}
        return st.text(ASCII, **sizes) | st.text(ASCII, **sizes) | st.text(**sizes)
    if "number" in types or "integer" in types:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", low + 100)
        exclusive = "exclusiveMinimum" in schema
        whole = st.integers(math.floor(low) + 1 if exclusive else math.ceil(low), math.floor(high))
        if "integer" in types:
            return whole
        fractional = st.floats(low, high, exclude_min=exclusive)
        return fractional | whole if math.ceil(low) + 1 <= high else fractional
    if "boolean" in types:
        return st.booleans()
    return st.none()


def valid_object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        names = set(schema.get("required", []))
        alternatives = schema.get("oneOf", [])
        forbidden: set[str] = set()
        if alternatives:
            chosen = draw(st.sampled_from(alternatives))
            names |= set(chosen.get("required", []))
            forbidden = set(chosen.get("not", {}).get("required", []))
        optional = sorted(set(properties) - names - forbidden)
        names |= set(draw(st.lists(st.sampled_from(optional), unique=True, max_size=4)))
        return {name: draw(valid_for(properties[name])) for name in sorted(names)}

    return build()


def around(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for ``schema`` and values just off it, and now and then any JSON."""
    options: list[st.SearchStrategy[Any]] = [any_json]
    if "oneOf" in schema:
        options += [around(branch) for branch in schema["oneOf"]]
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]) | st.sampled_from([1, 0, "True"]))
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "null" in types:
        options.append(st.none())
    if "boolean" in types:
        options.append(st.booleans() | st.sampled_from([0, 1, "true"]))
    if {"number", "integer"} & set(types) or "minimum" in schema:
        options.append(near_number(schema))
    if "string" in types or "pattern" in schema:
        options.append(near_string(schema))
    if "array" in types:
        item = around(schema.get("items", {}))
        options.append(st.lists(item, max_size=4))
        options.append(st.lists(st.sampled_from(["a:1", "a:1", "b:2"]), max_size=4))
        if "minItems" in schema:
            options.append(st.just([]))
    if "object" in types or "properties" in schema:
        options.append(near_object(schema))
    return st.one_of(options)


def near_object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    names = sorted(properties)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=5)) if names else []
        for required in schema.get("required", []):
            if draw(st.integers(0, 9)):  # mostly present, sometimes missing
                chosen.append(required)
        for alternative in schema.get("oneOf", []):
            if draw(st.booleans()):
                chosen += alternative.get("required", [])
        out = {
            name: draw(valid_for(properties.get(name, {})) | around(properties.get(name, {})))
            for name in chosen
        }
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.sampled_from(["extra", "Split", "stable", ""]))] = 1
        return out

    return build()


def ascii_clean(value: Any) -> bool:
    """True when nothing in ``value`` is one of the quick validator's deliberate narrowings."""
    if isinstance(value, str):
        return value.isascii() and not any("\x1c" <= c <= "\x1f" for c in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, list):
        return all(ascii_clean(v) for v in value)
    if isinstance(value, dict):
        return all(ascii_clean(k) and ascii_clean(v) for k, v in value.items())
    return True


def test_every_split_and_ramp_schema_has_a_quick_validator() -> None:
    for name, schema in SCHEMAS.items():
        assert _VALIDATORS[id(schema)].quick is not None, name


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_quick_accepts_exactly_what_jsonschema_accepts(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    body = data.draw(valid_object(schema) | near_object(schema) | around(schema))
    validator = _VALIDATORS[id(schema)]
    quick = validator.quick_accepts(body)
    full = validator.full.is_valid(body)
    if quick:
        assert full, body  # never accepts what jsonschema refuses
    elif full:
        assert not ascii_clean(body), body  # refuses a valid body only where narrowed
    assert (validator.first_error(body) is None) == full


def test_a_valid_ramp_step_never_reaches_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = BodyValidator(SET_SPLIT)
    monkeypatch.setattr(validator, "full", None)  # jsonschema asked: AttributeError
    body = {"split": {"stable": 95, "baseline": "2.5", "canary": 2.5}, "wait": "5", "lease": 60}
    assert validator.first_error(body) is None


def test_an_invalid_body_gets_jsonschemas_best_error() -> None:
    error = BodyValidator(SET_SPLIT).first_error({"split": {"stable": 95, "canary": 101}})
    assert error is not None and list(error.absolute_path) == ["split", "canary"]


def test_patterns_are_narrowed_to_ascii() -> None:
    assert ascii_pattern(r"^\s*\d{1,3}(\.\d{1,2})?\s*$") == (
        r"^[ \t\n\x0B\x0C\r]*[0-9]{1,3}(\.[0-9]{1,2})?[ \t\n\x0B\x0C\r]*$"
    )
    for unknown in (r"^\w+$", r"[^a]", r"[\d]", "a.b", r"[a&&b]"):
        with pytest.raises(NotQuick):
            ascii_pattern(unknown)


def test_a_schema_with_an_untested_keyword_stays_on_jsonschema() -> None:
    with pytest.raises(NotQuick):
        quick_schema({"type": "object", "patternProperties": {"^x": {}}})
    assert BodyValidator({"type": "object", "dependentRequired": {"a": ["b"]}}).quick is None
