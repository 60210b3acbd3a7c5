"""One Admin API exchange: send, read the body within a deadline, turn failures into KongError.

Nothing above this module sees an ``httpx`` exception, a status code or an unparsed body.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from sidecar.kong.errors import (
    KongAuthError,
    KongConflict,
    KongError,
    KongNotFound,
    KongProtocolError,
    KongReadOnly,
    KongUnavailable,
    KongValidationError,
)
from sidecar.kong.gate import SlotTimeout

MAX_BODY_BYTES = 32 * 1024 * 1024  # ~30k targets with health data; more is not an Admin API
READ_ONLY_MESSAGE = (
    "this Kong node is read-only (DB-less or hybrid data plane): "
    "writes must go to the control plane or Konnect"
)
OPERATION_UNSUPPORTED = 12  # kong/db/errors.lua; 405 from kong/db/strategies/off (DB-less)


def call(
    http: httpx.Client,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    url: httpx.URL | None = None,
) -> Any:
    """Send one request; return the decoded JSON (None for an empty body) or raise KongError.

    ``path`` is relative to the client's base URL; ``url``, when given, is sent instead (and
    ``path`` only names the call in errors).
    """
    if url is None and "?" not in path:
        url, params = absolute(http.base_url, path, params), None
    response, raw = _exchange(http, method, url or path, path, params, body)
    return decode(method, path, response, raw)


def absolute(base: httpx.URL, path: str, params: dict[str, Any] | None) -> httpx.URL:
    """``base`` + ``path`` (+ ``params``), the URL httpx would build from them, parsed once
    per distinct call: httpx parses a relative URL two or three times per request (the
    path, the join with ``base_url``, the merge of ``params``), a tenth of a ramp step's
    CPU in the profile. Joined as httpx joins: ``base``'s path always ends with ``/``
    (httpx enforces it on ``base_url``; an empty one prints as nothing) and ``path`` loses
    its leading ``/``."""
    query = _query(params) if params else ""
    return _joined(_base_text(base), path.lstrip("/") + (f"?{query}" if query else ""))


_last_base: tuple[httpx.URL, str] | None = None  # the base URL last printed, and its text


def _base_text(base: httpx.URL) -> str:
    """``str(base)``, which httpx rebuilds on every call (1.3 us, more than the rest of
    ``absolute``): kept for the last ``httpx.URL`` instance printed, as a URL is immutable
    and a process talks to one Kong through one client (its ``base_url`` instance). The
    pair holds the instance, so an identity match can never be a new URL at a freed
    address; another instance is printed again."""
    global _last_base
    last = _last_base
    if last is not None and last[0] is base:
        return last[1]
    text = str(base)
    _last_base = (base, text)
    return text


def _query(params: dict[str, Any]) -> str:
    """``params`` as httpx encodes them, once per distinct set: encoding costs more than
    the rest of ``absolute`` (7 of its 10 µs for ``{"size": 1000}``), and a ramp step sends
    the same few (``size``, a tag filter) again and again. The cache key holds each value's
    type: ``1``, ``True`` and ``1.0`` are equal keys in a dict but encode as ``1``, ``true``
    and ``1.0``. Unhashable values (a list of values for one name) are encoded uncached."""
    try:
        return _encoded(tuple((name, type(value), value) for name, value in params.items()))
    except TypeError:
        return str(httpx.QueryParams(params))


@functools.lru_cache(maxsize=4096)
def _encoded(items: tuple[tuple[str, type, Any], ...]) -> str:
    return str(httpx.QueryParams({name: value for name, _, value in items}))


@functools.lru_cache(maxsize=4096)
def _joined(base: str, rest: str) -> httpx.URL:
    separator = "" if base.endswith("/") else "/"
    return httpx.URL(base + separator + rest)  # immutable: one instance serves every thread


def _exchange(
    http: httpx.Client,
    method: str,
    url: str | httpx.URL,
    path: str,
    params: dict[str, Any] | None,
    body: dict[str, Any] | None,
) -> tuple[httpx.Response, bytes]:
    # httpx's read timeout bounds each socket read, not the whole body: a server dribbling a
    # byte every 0.2 s would keep us forever. So the body is streamed against a total budget.
    budget = _budget(http.timeout)
    started = time.monotonic()
    try:
        with http.stream(method, url, params=params, json=body) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise KongProtocolError(
                        f"response body larger than {MAX_BODY_BYTES} bytes",
                        status=response.status_code,
                        method=method,
                        path=path,
                    )
                chunks.append(chunk)
                if time.monotonic() - started > budget:
                    raise KongUnavailable(
                        f"Kong sent the response too slowly: gave up after {budget} s",
                        status=None,
                        method=method,
                        path=path,
                    )
            return response, b"".join(chunks)
    except httpx.TransportError as exc:
        raise KongUnavailable(describe_transport_error(exc), method=method, path=path) from exc


def _budget(timeout: httpx.Timeout) -> float:
    """The whole exchange's budget: the sum of the four phases, unbounded if any is. No
    generator expressions: this runs for every Kong call (ten per ramp step)."""
    phases = (timeout.connect, timeout.write, timeout.read, timeout.pool)
    if None in phases:
        return float("inf")
    return float(sum(phases))  # type: ignore[arg-type]  # no None left


def describe_transport_error(exc: httpx.TransportError) -> str:
    """What happened, in words an operator can act on (not a traceback)."""
    limit = _timeout_of(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out after {limit('connect')} s connecting to Kong"
    if isinstance(exc, httpx.ReadTimeout):
        return f"timed out after {limit('read')} s reading the response"
    if isinstance(exc, httpx.WriteTimeout):
        return f"timed out after {limit('write')} s sending the request"
    if isinstance(exc, SlotTimeout):
        return str(exc)
    if isinstance(exc, httpx.PoolTimeout):
        return f"timed out after {limit('pool')} s waiting for a free connection from the pool"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, httpx.ConnectError):
        if "refused" in lowered:
            return "connection refused"
        if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
            return f"TLS handshake failed: {text}"
        if "name or service not known" in lowered or "nodename" in lowered or "resolve" in lowered:
            return f"cannot resolve Kong's host name: {text}"
        return f"cannot connect to Kong: {text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"Kong closed the connection before a complete response ({text})"
    if isinstance(exc, httpx.ReadError):
        return f"connection reset while reading the response ({text})"
    if isinstance(exc, httpx.WriteError):
        return f"connection reset while sending the request ({text})"
    return f"{type(exc).__name__}: {text}"


def _timeout_of(exc: httpx.TransportError) -> Callable[[str], str]:
    try:
        configured = exc.request.extensions.get("timeout", {})
    except RuntimeError:  # no request attached
        configured = {}

    def limit(phase: str) -> str:
        value = configured.get(phase)
        return "?" if value is None else str(float(value))

    return limit


def decode(method: str, path: str, response: httpx.Response, raw: bytes) -> Any:
    """The body's JSON, or the KongError the answer means. The content type is looked up
    only where an error needs it (``Headers.get`` scans every header: 1.4 us of ten
    answers per ramp step)."""
    status = response.status_code
    if status >= 400:
        content_type = response.headers.get("content-type", "")
        raise error_for(method, path, status, content_type, raw)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        raise KongProtocolError(
            f"unexpected redirect to {where}: is admin_url right?",
            status=status,
            method=method,
            path=path,
        )
    if status == 204 or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        content_type = response.headers.get("content-type", "")
        problem = (
            "invalid (truncated?) JSON"
            if "json" in content_type
            else f"expected JSON, got {content_type or 'no content type'}"
        )
        raise KongProtocolError(
            f"{problem}: {snippet(raw)!r}",
            status=status,
            method=method,
            path=path,
        ) from None


def error_for(method: str, path: str, status: int, content_type: str, raw: bytes) -> KongError:
    """Map any status >= 400 to the typed error, whichever of Kong's body shapes came back."""
    payload = _json_or_none(raw)
    message: str | None = None
    code: int | None = None
    name: str | None = None
    fields: dict[str, Any] = {}
    if isinstance(payload, dict):
        if "problem+json" in content_type or ("title" in payload and "status" in payload):
            # Konnect problem+json: {status,title,type,instance,detail,invalid_parameters}
            message = _text(payload.get("detail")) or _text(payload.get("title"))
            name = _text(payload.get("title"))
            fields = _invalid_parameters(payload.get("invalid_parameters"))
        else:
            # Kong: {code,name,message,fields} (kong/db/errors.lua), plain {"message": ...},
            # 400 "invalid options" keeps its details under "options".
            message = _text(payload.get("message"))
            code = payload.get("code") if type(payload.get("code")) is int else None
            name = _text(payload.get("name"))
            details = payload.get("fields") or payload.get("options")
            fields = details if isinstance(details, dict) else {}
    where = {"status": status, "method": method, "path": path}
    if status >= 500 or status == 429:
        text = message or f"non-JSON error page: {snippet(raw)!r}"
        return KongUnavailable(text, code=code, name=name, fields=fields, **where)
    if message is None:
        if status in (401, 403):
            return KongAuthError(snippet(raw) or "credentials rejected", **where)
        return KongProtocolError(
            f"expected a JSON error body, got {content_type or 'no content type'}: "
            f"{snippet(raw)!r}",
            **where,
        )
    kwargs: dict[str, Any] = {"code": code, "name": name, "fields": fields, **where}
    if status == 405 and (code == OPERATION_UNSUPPORTED or "not using a database" in message):
        return KongReadOnly(READ_ONLY_MESSAGE, **kwargs)
    cls = {
        400: KongValidationError,
        401: KongAuthError,
        403: KongAuthError,
        404: KongNotFound,
        409: KongConflict,
    }.get(status, KongError)
    return cls(message, **kwargs)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _invalid_parameters(value: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if not isinstance(value, list):
        return fields
    for item in value:
        if not isinstance(item, dict):
            continue
        field = str(item.get("field") or item.get("name") or "_")
        reason = str(item.get("reason") or item.get("rule") or "invalid")
        fields[field] = f"{fields[field]}; {reason}" if field in fields else reason
    return fields


def snippet(raw: bytes, limit: int = 120) -> str:
    """A short, single-line excerpt of a body for error messages (HTML tags dropped)."""
    text = raw[: limit * 8].decode("utf-8", errors="replace")
    without_tags = re.sub(r"<[^>]*>", " ", text)
    compact = " ".join((without_tags if without_tags.strip() else text).split())
    return compact if len(compact) <= limit else compact[: limit - 1] + "…"
