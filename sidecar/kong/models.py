"""Kong entities as frozen values. Raw Kong JSON never leaves ``sidecar.kong``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import StrEnum

_ENTITY_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def is_entity_id(value: str) -> bool:
    """A UUID: Kong reads such a path segment as an entity's id, never as its name."""
    return _ENTITY_ID.fullmatch(value) is not None


DEFAULT_TARGET_PORT = 8000  # Kong's targets DAO adds this when the port is missing (every version)


class Flavour(StrEnum):
    """How to talk to the Admin API: which write verbs exist and how errors look."""

    KONG_2 = "2.x"  # 2.2-2.8: POST on an existing target updates (Deprecation: true)
    KONG_3 = "3.x"  # 3.0+: POST on an existing target is 409, PATCH updates, PUT is not an upsert
    KONNECT = "konnect"  # control-plane API: PUT upserts, no PATCH, problem+json errors


@functools.lru_cache(maxsize=8192)  # every Kong answer's targets go through it: pure
def normalise_target(target: str) -> str:
    """``host[:port]`` -> ``host:port`` exactly as Kong stores it (port 8000 when missing).

    Kong only finds a target by its stored spelling (``GET .../targets/10.0.0.2`` is a 404
    when Kong stored ``10.0.0.2:8000``), so this mirrors Kong's own ``normalize_ip`` +
    ``format_host`` (``kong/tools/ip.lua``; ``kong/tools/utils.lua`` in older releases), used by
    ``format_target`` in ``kong/db/dao/targets.lua``:

    - IPv4: leading zeros dropped (``010.0.0.1`` -> ``10.0.0.1``);
    - IPv6: fully expanded, lower-case, bracketed (``::1`` ->
      ``[0000:0000:0000:0000:0000:0000:0000:0001]``); embedded IPv4 and zone ids are invalid;
    - hostnames are NOT normalised: Kong keeps their case, so ``Api.local:80`` and
      ``api.local:80`` are two different targets to Kong and must stay two to us.

    Raises ValueError for anything Kong would reject as "not a valid hostname or ip address".
    """
    text = target.strip()
    if not text:
        raise ValueError("target must not be empty")
    colons = text.count(":")
    if colons > 1:
        host, port = _ipv6(text, target)
        host = f"[{host}]"
    elif re.fullmatch(r"[0-9.]+", text.replace(":", "")):
        host, port = _ipv4(text, target)
    else:
        host, port = _hostname(text, target)
    return f"{host}:{port if port is not None else DEFAULT_TARGET_PORT}"


def _ipv4(text: str, target: str) -> tuple[str, int | None]:
    match = re.fullmatch(
        r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?::([0-9]+))?", text
    )
    if not match or any(int(octet) > 255 for octet in match.groups()[:4]):
        raise ValueError(f"invalid target {target!r}: not a valid IPv4 address")
    host = ".".join(str(int(octet)) for octet in match.groups()[:4])
    return host, _port(match.group(5), target) if match.group(5) is not None else None


def _ipv6(text: str, target: str) -> tuple[str, int | None]:
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"invalid target {target!r}: unclosed '['")
        address, rest = text[1:end], text[end + 1 :]
        if rest:
            if not re.fullmatch(r":[0-9]+", rest):
                raise ValueError(f"invalid target {target!r}: bad port after ']'")
            port = _port(rest[1:], target)
    else:
        address = text  # a bare IPv6 literal cannot carry a port
    # Kong's expansion, step by step (normalize_ipv6), rather than ipaddress, which also
    # accepts forms Kong rejects (``::ffff:1.2.3.4``, ``fe80::1%eth0``).
    if address.startswith(":"):
        address = "0" + address
    if address.endswith(":"):
        address += "0"
    if "::" in address:
        address = address.replace("::", ":" + "0:" * (8 - address.count(":")), 1)
    groups = address.split(":")
    if len(groups) != 8 or not all(re.fullmatch(r"[0-9A-Fa-f]{1,4}", g) for g in groups):
        raise ValueError(f"invalid target {target!r}: not a valid IPv6 address")
    return ":".join(g.lower().rjust(4, "0") for g in groups), port


def _hostname(text: str, target: str) -> tuple[str, int | None]:
    name, port = text, None
    match = re.search(r":([0-9]+)$", text)
    if match:
        name, port = text[: match.start()], _port(match.group(1), target)
    if not re.fullmatch(r"[0-9A-Za-z_.-]+", name):
        raise ValueError(f"invalid target {target!r}: not a valid hostname")
    segments = name.split(".")
    for index, segment in enumerate(segments):
        # a trailing dot (FQDN) is allowed; empty inner labels and labels ending in '-' are not
        if segment.endswith("-") or (not segment and index != len(segments) - 1):
            raise ValueError(f"invalid target {target!r}: not a valid hostname")
    return name, port


def _port(text: str, target: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"invalid port in target {target!r}")
    return int(text)


@dataclass(frozen=True)
class NodeInfo:
    """What ``GET /`` says about the node (or what Konnect is configured as)."""

    version: str
    edition: str  # "community" | "enterprise" | "konnect"
    database: str  # "postgres" | "off" | ...
    role: str  # "traditional" | "control_plane" | "data_plane"
    node_id: str | None
    flavour: Flavour

    @property
    def writable(self) -> bool:
        """False for DB-less nodes and data planes: their Admin API refuses writes with 405."""
        return self.flavour is Flavour.KONNECT or (
            self.database != "off" and self.role != "data_plane"
        )


@dataclass(frozen=True)
class Upstream:
    id: str
    name: str
    algorithm: str
    hash_on: str
    hash_fallback: str
    slots: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    id: str
    target: str  # normalised host:port
    weight: int
    tags: tuple[str, ...] = ()
    upstream_id: str | None = None


@dataclass(frozen=True)
class Address:
    """One resolved address of a target, as the balancer on the answering node sees it."""

    ip: str
    port: int
    weight: int
    health: str


@dataclass(frozen=True)
class TargetHealth:
    """A target's entry in ``/upstreams/{u}/health``.

    ``health`` and ``addresses`` are None when the node has no balancer for the
    upstream (Kong 3.x before the first proxied request; control planes).
    """

    target: str
    id: str
    weight: int
    health: str | None
    addresses: tuple[Address, ...] | None
    total_weight: int | None = None
    tags: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class UpstreamHealth:
    node_id: str | None
    targets: tuple[TargetHealth, ...]
