"""The JSON line formatter: one object per record, audit nested, secrets replaced."""

from __future__ import annotations

import json
import logging
import sys
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.logs import (
    _AUDIT_SLOT,
    _AUDIT_SLOT_JSON,
    _RECORD_KEYS,
    AUDIT_LOGGER,
    AuditJson,
    JsonLineFormatter,
    _json_object,
    _rfc3339,
    audit_message,
    secrets_of,
)
from sidecar.settings import ApiToken, KongSettings, Settings


def record(name: str, message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_an_audit_message_is_nested_as_an_object_and_extras_are_kept() -> None:
    formatter = JsonLineFormatter()
    entry = {"event": "set_split", "token": "spinnaker", "level": "not the line's"}
    line = json.loads(formatter.format(record("kong_canary.audit", json.dumps(entry), http={})))
    assert line["audit"] == entry
    assert line["level"] == "INFO"
    assert line["http"] == {}
    assert "message" not in line
    assert line["ts"].endswith("Z")


def test_a_plain_message_stays_a_message() -> None:
    line = json.loads(JsonLineFormatter().format(record("kong_canary.leases", "{not json")))
    assert line["message"] == "{not json"


def test_every_configured_secret_is_a_secret() -> None:
    settings = Settings(
        tokens=(ApiToken("a", "token-a-0123456789"), ApiToken("b", "token-b-0123456789")),
        ramp_secret="ramp-secret-0123456789",
        gateway_ingest_token="token-a-0123456789",
        kong=KongSettings(admin_token="kong-admin-token", konnect_token="konnect-pat"),
    )
    assert set(secrets_of(settings)) == {
        "token-a-0123456789",
        "token-b-0123456789",
        "ramp-secret-0123456789",
        "kong-admin-token",
        "konnect-pat",
    }


@given(
    secret=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=16),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_a_secret_never_survives_formatting(secret: str, before: str, after: str) -> None:
    """Wherever it appears in the message, and in an extra field (as JSON escapes it)."""
    formatter = JsonLineFormatter([secret])
    text = formatter.format(record("kong_canary.api", before + secret + after, extra=secret))
    assert secret not in text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
    | st.sampled_from(["plain", 'q"uote', "back\\slash", "tab\t", "\x00", "é", "\\u00e9", "/"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6), json_values, max_size=6),
    st.sampled_from([{}, {"http": {"path": "/x"}}]),
    st.sampled_from([(), ("tok-\\u00e9-secret-0123", 'pla"in-secret-0123')]),
    st.booleans(),
)
def test_an_audit_message_nested_as_written_is_the_line_it_parsed_to(
    entry: dict, extra: dict, secrets: tuple, failed: bool
) -> None:
    """audit_message's text nested verbatim gives the very line parsing it gave."""
    formatter = JsonLineFormatter(secrets)
    verbatim = record("kong_canary.audit", audit_message(entry), **extra)
    parsed = record("kong_canary.audit", json.dumps(entry, sort_keys=True), **extra)
    parsed.created, parsed.process = verbatim.created, verbatim.process
    if failed:
        try:
            raise ValueError("boom")
        except ValueError:
            verbatim.exc_info = parsed.exc_info = sys.exc_info()
    assert formatter.format(verbatim) == formatter.format(parsed)
    assert verbatim.getMessage() == parsed.getMessage()


def test_an_audit_message_is_nested_as_written_when_nothing_in_it_is_escaped() -> None:
    message = audit_message({"event": "set_split", "after": {"stable": 95.0}})
    formatter = JsonLineFormatter()
    line = formatter.format(record("kong_canary.audit", message))
    assert line.endswith(f', "audit": {message}}}')
    assert json.loads(line)["audit"] == {"after": {"stable": 95.0}, "event": "set_split"}


def old_rfc3339(created: float) -> str:
    """``_rfc3339`` before the whole second was kept: the oracle."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def old_format(formatter: JsonLineFormatter, record: logging.LogRecord) -> str:
    """``JsonLineFormatter.format`` before its encoders were kept and records without extras
    skipped the walk over their fields: the oracle, as it was written."""
    message = record.getMessage()
    line: dict = {
        "ts": old_rfc3339(record.created),
        "level": record.levelname,
        "logger": record.name,
        "pid": record.process,
    }
    verbatim = (
        record.name == AUDIT_LOGGER
        and isinstance(record.msg, AuditJson)
        and not record.args
        and "\\u" not in message
    )
    parsed = _json_object(message) if record.name == AUDIT_LOGGER and not verbatim else None
    if verbatim:
        line["audit"] = _AUDIT_SLOT
    elif parsed is not None:
        line["audit"] = parsed
    else:
        line["message"] = message
    for key, value in vars(record).items():
        if key not in _RECORD_KEYS and not key.startswith("_"):
            line[key] = value
    if record.exc_info:
        line["exception"] = formatter.formatException(record.exc_info)
    text = json.dumps(line, default=str, ensure_ascii=False)
    if verbatim:
        text = text.replace(_AUDIT_SLOT_JSON, message, 1)
    return formatter.redact(text)


# Seconds around now and the epoch, fractions included: the second kept must never be reused
# for another (the floor, not the truncation, names a negative stamp's second).
stamps = st.floats(min_value=-(2.0**33), max_value=2.0**33, allow_nan=False) | st.sampled_from(
    [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 0.9995, 1764932400.0, 1764932400.9999, 1764932399.999]
)


@given(st.lists(stamps, min_size=1, max_size=20))
def test_a_stamp_is_the_one_the_old_formatting_gave(created: list[float]) -> None:
    for stamp in created:
        assert _rfc3339(stamp) == old_rfc3339(stamp)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([AUDIT_LOGGER, "kong_canary.leases", "gunicorn.access"]),
    entry=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    as_audit=st.sampled_from(["made", "dumped", "plain"]),
    extra=st.dictionaries(
        st.sampled_from(["http", "upstream", "_private", "attempt", "z"]), json_values, max_size=3
    ),
    created=stamps,
    secrets=st.sampled_from([(), ("tok-\\u00e9-secret-0123", 'pla"in-secret-0123')]),
    failed=st.booleans(),
)
def test_a_line_is_the_one_the_old_formatter_gave(
    name: str,
    entry: dict,
    as_audit: str,
    extra: dict,
    created: float,
    secrets: tuple,
    failed: bool,
) -> None:
    formatter = JsonLineFormatter(secrets)
    message = {
        "made": audit_message(entry),
        "dumped": json.dumps(entry, sort_keys=True),
        "plain": repr(entry),
    }[as_audit]
    rec = record(name, message, **extra)
    rec.created = created
    if failed:
        try:
            raise ValueError("boom")
        except ValueError:
            rec.exc_info = sys.exc_info()
    assert formatter.format(rec) == old_format(formatter, rec)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6))
def test_an_audit_message_is_the_json_it_always_was(entry: dict) -> None:
    assert audit_message(entry) == json.dumps(entry, sort_keys=True)
