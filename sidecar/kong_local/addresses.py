"""Kong's host parsing (``kong/tools/utils.lua``: ``hostname_type``, ``normalize_ipv4``,
``normalize_ipv6``, ``check_hostname``, ``format_host``) reproduced literally.

Kept separate from ``sidecar.kong.models.normalise_target`` on purpose: that helper is the
client's canonical form (compressed IPv6, lower-cased names); Kong itself expands IPv6 to
eight zero-padded groups and keeps the case of names, and the server must answer like Kong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PORT = 8000  # kong/db/dao/targets.lua

# Lua's %d is ASCII and its $ is the end of the string: fullmatch and [0-9] here, since
# Python's \d takes any Unicode digit and $ also matches before a trailing newline.
_IPV4 = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?::([0-9]+))?")
_NAME_CHARS = re.compile(r"[0-9A-Za-z\-._]+")
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{1,4}")


@dataclass(frozen=True)
class HostPort:
    type: str  # "ipv4" | "ipv6" | "name"
    host: str  # ipv6 without brackets, expanded
    port: int | None


def hostname_type(name: str) -> str:
    remainder = name.replace(":", "")
    if name.count(":") > 1:
        return "ipv6"
    if remainder and re.fullmatch(r"[0-9.]+", remainder):
        return "ipv4"
    return "name"


def _ipv4(address: str) -> HostPort | None:
    m = _IPV4.fullmatch(address)
    if not m:
        return None
    octets = [int(x) for x in m.groups()[:4]]
    if any(o > 255 for o in octets):
        return None
    port = int(m.group(5)) if m.group(5) is not None else None
    if port is not None and port > 65535:
        return None
    return HostPort("ipv4", ".".join(str(o) for o in octets), port)


def _ipv6(address: str) -> HostPort | None:
    port: int | None = None
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            return None
        check, rest = address[1:end], address[end + 1 :]
        if rest:
            m = re.fullmatch(r":([0-9]*)", rest)
            if not m or not m.group(1) or int(m.group(1)) > 65535:
                return None
            port = int(m.group(1))
    else:
        check = address
    if check.startswith(":"):
        check = "0" + check
    if check.endswith(":"):
        check = check + "0"
    if "::" in check:
        count = check.count(":")
        check = check.replace("::", ":" + "0:" * (8 - count), 1)
    groups = check.split(":")
    if len(groups) != 8 or not all(_HEX_GROUP.fullmatch(g) for g in groups):
        return None
    return HostPort("ipv6", ":".join(g.zfill(4).lower() for g in groups), port)


def _name(address: str) -> HostPort | None:
    name, port = address, None
    m = re.search(r":([0-9]+)\Z", address)
    if m:
        name = address[: m.start()]
        port = int(m.group(1))
        if port > 65535:
            return None
    if not _NAME_CHARS.fullmatch(name):
        return None
    segments = name.split(".")
    for index, segment in enumerate(segments, start=1):
        if segment.endswith("-") or (segment == "" and index != len(segments)):
            return None
    return HostPort("name", name, port)


def normalize_ip(address: str) -> HostPort | None:
    """``utils.normalize_ip``: None when Kong would say "not a valid hostname or ip address"."""
    kind = hostname_type(address)
    return {"ipv4": _ipv4, "ipv6": _ipv6, "name": _name}[kind](address)


def format_host(p: HostPort, default_port: int | None = DEFAULT_PORT) -> str:
    port = p.port if p.port is not None else default_port
    host = f"[{p.host}]" if p.type == "ipv6" else p.host
    return host if port is None else f"{host}:{port}"


def format_target(raw: str) -> str | None:
    """The string Kong stores for a target: ``host:port`` with port 8000 when missing."""
    p = normalize_ip(raw)
    return format_host(p) if p else None
