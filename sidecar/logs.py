"""Logging: one JSON object per line, for the server (stdout) and the CLI (stderr).

Why here and not left to gunicorn: gunicorn only configures its own ``gunicorn.error`` and
``gunicorn.access`` loggers, so without this the ``kong_canary.*`` records (the audit trail,
the lease sweeper) reached no handler and Python's last-resort handler dropped everything
below WARNING. ``serve`` installs the handler before gunicorn starts (the workers are forks
and inherit it); :class:`GunicornJsonLogger` moves gunicorn's two loggers onto it.

- ``LOG_LEVEL`` sets the level of diagnostics (``kong_canary``, ``gunicorn.error``, the
  access log). The audit logger ``kong_canary.audit`` always writes at INFO: an audit trail
  that a log level can switch off is not one.
- Secrets never reach the output: every configured token and secret is replaced by
  ``[redacted]`` in the formatted line, and the access log carries no request headers.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

from gunicorn import glogging

from sidecar.settings import Settings

AUDIT_LOGGER = "kong_canary.audit"
REDACTED = "[redacted]"
_HANDLER_MARK = "_kong_canary_json"
# Keys of LogRecord itself: anything else on a record came from ``extra=`` and is kept.
_RECORD_KEYS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


# Where a verbatim audit message goes in the line (see JsonLineFormatter.format): a string no
# line's ts, level, logger or pid can hold, so its first occurrence is the audit's place.
_AUDIT_SLOT = "\x00audit\x00"
_AUDIT_SLOT_JSON = json.dumps(_AUDIT_SLOT)


# Encoders made once: ``json.dumps`` given any option builds a new ``JSONEncoder`` with those
# options on every call and then calls its ``encode``; these are the same encoders, kept.
_AUDIT_ENCODER = json.JSONEncoder(sort_keys=True)  # json.dumps(entry, sort_keys=True)
_LINE_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)  # the line's own options


class AuditJson(str):
    """An audit message that is ``json.dumps(entry, sort_keys=True)`` of a dict (made by
    :func:`audit_message` only): the formatter nests it as written instead of parsing it and
    writing it again, which gives the same line (``format``'s docstring says when)."""


def audit_message(entry: dict[str, Any]) -> AuditJson:
    """The audit line's message for ``entry``: its JSON with sorted keys, as always."""
    return AuditJson(_AUDIT_ENCODER.encode(entry))


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every value in the settings that must never be printed."""
    values = [t.token for t in settings.tokens]
    values += [
        settings.ramp_secret,
        settings.gateway_ingest_token,
        settings.kong.admin_token,
        settings.kong.konnect_token,
    ]
    return tuple(sorted({v for v in values if v}, key=len, reverse=True))


class JsonLineFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message" | "audit", ...extra}`` on one line.

    An audit record's message is already a JSON object; it is nested under ``audit`` rather
    than merged, so its keys (``event``, ``token`` = the token's *name*) cannot clash with
    the line's own.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Each secret as written and as JSON escapes it inside the line (quotes, backslashes).
        spellings = {form for s in secrets for form in (s, json.dumps(s, ensure_ascii=False)[1:-1])}
        self.secrets = tuple(sorted(spellings, key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        """The line. An audit message made by :func:`audit_message` with no ``\\u`` escape
        in it is nested as written: ``json.dumps`` (ASCII) wrote it with sorted keys, and
        parsing it and writing it again here (not ASCII) gives the same text unless it
        holds an escaped character (non-ASCII or a control character), which then takes
        that longer way (``tests/unit/test_logs.py`` compares the two)."""
        message = record.getMessage()
        line: dict[str, Any] = {
            "ts": _rfc3339(record.created),
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
        fields = vars(record)
        if fields.keys() - _RECORD_KEYS:  # extras (an audit record has none): in their order
            for key, value in fields.items():
                if key not in _RECORD_KEYS and not key.startswith("_"):
                    line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        text = _LINE_ENCODER.encode(line)
        if verbatim:
            text = text.replace(_AUDIT_SLOT_JSON, message, 1)
        return self.redact(text)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


# The last whole second formatted, and its text: every line of a second shares it, and
# ``strftime(gmtime())`` is half the cost of the stamp. One tuple, replaced whole, so a thread
# never reads one second with another's text.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _rfc3339(created: float) -> str:
    """``created`` as RFC 3339 UTC with milliseconds. ``gmtime`` floors to the whole second,
    so the text of the second is the same for every ``created`` with the same floor."""
    global _last_second
    whole = math.floor(created)
    last = _last_second
    if last[0] != whole:
        last = _last_second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)))
    return f"{last[1]}.{int(created % 1 * 1000):03d}Z"


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class StandardStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout``/``sys.stderr`` is when a record is emitted, not
    when the handler was made (a CLI run under a test runner swaps and closes them)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.stream_name = name

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def configure_logging(
    level: str, secrets: Iterable[str] = (), stream: str = "stdout"
) -> logging.Handler:
    """Send ``kong_canary.*`` records as JSON lines to ``sys.<stream>``.

    Replaces a handler an earlier call installed (tests and the CLI may call it twice)."""
    handler = StandardStreamHandler(stream)
    handler.setFormatter(JsonLineFormatter(secrets))
    setattr(handler, _HANDLER_MARK, True)
    app_logger = logging.getLogger("kong_canary")
    _replace_handler(app_logger, handler)
    app_logger.setLevel(level.upper())
    app_logger.propagate = False
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)
    return handler


def installed_handler() -> logging.Handler | None:
    return next(
        (h for h in logging.getLogger("kong_canary").handlers if getattr(h, _HANDLER_MARK, 0)),
        None,
    )


def _replace_handler(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in list(logger.handlers):
        if getattr(old, _HANDLER_MARK, False):
            logger.removeHandler(old)
    logger.addHandler(handler)


class GunicornJsonLogger(glogging.Logger):
    """gunicorn's logger class, writing through the handler :func:`configure_logging` set.

    The access line is built here from a fixed set of fields (never the request headers,
    which hold the bearer token, nor the query string)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        handler = installed_handler()
        if handler is None:  # not started through ``serve``: keep gunicorn's own output
            return
        for logger in (self.error_log, self.access_log):
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.addHandler(handler)
            logger.propagate = False
        self.access_log.setLevel(self.loglevel)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = str(resp.status).split(None, 1)[0]
        self.access_log.info(
            "%s %s %s",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            status,
            extra={
                "http": {
                    "method": environ.get("REQUEST_METHOD"),
                    "path": environ.get("PATH_INFO"),
                    "status": int(status) if status.isdigit() else status,
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": round(request_time.total_seconds() * 1000, 3),
                    "remote": environ.get("REMOTE_ADDR"),
                }
            },
        )
