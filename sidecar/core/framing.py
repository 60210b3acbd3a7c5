"""Is an HTTP/1.1 request complete yet? Decided on the bytes received so far, nothing else.

The serving worker (``sidecar.worker``) reads every request into memory before a thread
sees it, so a client that sends half a header, or a body a byte a minute, costs a buffer
and not a thread. This module only says where the request ends, by RFC 9112's message-length
rules (section 6.3): ``Transfer-Encoding`` whose last coding is ``chunked`` (section 7.1),
else ``Content-Length``, else no body. Whatever it cannot frame with certainty (conflicting
lengths, another final coding, a malformed chunk size, a broken request line) is ``PASS``:
gunicorn's own parser refuses it from the bytes at hand, with the status it always used.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_CHUNK_LINE = 4096  # a chunk-size line longer than this is malformed, not incomplete


class State(enum.Enum):
    INCOMPLETE = "incomplete"  # wait for more bytes
    COMPLETE = "complete"  # ``length`` bytes hold one request; hand them over
    PASS = "pass"  # malformed framing: hand over what there is, the parser refuses it
    TOO_LARGE = "too_large"  # head or body over the limits: answer ``status`` and close


@dataclass(frozen=True)
class Framing:
    state: State
    method: str = ""
    path: str = ""
    head_length: int = 0  # 0 while the head is incomplete
    length: int = 0  # the whole request: when COMPLETE, or known early from Content-Length
    expects_continue: bool = False  # ``Expect: 100-continue`` with the body still to come
    status: int = 0  # for TOO_LARGE: 431 (head) or 413 (body)
    # INCOMPLETE chunked body: (offset of the next chunk-size line, body bytes before it),
    # for the next call's ``resume``, so a body of many small chunks is walked once.
    resume: tuple[int, int] | None = None


_INCOMPLETE = Framing(State.INCOMPLETE)


def frame(
    data: bytes | bytearray,
    *,
    max_head: int,
    max_body: int,
    resume: tuple[int, int] | None = None,
) -> Framing:
    """Where the first request in ``data`` ends, if it has ended. ``resume`` is what an
    earlier call on a prefix of ``data`` returned as ``resume``."""
    end = data.find(b"\r\n\r\n", 0, max_head + 4)
    if end < 0:
        return Framing(State.TOO_LARGE, status=431) if len(data) > max_head else _INCOMPLETE
    head_length = end + 4
    lines = bytes(data[:end]).split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return Framing(State.PASS, head_length=head_length)
    method = parts[0].decode("latin-1")
    path = parts[1].split(b"?", 1)[0].decode("latin-1")
    seen = Framing(State.INCOMPLETE, method, path, head_length)
    fields = _fields(lines[1:])
    if fields is None:
        return _with(seen, State.PASS)
    expects = any(v.lower() == b"100-continue" for v in fields.get(b"expect", []))
    codings = [
        c.strip().lower() for v in fields.get(b"transfer-encoding", []) for c in v.split(b",")
    ]
    lengths = fields.get(b"content-length", [])
    if codings:
        if lengths or codings[-1] != b"chunked":
            return _with(seen, State.PASS)
        return _chunked(data, seen, max_body, expects, resume)
    if not lengths:
        return _with(seen, State.COMPLETE, length=head_length)
    values = {v for item in lengths for v in item.split(b",")}
    if len(values) != 1 or not next(iter(values)).strip().isdigit():
        return _with(seen, State.PASS)
    body = int(next(iter(values)).strip())
    if body > max_body:
        return _with(seen, State.TOO_LARGE, status=413)
    if len(data) >= head_length + body:
        return _with(seen, State.COMPLETE, length=head_length + body)
    return _with(seen, State.INCOMPLETE, length=head_length + body, expects_continue=expects)


def _fields(lines: list[bytes]) -> dict[bytes, list[bytes]] | None:
    """Field values by lower-case name; None if a line is not ``name: value``."""
    fields: dict[bytes, list[bytes]] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return None
        fields.setdefault(name.lower(), []).append(value.strip())
    return fields


def _chunked(
    data: bytes | bytearray,
    seen: Framing,
    max_body: int,
    expects: bool,
    resume: tuple[int, int] | None,
) -> Framing:
    """Walk ``size CRLF data CRLF`` chunks to the last (size 0) chunk and its trailers."""
    start, body = resume or (seen.head_length, 0)
    while True:
        line_end = data.find(b"\r\n", start, start + MAX_CHUNK_LINE)
        if line_end < 0:
            if len(data) - start > MAX_CHUNK_LINE:
                return _with(seen, State.PASS)
            waiting = expects and body == 0
            return _with(seen, State.INCOMPLETE, expects_continue=waiting, resume=(start, body))
        size_text = data[start:line_end].split(b";", 1)[0].strip()
        if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
            return _with(seen, State.PASS)
        size = int(size_text, 16)
        if body + size > max_body:
            return _with(seen, State.TOO_LARGE, status=413)
        position = line_end + 2
        if size == 0:
            return _trailers(data, seen, position, resume=(start, body))
        if len(data) < position + size + 2:
            return _with(seen, State.INCOMPLETE, resume=(start, body))
        if data[position + size : position + size + 2] != b"\r\n":
            return _with(seen, State.PASS)
        start, body = position + size + 2, body + size


def _trailers(
    data: bytes | bytearray, seen: Framing, position: int, resume: tuple[int, int]
) -> Framing:
    if data[position : position + 2] == b"\r\n":
        return _with(seen, State.COMPLETE, length=position + 2)
    end = data.find(b"\r\n\r\n", position)
    if end < 0:
        return _with(seen, State.INCOMPLETE, resume=resume)
    return _with(seen, State.COMPLETE, length=end + 4)


def _with(seen: Framing, state: State, **changes: object) -> Framing:
    return Framing(
        state,
        seen.method,
        seen.path,
        seen.head_length,
        **changes,  # type: ignore[arg-type]
    )
