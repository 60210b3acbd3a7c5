"""Kong's consistent-hashing continuum, rebuilt exactly, to predict a sticky split.

With ``hash_on`` set, Kong forces ``consistent-hashing`` and weights stop being a ratio:
each address gets ``floor(weight / total * n_targets * 160)`` points (at least one if its
weight is positive) on a ring of ``slots`` positions, placed by xxhash32 of
``"<ip>::<port> <i>"``; a request's key hashes to a position and takes the first address
found walking counter-clockwise (``kong/runloop/balancer/consistent_hashing.lua``:
``afterHostUpdate`` and ``getPeer``; the double colon is Kong's, ``":" .. port`` appended
after ``ip .. ":"``). Rebuilding the ring gives the share of the hash space each variant
owns, i.e. the split for keys spread evenly over it. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import xxhash

SERVER_POINTS = 160
MIN_POINTS = 1000
MAX_POINTS = 2**32


@dataclass(frozen=True)
class RingAddress:
    target: str  # the target (host:port) the address belongs to
    ip: str
    port: int
    weight: int


_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def literal_address(target: str) -> tuple[str, int] | None:
    """(ip, port) of an IP target as Kong's balancer holds it without any DNS; None for a
    hostname.

    Kong 3.x builds an upstream's balancer on its first proxied request, so until then
    ``/health`` shows no addresses (issue 13 item 15). An IP target needs no resolution: the
    balancer splits ``target`` at the last colon (``kong/runloop/balancer/targets.lua``,
    ``load_targets_into_memory``) and the DNS client answers an IP name with a record whose
    address is the name itself, brackets of an IPv6 literal included
    (``kong/resty/dns/client.lua``, ``check_ipv4``/``check_ipv6``); that address is the
    ``ip`` of the ring key. ``target`` is Kong's stored form (``host:port``).
    """
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        return None
    if (host.startswith("[") and host.endswith("]")) or _IPV4.fullmatch(host):
        return host, int(port)
    return None


def predicted_addresses(
    targets: Sequence[tuple[str, int]],
) -> tuple[list[RingAddress], list[str]]:
    """The addresses a balancer will hold for ``(target, weight)`` pairs, known without DNS,
    and the hostname targets that carry weight, whose addresses only DNS can tell (then the
    prediction is incomplete). A hostname at weight 0 gets no ring points and no traffic."""
    addresses: list[RingAddress] = []
    unknown: list[str] = []
    for target, weight in targets:
        literal = literal_address(target)
        if literal is not None:
            addresses.append(RingAddress(target, literal[0], literal[1], weight))
        elif weight > 0:
            unknown.append(target)
    return addresses, unknown


def _index(value: str, points: int) -> int:
    return xxhash.xxh32_intdigest(value.encode()) % points + 1


def continuum(addresses: Sequence[RingAddress], n_targets: int, slots: int) -> dict[int, int]:
    """Position -> index into ``addresses`` of the address owning that ring point."""
    points = slots if MIN_POINTS <= slots <= MAX_POINTS else MIN_POINTS
    total = sum(a.weight for a in addresses)
    if total == 0:
        return {}

    def target_key(a: RingAddress) -> tuple[str, int]:
        host, _, port = a.target.rpartition(":")
        return host, int(port)

    order = sorted(
        range(len(addresses)),
        key=lambda i: (target_key(addresses[i]), f"{addresses[i].ip}:{addresses[i].port}"),
    )
    ring: dict[int, int] = {}
    for i in order:
        address = addresses[i]
        # Doubles, evaluated left to right as LuaJIT does, so floor() rounds as Kong's.
        entries = math.floor(address.weight / total * n_targets * SERVER_POINTS)
        if address.weight > 0 and entries == 0:
            entries = 1
        k = 1
        while k <= entries:
            index = _index(f"{address.ip}::{address.port} {k}", points)
            if index in ring:
                entries += 1  # Kong moves a collision forward
            else:
                ring[index] = i
            k += 1
            if k > points:
                break
    return ring


def hash_space_shares(
    addresses: Sequence[RingAddress], n_targets: int, slots: int
) -> dict[str, Fraction]:
    """Share of the ring's positions each target serves (position p is served by the
    first owned point at or below p, wrapping around)."""
    points = slots if MIN_POINTS <= slots <= MAX_POINTS else MIN_POINTS
    ring = continuum(addresses, n_targets, slots)
    if not ring:
        return {}
    owned = sorted(ring)
    counts: dict[str, int] = {}
    # positions owned[j] .. owned[j+1]-1 walk down to owned[j]; below the first owned
    # point a lookup wraps around to the last one.
    for j, start in enumerate(owned):
        end = owned[j + 1] if j + 1 < len(owned) else points + 1
        span = end - start
        if j == 0:
            span += start - 1
        target = addresses[ring[start]].target
        counts[target] = counts.get(target, 0) + span
    return {t: Fraction(c, points) for t, c in counts.items()}


def variant_ring_shares(
    addresses: Sequence[RingAddress],
    variant_of: Mapping[str, str],
    n_targets: int,
    slots: int,
) -> dict[str, Fraction]:
    shares: dict[str, Fraction] = {}
    for target, share in hash_space_shares(addresses, n_targets, slots).items():
        variant = variant_of.get(target)
        if variant is not None:
            shares[variant] = shares.get(variant, Fraction(0)) + share
    return shares
