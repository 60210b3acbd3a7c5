"""``ip:port`` -> variant, per upstream, from what Kong's balancer resolved.

A log entry names the address the balancer picked, not the target string, so the map is
built from ``GET /upstreams/{u}/health`` (``data.addresses`` per target, tags included): a
hostname target with three A records gives three addresses of one variant. Untagged
targets count as stable (as in ``sidecar.traffic``); a variant tag we don't know becomes
``other`` so a typo cannot mint label values. Where the health data has no addresses
(a control plane, Konnect, a balancer not built yet) an IP-literal target maps to itself;
a hostname target then stays unmapped, and its entries count as ``unknown_address``.

The health endpoint answers for the node we ask, and DNS can differ per node: the map is a
union over time, refreshed on a TTL and, rate-limited, when an entry names an unknown address.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sidecar.core.split import VARIANTS
from sidecar.errors import ApiError, from_kong_error
from sidecar.kong.errors import KongError, KongNotFound
from sidecar.kong.models import UpstreamHealth
from sidecar.traffic import variant_from_tags

log = logging.getLogger("kong_canary.gateway")
Address = tuple[str, int]
UNKNOWN_ADDRESS = "unknown_address"
AMBIGUOUS_ADDRESS = "ambiguous_address"
MAX_ALIASES = 4096  # remembered spellings of addresses (IPv6 forms); bounded memory
MAX_UPSTREAMS = 1024  # names come from posted entries: forget unknown ones past this


def canonical_ip(ip: str) -> str:
    """One spelling per address: Kong's targets expand IPv6 (``[0000:...:0001]``), the
    balancer may not."""
    text = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return ip


@dataclass(frozen=True)
class AddressMap:
    variants: Mapping[Address, str]
    ambiguous: frozenset[Address] = field(default_factory=frozenset)


def _variant(tags: tuple[str, ...]) -> str:
    variant = variant_from_tags(tags) or "stable"
    return variant if variant in VARIANTS else "other"


def _target_address(target: str) -> Address | None:
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        return None
    ip = canonical_ip(host)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return None  # a hostname: only the balancer knows what it resolved to
    return ip, int(port)


def build_address_map(health: UpstreamHealth) -> AddressMap:
    """Pure: every resolved address of every target, keyed by its canonical spelling (and
    the spelling Kong used, when different). Two variants on one address: ambiguous."""
    seen: dict[Address, str] = {}
    ambiguous: set[Address] = set()
    for target in health.targets:
        variant = _variant(target.tags)
        if target.addresses is not None:
            found = [(a.ip, a.port) for a in target.addresses]
        else:
            single = _target_address(target.target)
            found = [single] if single is not None else []
        for ip, port in found:
            for key in {(ip, port), (canonical_ip(ip), port)}:
                if seen.get(key, variant) != variant:
                    ambiguous.add(key)
                seen[key] = variant
    variants = {k: v for k, v in seen.items() if k not in ambiguous}
    return AddressMap(variants, frozenset(ambiguous))


@dataclass
class _Known:
    amap: AddressMap | None  # None: Kong has no such upstream
    fetched_at: float
    tried_at: float


class VariantResolver:
    """Per-process cache of AddressMaps, shared by request threads.

    - a map older than ``ttl`` is fetched again on the next batch (one Kong call per
      upstream per ``ttl`` per worker);
    - an address the map lacks triggers a fetch at most every ``miss_interval`` seconds, so a
      target added mid-canary is picked up fast and a stream of strangers costs nothing;
    - Kong down: keep counting with the stale map; with no map at all, answer 503 so Kong's
      queue retries the batch later.
    """

    def __init__(
        self,
        fetch: Callable[[str], UpstreamHealth],
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = 30.0,
        miss_interval: float = 5.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl
        self._miss_interval = miss_interval
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()
        self._aliases: dict[Address, Address] = {}
        self.fetches = 0

    def map_for(self, upstream: str) -> Mapping[Address, str] | None:
        known = self._known.get(upstream)
        now = self._clock()
        if known is None or (
            now - known.fetched_at >= self._ttl and now - known.tried_at >= self._miss_interval
        ):
            known = self._refresh(upstream, now)
        return None if known.amap is None else known.amap.variants

    def on_miss(self, upstream: str, address: Address) -> tuple[str | None, str]:
        known = self._known.get(upstream)
        now = self._clock()
        if known is None or now - known.tried_at >= self._miss_interval:
            known = self._refresh(upstream, now)
        if known.amap is None:
            return None, UNKNOWN_ADDRESS
        variants = known.amap.variants
        variant = variants.get(address)
        if variant is None:
            alias = self._alias(address)
            variant = variants.get(alias)
            if variant is None:
                ambiguous = alias in known.amap.ambiguous or address in known.amap.ambiguous
                return None, AMBIGUOUS_ADDRESS if ambiguous else UNKNOWN_ADDRESS
        return variant, ""

    def _alias(self, address: Address) -> Address:
        alias = self._aliases.get(address)
        if alias is None:
            if len(self._aliases) >= MAX_ALIASES:
                self._aliases.clear()
            alias = self._aliases[address] = (canonical_ip(address[0]), address[1])
        return alias

    def _refresh(self, upstream: str, now: float) -> _Known:
        with self._lock:
            known = self._known.get(upstream)
            if known is not None and known.tried_at >= now:  # another thread just did it
                return known
            self.fetches += 1
            try:
                amap: AddressMap | None = build_address_map(self._fetch(upstream))
            except KongNotFound:
                amap = None
            except KongError as exc:
                if known is None:
                    raise from_kong_error(exc) from exc
                log.warning("keeping the stale address map of %s: %s", upstream, exc)
                known.tried_at = now
                return known
            if len(self._known) >= MAX_UPSTREAMS:
                self._forget_unknown()
            known = self._known[upstream] = _Known(amap, now, now)
            return known

    def _forget_unknown(self) -> None:
        for name in [n for n, k in self._known.items() if k.amap is None]:
            del self._known[name]
        if len(self._known) >= MAX_UPSTREAMS:
            self._known.clear()


def unknown_upstream(upstream: str) -> ApiError:
    return ApiError(
        404,
        "unknown_upstream",
        f"Kong has no upstream {upstream!r} to map http-log entries onto",
        field="upstream",
    )
