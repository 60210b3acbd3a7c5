"""``KongAdmin``: upstreams and targets over Kong 2.x, 3.x and Konnect, with one interface.

What differs between them, and how it is hidden (Kong/kong: ``kong/db/dao/targets.lua`` and
``kong/api/routes/upstreams.lua`` for targets, ``kong/api/endpoints.lua`` for lists and errors,
``kong/db/strategies/off/init.lua`` for DB-less writes; Konnect: the control-plane OpenAPI,
Kong/developer.konghq.com ``api-specs/konnect/control-planes-config/v2/openapi.yaml``):

- Updating a target: Kong 2.2+ and 3.x ``PATCH /upstreams/{u}/targets/{host:port}`` (partial).
  We never "POST to update": 2.x answers 200 + ``Deprecation: true``, 3.x answers 409. Kong's
  PUT is not an upsert (partial, 404 when missing). Konnect has no PATCH, addresses targets
  by id only and its PUT *replaces*, so we look the target up and PUT target+weight+tags.
- Konnect references upstreams by id: names are resolved once and cached.
- Nested target lists cap ``size`` at 1000 silently and their ``next`` drops ``size``, so we
  always send ``size`` ourselves with the returned ``offset`` and never follow ``next``.
- DB-less nodes and data planes refuse writes with 405: we refuse first, without sending.

Retries: only GETs are retried (``read_retries`` times, short exponential backoff), and only
for KongUnavailable (timeouts, resets, 5xx). Writes are never retried here: a PATCH or POST
whose answer was lost may have been applied, and re-sending a create could make a duplicate or
a misleading 409. The one safe case, a connection that was never established, is already
retried by ``httpx.HTTPTransport(retries=...)`` (see ``sidecar.kong.http``).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from sidecar.kong import pages, parse, wire
from sidecar.kong.errors import (
    KongConflict,
    KongNotFound,
    KongReadOnly,
    KongUnavailable,
    KongValidationError,
)
from sidecar.kong.models import (
    Flavour,
    NodeInfo,
    Target,
    Upstream,
    UpstreamHealth,
    is_entity_id,
    normalise_target,
)
from sidecar.kong.parse import Call

MAX_WEIGHT = 65535  # targets.lua since 2.0.5/2.1.0 (#5871); Konnect the same
_READ_ONLY_UPSTREAM_FIELDS = ("created_at", "updated_at")


class KongAdmin:
    """Thread-safe: share one per process, over the one ``httpx.Client`` (build_http_client)."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        flavour: Flavour | None = None,
        read_retries: int = 2,
        backoff: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if read_retries < 0:
            raise ValueError("read_retries must be >= 0")
        self._http = http
        self._explicit_flavour = flavour
        self._read_retries = read_retries
        self._backoff = backoff
        self._sleep = sleep
        self._lock = threading.Lock()
        self._info: NodeInfo | None = None
        self._upstream_ids: dict[str, str] = {}  # Konnect: name -> id
        # _is_konnect's answer for the base URL it was read from (see there)
        self._konnect_for: tuple[httpx.URL, bool] | None = None

    def close(self) -> None:
        """Close the connections to Kong (kept alive between calls)."""
        self._http.close()

    def over(self, http: httpx.Client, *, read_retries: int | None = None) -> KongAdmin:
        """The same kind of client over another connection: another node of the cluster
        (``sidecar.propagation`` reads each node's balancer), same flavour and backoff."""
        return KongAdmin(
            http,
            flavour=self._explicit_flavour,
            read_retries=self._read_retries if read_retries is None else read_retries,
            backoff=self._backoff,
            sleep=self._sleep,
        )

    # -- node ---------------------------------------------------------------------------------

    def info(self) -> NodeInfo:
        """``GET /`` once, then cached (a node does not change version under us).

        Konnect has no ``GET /``: its info is synthesised. Konnect is recognised by an explicit
        flavour or by a base URL under ``/core-entities`` (as build_http_client makes it).
        """
        if self._info is None:
            info = self._fetch_info(retries=self._read_retries)
            with self._lock:
                if self._info is None:
                    self._info = info
        return self._info

    @property
    def flavour(self) -> Flavour:
        """The explicit flavour if one was given, otherwise detected from ``GET /`` once."""
        return self._explicit_flavour or self.info().flavour

    def ping(self) -> NodeInfo:
        """Readiness: one request that proves reachability *and* credentials, not retried
        (a readiness probe should report what is, not wait). Konnect: list one upstream."""
        if self._is_konnect():
            self._get("/upstreams", params={"size": 1}, retries=0)
            return parse.konnect_info()
        return self._fetch_info(retries=0)

    def _fetch_info(self, *, retries: int) -> NodeInfo:
        if self._is_konnect():
            return parse.konnect_info()
        body = self._get("/", retries=retries, url=self._admin_root())  # bypass the workspace
        return parse.node_info(body, Call("GET", "/"), flavour=self._explicit_flavour)

    def _is_konnect(self) -> bool:
        """Asked before most calls (five times per ramp step). ``URL.path`` percent-decodes
        the path on every access, so the answer is kept with the ``httpx.URL`` it came from
        (immutable; ``Client.base_url`` hands out the same instance until it is replaced)."""
        if self._explicit_flavour is not None:
            return self._explicit_flavour is Flavour.KONNECT
        base = self._http.base_url
        known = self._konnect_for
        if known is None or known[0] is not base:
            known = self._konnect_for = (base, "/core-entities" in base.path)
        return known[1]

    # -- upstreams ----------------------------------------------------------------------------

    def upstream(self, name_or_id: str) -> Upstream:
        """KongNotFound when it does not exist."""
        path = f"/upstreams/{self._upstream_ref(name_or_id)}"
        return parse.upstream(self._get(path), Call("GET", path))

    def upstreams(self, *, tagged: str | None = None) -> list[Upstream]:
        """Every upstream, or only those carrying the tag ``tagged``: Kong filters on its side
        (``GET /upstreams?tags=…``, ``kong/api/endpoints.lua`` on 2.8.5/3.x, Konnect's
        ``list-upstream`` the same), so a sweep for our few upstreams among thousands reads
        a page of ours, not every page of everyone's."""
        call = Call("GET", "/upstreams")
        params = {"tags": tagged} if tagged is not None else None
        return [
            parse.upstream(item, call) for item in self._collect("/upstreams", params=params)[0]
        ]

    def update_upstream(self, upstream: str, **fields: Any) -> Upstream:
        """Partial update (e.g. ``hash_on``). Beware Kong's shorthands: a non-``none`` hash_on
        forces consistent-hashing, ``hash_on="none"`` forces round-robin.

        Konnect has no PATCH and its PUT replaces, so there we merge into the current upstream.
        """
        if not fields:
            raise ValueError("update_upstream needs at least one field")
        ref = self._upstream_ref(upstream)
        path = f"/upstreams/{ref}"
        if self._is_konnect():
            current = parse.entity(self._get(path), Call("GET", path))
            body = {k: v for k, v in current.items() if k not in _READ_ONLY_UPSTREAM_FIELDS}
            body.update(fields)
            return parse.upstream(self._write("PUT", path, body), Call("PUT", path))
        return parse.upstream(self._write("PATCH", path, dict(fields)), Call("PATCH", path))

    def create_upstream(self, name: str, tags: Sequence[str] = ()) -> Upstream:
        """``POST /upstreams``: KongConflict when the name is taken (``name`` is unique on
        every flavour). Never an upsert (no PUT), so it is an atomic "create if absent"."""
        self._ensure_writable("POST", "/upstreams")
        body: dict[str, Any] = {"name": name}
        if tags:
            body["tags"] = _tags_arg(tags)
        return parse.upstream(self._write("POST", "/upstreams", body), Call("POST", "/upstreams"))

    def delete_upstream_by_id(self, upstream_id: str) -> None:
        """``DELETE /upstreams/{id}``: only that incarnation (a name could have been re-created
        since). Kong answers 204 whether or not it existed; KongNotFound is possible too."""
        if not is_entity_id(upstream_id):
            raise KongValidationError("not an entity id", fields={"id": upstream_id})
        self._ensure_writable("DELETE", "/upstreams/{id}")
        self._write("DELETE", f"/upstreams/{_segment(upstream_id)}", None)

    # -- targets ------------------------------------------------------------------------------

    def targets(self, upstream: str) -> list[Target]:
        """Every target of the upstream, all pages (nested pagination quirks handled)."""
        path = f"/upstreams/{self._upstream_ref(upstream)}/targets"
        call = Call("GET", path)
        return [parse.target(item, call) for item in self._collect(path)[0]]

    def target(self, upstream: str, target: str) -> Target | None:
        """None when the upstream exists but has no such target; KongNotFound when the
        upstream itself is missing (Kong answers both with the same 404, so we ask again)."""
        wanted = _target_arg(target)
        if self._is_konnect():
            return self._konnect_find(upstream, wanted)
        path = f"/upstreams/{self._upstream_ref(upstream)}/targets/{_segment(wanted)}"
        try:
            return parse.target(self._get(path), Call("GET", path))
        except KongNotFound:
            self.upstream(upstream)  # raises KongNotFound if it is the upstream that is missing
            return None

    def create_target(
        self, upstream: str, target: str, weight: int, tags: Sequence[str] = ()
    ) -> Target:
        """Create a new target. KongConflict when it exists already, on every flavour.

        Kong 2.x would silently *update* an existing target on POST (200, ``Deprecation:
        true``), so there we check first; a concurrent creator can still slip in between.
        """
        wanted = _target_arg(target)
        body: dict[str, Any] = {"target": wanted, "weight": _weight_arg(weight)}
        if tags:
            body["tags"] = _tags_arg(tags)
        self._ensure_writable("POST", "/upstreams/{u}/targets")
        if self.flavour is Flavour.KONG_2 and self.target(upstream, wanted) is not None:
            raise KongConflict(
                f"target {wanted} already exists in upstream {upstream}",
                name="unique constraint violation",
                fields={"target": wanted},
            )
        path = f"/upstreams/{self._upstream_ref(upstream)}/targets"
        return parse.target(self._write("POST", path, body), Call("POST", path))

    def update_target(
        self,
        upstream: str,
        target: str,
        *,
        weight: int | None = None,
        tags: Sequence[str] | None = None,
    ) -> Target:
        """Change weight and/or tags of an existing target (KongNotFound when missing)."""
        if weight is None and tags is None:
            raise ValueError("update_target needs weight or tags")
        wanted = _target_arg(target)
        body: dict[str, Any] = {}
        if weight is not None:
            body["weight"] = _weight_arg(weight)
        if tags is not None:
            body["tags"] = _tags_arg(tags)
        self._ensure_writable("PATCH", "/upstreams/{u}/targets/{t}")
        if self._is_konnect():
            current = self._konnect_require(upstream, wanted)
            replacement = {
                "target": current.target,
                "weight": body.get("weight", current.weight),
                "tags": body.get("tags", list(current.tags)),
            }
            path = f"/upstreams/{self._upstream_ref(upstream)}/targets/{_segment(current.id)}"
            return parse.target(self._write("PUT", path, replacement), Call("PUT", path))
        path = f"/upstreams/{self._upstream_ref(upstream)}/targets/{_segment(wanted)}"
        return parse.target(self._write("PATCH", path, body), Call("PATCH", path))

    def delete_target(self, upstream: str, target: str) -> None:
        """Delete the target. A missing target (or upstream) raises KongNotFound on every
        flavour, although Konnect's own DELETE would answer 204 for it."""
        wanted = _target_arg(target)
        self._ensure_writable("DELETE", "/upstreams/{u}/targets/{t}")
        ident = self._konnect_require(upstream, wanted).id if self._is_konnect() else wanted
        path = f"/upstreams/{self._upstream_ref(upstream)}/targets/{_segment(ident)}"
        self._write("DELETE", path, None)

    def health(self, upstream: str) -> UpstreamHealth:
        """``/upstreams/{u}/health`` of the node we talk to, all pages.

        Konnect (a control plane, no balancer) has no health endpoint: the targets are
        returned with ``health``/``addresses`` None, as Kong does before a balancer exists.
        """
        if self._is_konnect():
            targets = self.targets(upstream)
            call = Call("GET", "/upstreams/{u}/targets")
            items = [
                {"id": t.id, "target": t.target, "weight": t.weight, "tags": list(t.tags)}
                for t in targets
            ]
            return parse.upstream_health(items, None, call)
        path = f"/upstreams/{self._upstream_ref(upstream)}/health"
        items, first = self._collect(path)
        return parse.upstream_health(items, first.get("node_id"), Call("GET", path))

    # -- cluster state (sidecar.propagation) --------------------------------------------------

    def balancer_health(self, upstream: str) -> dict[str, Any] | None:
        """``GET /upstreams/{u}/health?balancer_health=1``'s ``data``: this node's balancer
        (None when the node has none for the upstream yet)."""
        path = f"/upstreams/{self._upstream_ref(upstream)}/health"
        body = self._get(path, params={"balancer_health": "1"})
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else None

    def health_rows(self, upstream: str) -> list[dict[str, Any]]:
        """Every row of this node's ``/upstreams/{u}/health``, as Kong wrote it (each row's
        ``data.nodeWeight`` is what the node's balancer holds)."""
        return self._collect(f"/upstreams/{self._upstream_ref(upstream)}/health")[0]

    def data_planes(self) -> list[dict[str, Any]]:
        """A hybrid control plane's ``GET /clustering/data-planes`` (all pages), outside any
        workspace prefix (``kong/api/routes/clustering.lua`` is not workspace-scoped)."""
        url = self._admin_root().join("clustering/data-planes")
        return self._collect("/clustering/data-planes", url=url)[0]

    def configuration(self) -> dict[str, Any]:
        """The node's ``GET /`` ``configuration`` (``db_update_frequency`` and the like); not
        cached, unlike ``info()``. Empty when Kong does not send one."""
        body = self._get("/", url=self._admin_root())
        config = body.get("configuration") if isinstance(body, dict) else None
        return config if isinstance(config, dict) else {}

    def konnect_expected_config_hash(self) -> str:
        """Konnect: the control plane's ``GET …/expected-config-hash`` ``expected_hash``."""
        url = httpx.URL(f"{self._konnect_root()}/expected-config-hash")
        body = self._get("/expected-config-hash", url=url)
        return str(body.get("expected_hash")) if isinstance(body, dict) else ""

    def konnect_nodes(self) -> list[dict[str, Any]]:
        """Konnect: the control plane's ``GET …/nodes`` ``items`` (one page of 100)."""
        url = httpx.URL(f"{self._konnect_root()}/nodes")
        body = self._get("/nodes", params={"page[size]": 100}, url=url)
        items = body.get("items") if isinstance(body, dict) else None
        return [n for n in items or [] if isinstance(n, dict)]

    def _admin_root(self) -> httpx.URL:
        """The Admin API root, outside any workspace prefix (``AdminClient.admin_root``)."""
        root = getattr(self._http, "admin_root", None)
        return root if isinstance(root, httpx.URL) else self._http.base_url

    def _konnect_root(self) -> str:
        return str(self._http.base_url).rstrip("/").removesuffix("/core-entities")

    # -- plumbing -----------------------------------------------------------------------------

    def _upstream_ref(self, name_or_id: str) -> str:
        """The path segment for an upstream: Kong takes name or id; Konnect wants the id."""
        if not name_or_id:
            raise KongValidationError("upstream must not be empty", fields={"upstream": "empty"})
        if not self._is_konnect() or is_entity_id(name_or_id):
            return _segment(name_or_id)
        cached = self._upstream_ids.get(name_or_id)
        if cached is not None:
            return _segment(cached)
        ident = self._konnect_resolve(name_or_id)
        with self._lock:
            self._upstream_ids[name_or_id] = ident
        return _segment(ident)

    def _konnect_resolve(self, name: str) -> str:
        # Konnect documents only {UpstreamId}; Kong's endpoint_key lets a name work too, so try
        # that first and fall back to scanning the list.
        path = f"/upstreams/{_segment(name)}"
        try:
            return parse.entity(self._get(path), Call("GET", path))["id"]
        except KongNotFound:
            pass
        items, _ = self._collect("/upstreams")
        for item in items:
            if item.get("name") == name and isinstance(item.get("id"), str):
                return item["id"]
        raise KongNotFound(f"upstream {name!r} not found", status=404, method="GET", path=path)

    def _konnect_find(self, upstream: str, wanted: str) -> Target | None:
        for candidate in self.targets(upstream):
            if candidate.target == wanted:
                return candidate
        return None

    def _konnect_require(self, upstream: str, wanted: str) -> Target:
        found = self._konnect_find(upstream, wanted)
        if found is None:
            raise KongNotFound(
                f"target {wanted} not found in upstream {upstream}",
                status=404,
                method="GET",
                path=f"/upstreams/{upstream}/targets",
            )
        return found

    def _ensure_writable(self, method: str, path: str) -> None:
        if not self.info().writable:
            raise KongReadOnly(wire.READ_ONLY_MESSAGE, method=method, path=path)

    def _collect(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        url: httpx.URL | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """All items of a paginated list, plus the first page (for ``node_id``)."""
        return pages.collect(partial(self._get, path, url=url), Call("GET", path), params=params)

    def _get(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        retries: int | None = None,
        url: httpx.URL | None = None,
    ) -> Any:
        attempts = (self._read_retries if retries is None else retries) + 1
        for attempt in range(attempts):
            try:
                return wire.call(self._http, "GET", path, params=params, url=url)
            except KongUnavailable:
                if attempt == attempts - 1:
                    raise
                self._sleep(self._backoff * (2**attempt))
            except KongNotFound:
                self._forget_upstream_ids()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            return wire.call(self._http, method, path, body=body)
        except KongNotFound:
            self._forget_upstream_ids()
            raise

    def _forget_upstream_ids(self) -> None:
        # Konnect: a cached name -> id may be stale (upstream deleted and re-created)
        if self._upstream_ids:
            with self._lock:
                self._upstream_ids.clear()


def _target_arg(target: str) -> str:
    try:
        return normalise_target(target)
    except ValueError as exc:
        raise KongValidationError(str(exc), fields={"target": str(exc)}) from None


def _weight_arg(weight: int) -> int:
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= MAX_WEIGHT:
        message = f"weight must be an integer between 0 and {MAX_WEIGHT}, got {weight!r}"
        raise KongValidationError(message, fields={"weight": message})
    return weight


def _tags_arg(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str):  # a lone string is a Sequence[str] too: almost surely a mistake
        raise KongValidationError("tags must be a list of strings", fields={"tags": "not a list"})
    return list(tags)


@functools.lru_cache(maxsize=4096)
def _segment(value: str) -> str:
    """Percent-encode a path segment; Kong URL-unescapes it before matching. Pure, and a
    ramp step quotes the same upstream name or id six or seven times: cached."""
    return quote(value, safe=":")
