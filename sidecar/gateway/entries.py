"""The hot path: one ``json.loads`` per batch, then one tight loop that tallies entries.

What an entry holds is Kong's log serializer (``kong/pdk/log.lua`` ``serialize``): every
version we record (2.8.5, 3.4.2, 3.9.3) has ``service.host``, ``response.status``,
``latencies.{request,proxy}`` and ``tries[]`` of ``{ip, port, balancer_start,
balancer_latency}``; 3.x adds ``upstream_status`` and ``*_ns`` fields, 3.9 ``source`` and
``latencies.receive``, 2.8 has none of those. Only the shared fields are read.

- ``route`` is the matched route entity (``ctx.route``; absent when none matched, e.g. a
  global plugin answered first), the same shape in 2.8 and 3.x: its ``name`` (optional in
  Kong) else its ``id`` becomes the series' ``route`` label, ``""`` when there is none
  (``route_of``). The label's cardinality is capped where the series are fed
  (``sidecar.gateway.routes``), not here.

- ``tries`` is ``ctx.balancer_data.tries``: absent (nil drops the key) or an empty table
  (cjson encodes it as ``{}``) when Kong answered without reaching a target – auth plugins,
  "no healthy upstream" 503s. The last try is the target that produced the response.
- ``latencies.proxy`` is ``ctx.KONG_WAITING_TIME or -1``: -1 when no target answered; such
  entries count, with no upstream-latency observation.

- ``latencies.request`` is ``tonumber(var.request_time) * 1000`` (ms, int or float). A latency
  is refused (``bad_latencies``) unless it is a real number (not a boolean, not NaN/Infinity)
  between 0 and ``MAX_LATENCY_MS``: one ``1e308`` would turn the histogram's sum into
  ``+Inf`` for the life of the process.
- ``service.host`` must pass the upstream-name rule of the API (``check_upstream_name``)
  before it reaches Kong: ``.`` or ``..`` would make ``/upstreams/{host}/health`` another
  Admin API path. Such entries count as ``invalid_upstream``, with no Kong call.

The loop reads fields in a ``try`` and leaves anything odd to ``_classify``, so a normal
entry pays for dict lookups, two range checks and two bisects only.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sidecar.core.names import is_upstream_name
from sidecar.errors import ApiError

CODE_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
Address = tuple[str, int]
# The largest timeout Kong accepts (``typedefs.timeout``: 0 .. 2^31-2 ms, kong/db/schema/
# typedefs.lua); a latency beyond it is not a measurement, and refusing it keeps sums finite.
MAX_LATENCY_MS = 2**31 - 2
_NUMBER_TYPES = frozenset({int, float})  # ``type(x) in`` refuses bool, a subclass of int


class Lookup(Protocol):
    """Where variants come from (``VariantResolver`` in production)."""

    def resolve(self, host: str) -> tuple[str | None, str]:
        """``(upstream, "")`` for a host that names a managed upstream exactly as Kong stores
        it, else ``(None, reason)``: what keeps client spellings out of the labels."""
        ...

    def map_for(self, upstream: str) -> Mapping[Address, str] | None:
        """The current ``(ip, port) -> variant`` map; None when Kong has no such upstream."""
        ...

    def on_miss(self, upstream: str, address: Address) -> tuple[str | None, str]:
        """A second chance for an address the map lacks: ``(variant, "")`` or
        ``(None, reason)``."""
        ...


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_batch(body: bytes | str) -> list[Any]:
    """A JSON array of entries (batching on) or one object (``max_batch_size`` 1, which
    Kong sends bare: ``send_entries`` in ``kong/plugins/http-log/handler.lua``)."""
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise ApiError(
            400, "invalid_batch", "expected a JSON array of http-log entries or one entry"
        )
    if not data:
        raise ApiError(400, "empty_batch", "the batch holds no entries")
    return data


@dataclass(slots=True)
class Series:
    """What one (upstream, variant) got in one batch; bucket lists are non-cumulative."""

    codes: dict[str, int]
    request: list[int]
    request_sum: float = 0.0
    upstream: list[int] = field(default_factory=list)
    upstream_sum: float = 0.0
    upstream_count: int = 0

    @classmethod
    def empty(cls, buckets: int) -> Series:
        return cls({}, [0] * buckets, 0.0, [0] * buckets)

    def add(self, other: Series) -> None:
        """Fold ``other`` in (routes past the cap share one ``route="other"`` series)."""
        for code_class, count in other.codes.items():
            self.codes[code_class] = self.codes.get(code_class, 0) + count
        self.request = [a + b for a, b in zip(self.request, other.request, strict=True)]
        self.request_sum += other.request_sum
        self.upstream = [a + b for a, b in zip(self.upstream, other.upstream, strict=True)]
        self.upstream_sum += other.upstream_sum
        self.upstream_count += other.upstream_count

    @property
    def count(self) -> int:
        return sum(self.codes.values())


SeriesKey = tuple[str, str, str]  # (upstream, variant, route)


def route_of(entry: Mapping[str, Any]) -> str:
    """The ``route`` label of an entry: the route's name, else its id, else ``""``."""
    route = entry.get("route")
    if type(route) is not dict:
        return ""
    name = route.get("name")
    if type(name) is str and name:
        return name
    route_id = route.get("id")
    return route_id if type(route_id) is str else ""


