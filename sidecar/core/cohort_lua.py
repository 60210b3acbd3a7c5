"""The Lua a Kong ``post-function`` runs to route cohorts: rendered from one template, pure.

The template (``sidecar/cohorts_lua/access.lua``, package data) is filled with Lua literals
only: every value (consumer ids, header name and values, upstream names, the spec) is written
as a double-quoted Lua string whose bytes outside printable ASCII, and ``"``/``\\``, are
decimal escapes (``\\ddd``, always three digits so a following digit cannot extend them:
Lua 5.1 reference manual section 2.1, which LuaJIT follows). No input can end the string
early, so no input can inject code.

Why the chunk *returns* a function: Kong's serverless handler
(``kong/plugins/pre-function/_handler.lua``, 2.8.5 to 3.9.3) runs the chunk once and, when it
returns a function, calls that function on every request from then on; the id tables are
built once per worker, not per request.

What the code may use, and why it is enough: the sandbox (``kong/tools/sandbox.lua`` and
``kong/tools/kong-lua-sandbox.lua``, the same in 2.8.5 to 3.9.3) exposes a fixed list of safe
globals plus the ``kong`` and ``ngx`` the handler passes in its env; the template
only uses ``kong`` and local variables. The PDK calls exist from 2.8.5 on (``kong/pdk/``):
``kong.client.get_consumer`` (``client.lua``, authenticated consumer or nil),
``kong.request.get_header`` (``request.lua``: names case-insensitive, a repeated header gives
its *first* value), ``kong.service.set_upstream`` (``service.lua``: ``nil, err`` when no
upstream has that name; access phase only) and ``kong.log.err``.

Header values are compared exactly (case-sensitive, as sent): ``X-Canary: Always`` is not
``always``. Header *names* are case-insensitive because the PDK makes them so.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from importlib import resources

MARKER = "-- kong-canary cohort router v1:"
SPEC_PREFIX = "-- kong-canary-spec: "
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# Bytes written as themselves inside a Lua string literal: printable ASCII but the quote
# and the backslash (everything else, including newlines and NULs, is a decimal escape).
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}


@dataclass(frozen=True)
class HeaderOverride:
    """``curl -H 'X-Canary: always'``: a header whose two values override the cohorts."""

    name: str  # e.g. "X-Canary"
    always: str  # value that sends to canary (while it has weight), e.g. "always"
    never: str  # value that sends to stable, e.g. "never"


@dataclass(frozen=True)
class CohortRouting:
    """Everything the generated Lua decides with; ``spec`` is kept verbatim in the code."""

    never_ids: frozenset[str]  # consumer ids that must never reach canary or baseline
    always_ids: frozenset[str]  # consumer ids sent to canary while it has weight
    header: HeaderOverride | None
    stable_upstream: str  # "{u}--stable"
    canary_upstream: str  # "{u}--canary"
    canary_live: bool  # False while the canary has 0 % weight
    spec: str = ""  # opaque text the sidecar keeps in Kong with the code (round-trips)


def lua_string(text: str) -> str:
    """``text`` as a double-quoted Lua string literal that no input can break out of."""
    data = text.encode("utf-8", errors="surrogatepass")
    return '"' + "".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in data) + '"'


def lua_set(ids: frozenset[str]) -> str:
    """A Lua table used as a set (``{["a"]=true}``): lookups cost the same for 1 or 10,000."""
    if not ids:
        return "{}"
    return "{\n" + "".join(f"  [{lua_string(i)}]=true,\n" for i in sorted(ids)) + "}"


def _check(routing: CohortRouting) -> None:
    header = routing.header
    if header is not None:
        if not header.name or not header.always or not header.never:
            raise ValueError("header name, always and never values must be non-empty")
        if header.always == header.never:
            raise ValueError("header always and never values must differ")
    if not routing.stable_upstream or not routing.canary_upstream:
        raise ValueError("stable_upstream and canary_upstream must be non-empty")
    if routing.stable_upstream == routing.canary_upstream:
        raise ValueError("stable_upstream and canary_upstream must differ")


def _encode_spec(spec: str) -> str:
    """Base64 on one comment line: survives any text (newlines too) and stays a comment."""
    return base64.b64encode(spec.encode("utf-8", errors="surrogatepass")).decode("ascii")


def _template() -> str:
    return resources.files("sidecar.cohorts_lua").joinpath("access.lua").read_text("utf-8")


def render_access_lua(routing: CohortRouting) -> str:
    """The post-function ``access`` chunk for ``routing`` (ValueError on a malformed one)."""
    _check(routing)
    header = routing.header
    nil = "nil"
    values = {
        "spec": _encode_spec(routing.spec),
        "never_ids": lua_set(routing.never_ids),
        "always_ids": lua_set(routing.always_ids),
        "header_name": lua_string(header.name) if header else nil,
        "header_always": lua_string(header.always) if header else nil,
        "header_never": lua_string(header.never) if header else nil,
        "stable_upstream": lua_string(routing.stable_upstream),
        "canary_upstream": lua_string(routing.canary_upstream),
        "canary_live": "true" if routing.canary_live else "false",
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _template())


def is_ours(code: str) -> bool:
    """Whether ``code`` (a post-function phase entry) was generated by this module."""
    return code.startswith(MARKER)


def read_spec(code: str) -> str | None:
    """The ``spec`` back from code Kong returns; None when the code is not ours (a user's
    post-function) or its spec line is damaged."""
    if not is_ours(code):
        return None
    for line in code.splitlines()[1:3]:
        if line.startswith(SPEC_PREFIX):
            encoded = line[len(SPEC_PREFIX) :].strip()
            try:
                raw = base64.b64decode(encoded, validate=True)
                return raw.decode("utf-8", errors="surrogatepass")
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None
