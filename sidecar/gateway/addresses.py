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

Which upstream an entry belongs to, and its label, must not be the client's spelling (every
spelling would be a new set of series). ``resolve`` follows Kong's own rules:

- Kong's balancer finds a service's upstream by exact name: ``get_upstream_by_name`` keys
  ``ws_id .. ":" .. name`` (``kong/runloop/balancer/upstreams.lua``). A ``service.host`` in
  another case is not that upstream, and Kong's Admin API agrees (``select_by_name`` is exact).
- A UUID-shaped host never reaches an upstream: the balancer looks names up only, and the
  Admin API reads a UUID-shaped key as an id (``is_valid_uuid``, case-insensitive, in
  ``kong/api/endpoints.lua``), so ``/upstreams/<ID in any case>/health`` would answer for the
  upstream the id names. Such hosts are unknown, with no Kong call. The ``?upstream=``
  override names upstreams as the API does (name or id): ``name_of`` turns an id into the name.
- An upstream is *managed* when one of its targets carries our ``variant=``/``managed-by`` tag;
  an upstream we never tagged gets no series (``unmanaged_upstream``), so the labels are the
  names of upstreams a canary ran on, a set operators bound, not clients.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sidecar.core.split import VARIANTS
from sidecar.core.tags import MANAGED_TAG, VARIANT_TAG_PREFIX
from sidecar.errors import ApiError, from_kong_error
from sidecar.kong.errors import KongError, KongNotFound
from sidecar.kong.models import Upstream, UpstreamHealth, is_entity_id
from sidecar.traffic import variant_from_tags

log = logging.getLogger("kong_canary.gateway")
Address = tuple[str, int]
UNKNOWN_ADDRESS = "unknown_address"
AMBIGUOUS_ADDRESS = "ambiguous_address"
UNKNOWN_UPSTREAM = "unknown_upstream"
UNMANAGED_UPSTREAM = "unmanaged_upstream"
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
    managed: bool = True  # a target carries our tags (see the module's docstring)


def _is_ours(tags: tuple[str, ...]) -> bool:
    return any(t == MANAGED_TAG or t.startswith(VARIANT_TAG_PREFIX) for t in tags)


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
    managed = any(_is_ours(target.tags) for target in health.targets)
    return AddressMap(variants, frozenset(ambiguous), managed)


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
        upstream: Callable[[str], Upstream] | None = None,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = 30.0,
        miss_interval: float = 5.0,
    ) -> None:
        self._fetch = fetch
        self._upstream = upstream
        self._names_by_id: dict[str, str | None] = {}
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

    def resolve(self, host: str) -> tuple[str | None, str]:
        """``(name, "")`` when ``host`` is a managed upstream's name as Kong stores it, else
        ``(None, reason)``; see the module's docstring."""
        if is_entity_id(host):
            return None, UNKNOWN_UPSTREAM
        if self.map_for(host) is None:
            return None, UNKNOWN_UPSTREAM
        known = self._known[host]
        if known.amap is not None and not known.amap.managed:
            # a canary may just have tagged its targets: look again, as for an unknown address
            now = self._clock()
            if now - known.tried_at >= self._miss_interval:
                known = self._refresh(host, now)
            if known.amap is None:
                return None, UNKNOWN_UPSTREAM
            if not known.amap.managed:
                return None, UNMANAGED_UPSTREAM
        return host, ""

    def name_of(self, name_or_id: str) -> str | None:
        """The upstream's name for a name or an id in any case (one Kong call per id, then
        cached); None when Kong has none."""
        if not is_entity_id(name_or_id):
            return name_or_id if self.map_for(name_or_id) is not None else None
        key = name_or_id.lower()
        if key in self._names_by_id:
            return self._names_by_id[key]
        if self._upstream is None:
            return None
        try:
            name: str | None = self._upstream(key).name
        except KongNotFound:
            name = None
        except KongError as exc:
            raise from_kong_error(exc) from exc
        with self._lock:
            if len(self._names_by_id) >= MAX_UPSTREAMS:
                self._names_by_id.clear()
            self._names_by_id[key] = name
        return name

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