@dataclass(slots=True)
class Tally:
    series: dict[SeriesKey, Series] = field(default_factory=dict)
    unmapped: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    unknown_upstreams: set[str] = field(default_factory=set)
    accepted: int = 0

    @property
    def unmapped_count(self) -> int:
        return sum(self.unmapped.values())

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())


_UNSEEN = object()


def tally(
    entries: list[Any],
    lookup: Lookup,
    bounds: tuple[float, ...],
    *,
    upstream: str | None = None,
    allowed: Callable[[str], bool] | None = None,
) -> Tally:
    """Count every entry once: accepted, unmapped (known upstream, no variant) or rejected.

    ``bounds`` are the histogram's upper bounds including ``inf``. ``upstream`` overrides
    ``service.host``; ``allowed`` restricts the upstreams the caller may report on.
    """
    out = Tally()
    series = out.series
    maps: dict[str, Any] = {}
    n_buckets = len(bounds)
    code_class = CODE_CLASS
    for entry in entries:
        try:
            name = upstream if upstream is not None else entry["service"]["host"]
            last = entry["tries"][-1]
            ip = last["ip"]
            port = last["port"]
            status = entry["response"]["status"]
            cls = code_class[status // 100]
            latencies = entry["latencies"]
            request_ms = latencies["request"]
            proxy_ms = latencies["proxy"]
            if (
                not _is_latency(request_ms)
                or not (proxy_ms == -1 or _is_latency(proxy_ms))
                or type(status) is not int
                or type(ip) is not str
                or type(port) is not int
            ):
                raise ValueError
            request_bucket = bisect_left(bounds, request_ms)
            proxy_bucket = bisect_left(bounds, proxy_ms) if proxy_ms >= 0 else -1
            if type(name) is not str:
                raise TypeError
            amap = maps.get(name, _UNSEEN)
        except (KeyError, TypeError, IndexError, ValueError):
            _slow(entry, upstream, out, lookup, maps, allowed)
            continue
        if amap is _UNSEEN:
            amap = maps[name] = _map(name, lookup, allowed)
        if type(amap) is str:
            _reject_upstream(out, name, amap)
            continue
        address = (ip, port)
        variant = amap.get(address)
        if variant is None:
            variant, reason = lookup.on_miss(name, address)
            if variant is None:
                _count(out.unmapped, (name, reason))
                continue
            refreshed = lookup.map_for(name)  # a miss may have refreshed the map
            maps[name] = "unknown_upstream" if refreshed is None else refreshed
        key = (name, variant, route_of(entry))
        s = series.get(key)
        if s is None:
            s = series[key] = Series.empty(n_buckets)
        s.codes[cls] = s.codes.get(cls, 0) + 1
        s.request[request_bucket] += 1
        s.request_sum += request_ms
        if proxy_bucket >= 0:
            s.upstream[proxy_bucket] += 1
            s.upstream_sum += proxy_ms
            s.upstream_count += 1
        out.accepted += 1
    return out


def _map(name: str, lookup: Lookup, allowed: Callable[[str], bool] | None) -> Any:
    """The upstream's address map, or why its entries are rejected (a reason string).
    ``name`` is then the series' label: ``resolve`` admits only the name as Kong stores it."""
    if not is_upstream_name(name):
        return "invalid_upstream"  # never a Kong path: '..' climbs out of /upstreams/{u}
    if allowed is not None and not allowed(name):
        return "upstream_not_allowed"
    resolved, reason = lookup.resolve(name)
    if resolved is None:
        return reason
    amap = lookup.map_for(resolved)
    return "unknown_upstream" if amap is None else amap


def _reject_upstream(out: Tally, name: str, reason: str) -> None:
    _count(out.rejected, reason)
    if reason == "unknown_upstream" and len(out.unknown_upstreams) < 10:
        out.unknown_upstreams.add(name)


def _count(counter: dict[Any, int], key: Any) -> None:
    counter[key] = counter.get(key, 0) + 1


def _slow(
    entry: Any,
    upstream: str | None,
    out: Tally,
    lookup: Lookup,
    maps: dict[str, Any],
    allowed: Callable[[str], bool] | None,
) -> None:
    """An entry the fast path could not read: say why, and never count it as accepted."""
    kind, reason, name = _classify(entry, upstream)
    if kind == "rejected" or name is None:
        _count(out.rejected, reason)
        return
    amap = maps.get(name, _UNSEEN)
    if amap is _UNSEEN:
        amap = maps[name] = _map(name, lookup, allowed)
    if type(amap) is str:
        _reject_upstream(out, name, amap)
        return
    _count(out.unmapped, (name, reason))


def _is_latency(value: Any) -> bool:
    """A number of milliseconds Kong could have measured: NaN and Infinity fail the range."""
    return type(value) in _NUMBER_TYPES and 0 <= value <= MAX_LATENCY_MS


def _classify(entry: Any, upstream: str | None) -> tuple[str, str, str | None]:
    if not isinstance(entry, dict):
        return "rejected", "not_an_object", None
    name = upstream
    if name is None:
        service = entry.get("service")
        host = service.get("host") if isinstance(service, dict) else None
        if not isinstance(host, str) or not host:
            return "rejected", "no_service", None
        name = host
    response = entry.get("response")
    status = response.get("status") if isinstance(response, dict) else None
    if type(status) is not int or status // 100 not in CODE_CLASS:
        return "rejected", "bad_status", name
    latencies = entry.get("latencies")
    if not isinstance(latencies, dict):
        return "rejected", "bad_latencies", name
    request_ms, proxy_ms = latencies.get("request"), latencies.get("proxy")
    if not (_is_latency(request_ms) and (proxy_ms == -1 or _is_latency(proxy_ms))):
        return "rejected", "bad_latencies", name
    tries = entry.get("tries")
    if tries is None or tries == [] or tries == {}:
        return "unmapped", "no_tries", name
    if not isinstance(tries, list):
        return "rejected", "bad_tries", name
    last = tries[-1]
    if not isinstance(last, dict):
        return "rejected", "bad_tries", name
    ip, port = last.get("ip"), last.get("port")
    if type(ip) is not str or type(port) is not int or not 0 < port < 65536:
        return "rejected", "bad_tries", name
    return "rejected", "malformed", name
