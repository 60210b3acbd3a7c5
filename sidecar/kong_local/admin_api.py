"""Kong's Admin API routes for upstreams and targets (traditional, DB-less, data plane).

Sources: ``kong/api/routes/upstreams.lua`` (target routes, health, ``/targets/all``, manual
health overrides: POST in 2.x, PUT in 3.x), ``kong/api/routes/targets.lua`` (global
``/targets`` disabled -> 404), ``kong/api/endpoints.lua`` (collections, 404/405 bodies) and
``kong/db/strategies/off/init.lua`` (405 on writes without a database).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.kong_local.addresses import format_host, normalize_ip
from sidecar.kong_local.errors import (
    ApiError,
    method_not_allowed,
    not_found,
    operation_unsupported,
)
from sidecar.kong_local.health import DnsMap, balancer_health, target_data, target_health
from sidecar.kong_local.info import root_body, status_body
from sidecar.kong_local.profiles import Profile
from sidecar.kong_local.propagation import LagView
from sidecar.kong_local.schemas import Body, render_target, render_upstream
from sidecar.kong_local.store import Store, Workspace

BodyReader = Callable[[], tuple[Body, bool]]  # -> (fields, came from a form)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class NodeIdentity:
    node_id: str
    hostname: str
    enterprise: bool


class AdminApi:
    """One node's Admin API. ``lag`` makes it a node whose balancers trail the database
    (another node of a traditional cluster); ``data_planes`` serves a control plane's
    ``/clustering/data-planes``."""

    def __init__(
        self,
        store: Store,
        dns: DnsMap,
        node: NodeIdentity,
        *,
        lag: LagView | None = None,
        data_planes: Callable[[], Body] | None = None,
    ) -> None:
        self.store = store
        self.profile: Profile = store.profile
        self.dns = dns
        self.node = node
        self.lag = lag
        self.data_planes = data_planes

    # ------------------------------------------------------------ dispatch

    def handle(
        self,
        ws_name: str,
        method: str,
        segments: list[str],
        args: dict[str, str],
        read_body: BodyReader,
    ) -> Reply:
        ws = self.store.workspace(ws_name)
        n = len(segments)
        if n == 0:
            self._only(method, "GET")
            return Reply(200, root_body(self.profile, **vars(self.node)))
        if segments == ["status"]:
            self._only(method, "GET")
            return Reply(200, status_body(self.profile))
        if segments == ["clustering", "data-planes"] and self.data_planes is not None:
            self._only(method, "GET")
            return Reply(200, self.data_planes())
        if segments[0] in ("services", "plugins"):
            from sidecar.kong_local import service_routes  # imports this module's Reply

            return service_routes.handle(self.store, ws, method, segments, args, read_body)
        if segments[0] != "upstreams":
            raise not_found()  # includes the disabled global /targets
        if n == 1:
            return self._upstreams(ws, method, args, read_body)
        upstream_key = segments[1]
        if n == 2:
            return self._upstream(ws, method, upstream_key, read_body)
        if segments[2] == "health" and n == 3:
            self._only(method, "GET")
            return self._health(ws, self._upstream_or_404(ws, upstream_key), upstream_key, args)
        if segments[2] != "targets":
            raise not_found()
        if n == 3:
            return self._targets(ws, method, upstream_key, args, read_body)
        if n == 4 and segments[3] == "all" and method == "GET":
            return self._targets_all(ws, upstream_key, args)
        if n == 4:
            return self._target(ws, method, upstream_key, segments[3], read_body)
        if n in (5, 6) and segments[-1] in ("healthy", "unhealthy"):
            address = segments[4] if n == 6 else None
            if address is not None and not self.profile.is_3x:
                raise not_found()
            return self._set_health(ws, method, upstream_key, segments[3], address, segments[-1])
        raise not_found()

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise method_not_allowed()

    def _write(self, verb: str, entity: str) -> None:
        if not self.profile.writable:
            raise operation_unsupported(verb, entity)

    def _upstream_or_404(self, ws: Workspace, key: str) -> Body:
        upstream = self.store.find_upstream(ws, key)
        if upstream is None:
            raise not_found()
        return upstream

    def _target_or_404(self, ws: Workspace, upstream: Body, key: str) -> Body:
        target = self.store.find_target(ws, upstream, key)
        if target is None:
            raise not_found()
        return target

    # ------------------------------------------------------------ upstreams

    def _upstreams(
        self, ws: Workspace, method: str, args: dict[str, str], read_body: BodyReader
    ) -> Reply:
        if method == "GET":
            page, offset, next_page = self.store.list_upstreams(ws, args, "/upstreams")
            body: Body = {"data": [render_upstream(u, self.profile) for u in page]}
            body["next"] = next_page
            if offset:
                body["offset"] = offset
            return Reply(200, body)
        if method == "POST":
            fields, form = read_body()
            self._write("create", "upstreams")
            rec = self.store.create_upstream(ws, fields, from_form=form)
            return Reply(201, render_upstream(rec, self.profile))
        raise method_not_allowed()

    def _upstream(self, ws: Workspace, method: str, key: str, read_body: BodyReader) -> Reply:
        if method == "GET":
            return Reply(200, render_upstream(self._upstream_or_404(ws, key), self.profile))
        if method == "PATCH":
            fields, form = read_body()
            rec = self._upstream_or_404(ws, key)
            self._write("update", "upstreams")
            rec = self.store.update_upstream(ws, rec, fields, from_form=form)
            return Reply(200, render_upstream(rec, self.profile))
        if method == "PUT":
            fields, form = read_body()
            self._write("create or update", "upstreams")
            rec = self.store.put_upstream(ws, key, fields, from_form=form)
            return Reply(200, render_upstream(rec, self.profile))
        if method == "DELETE":
            self._write("remove", "upstreams")
            rec = self.store.find_upstream(ws, key)
            if rec is not None:
                self.store.delete_upstream(ws, rec)
            return Reply(204)
        raise method_not_allowed()

    # ------------------------------------------------------------ targets

    def _targets(
        self,
        ws: Workspace,
        method: str,
        upstream_key: str,
        args: dict[str, str],
        read_body: BodyReader,
    ) -> Reply:
        if method not in ("GET", "POST"):
            raise method_not_allowed()
        upstream = self._upstream_or_404(ws, upstream_key)
        if method == "GET":
            page, offset = self.store.page_targets(ws, upstream, args)
            return Reply(200, self._page_body(page, offset, f"/upstreams/{upstream_key}/targets"))
        fields, form = read_body()
        self._write("create", "targets")
        rec, created = self.store.create_target(ws, upstream, fields, from_form=form)
        headers = {} if created else {"Deprecation": "true"}
        return Reply(201 if created else 200, render_target(rec, self.profile), headers)

    def _page_body(self, page: list[Body], offset: str | None, base: str) -> Body:
        body: Body = {"data": [render_target(t, self.profile) for t in page]}
        body["next"] = f"{base}?offset={offset}" if offset is not None else None
        if offset is not None:
            body["offset"] = offset
        return body

    def _targets_all(self, ws: Workspace, upstream_key: str, args: dict[str, str]) -> Reply:
        upstream = self._upstream_or_404(ws, upstream_key)
        if self.profile.is_3x:
            page, offset = self.store.page_targets_raw(ws, upstream, args)
        else:
            page, offset = self.store.page_targets(ws, upstream, args)
        return Reply(200, self._page_body(page, offset, f"/upstreams/{upstream_key}/targets/all"))

    def _target(
        self, ws: Workspace, method: str, upstream_key: str, key: str, read_body: BodyReader
    ) -> Reply:
        if method not in ("GET", "PATCH", "PUT", "DELETE"):
            raise method_not_allowed()
        fields: Body = {}
        form = False
        if method in ("PATCH", "PUT"):
            fields, form = read_body()
        upstream = self._upstream_or_404(ws, upstream_key)
        target = self._target_or_404(ws, upstream, key)
        if method == "GET":
            return Reply(200, render_target(target, self.profile))
        if method == "DELETE":
            self._write("remove", "targets")
            self.store.delete_target(ws, target)
            return Reply(204)
        # PUT shares PATCH's handler in OSS (update_target_cb): partial, never an upsert.
        self._write("update", "targets")
        rec = self.store.update_target(ws, target, fields, from_form=form)
        return Reply(200, render_target(rec, self.profile))

    # ------------------------------------------------------------ health

    def _health(
        self, ws: Workspace, upstream: Body, upstream_key: str, args: dict[str, str]
    ) -> Reply:
        node_id = self.node.node_id
        # A control plane has no balancer (kong/runloop/handler.lua init_worker returns before
        # balancer.init() when role is control_plane); 3.x builds one lazily.
        ready = upstream["id"] in ws.ready and self.profile.role != "control_plane"
        held = self._balancer_targets(ws, upstream)
        if args.get("balancer_health") == "1":
            body: Body = {"next": None, "node_id": node_id}
            if ready:
                body["data"] = balancer_health(
                    ws,
                    upstream,
                    held,
                    self.dns,
                    with_field=self.profile.has_balancer_health_field,
                )
            return Reply(200, body)
        page, offset = self.store.page_targets(ws, upstream, args)
        by_id = {t["id"]: t for t in held}
        rows = []
        for target in page:
            row = render_target(target, self.profile)  # the database's view: every node alike
            if ready:  # 3.x: no balancer before the first proxied request -> no health/data
                seen = by_id.get(target["id"])
                if seen is None:  # not in this node's balancer (yet): no data, DNS_ERROR
                    row["health"] = "DNS_ERROR"
                else:
                    data = target_data(ws, upstream, seen, self.dns)
                    row["health"] = target_health(data)  # DNS_ERROR when no address resolved
                    row["data"] = data
            rows.append(row)
        body = {"data": rows, "node_id": node_id}
        body["next"] = (
            f"/upstreams/{upstream_key}/health?offset={offset}" if offset is not None else None
        )
        if offset is not None:
            body["offset"] = offset
        return Reply(200, body)

    def _balancer_targets(self, ws: Workspace, upstream: Body) -> list[Body]:
        """The targets this node's balancer holds: the database's, or a lagging copy (which
        may still hold targets deleted since, and lack new ones)."""
        if self.lag is None:
            return self.store.targets_of(ws, upstream)
        return [
            {"id": target_id, "target": target, "weight": weight}
            for target_id, (target, weight) in self.lag.balancer(upstream["id"]).items()
        ]

    def _set_health(
        self,
        ws: Workspace,
        method: str,
        upstream_key: str,
        target_key: str,
        address: str | None,
        verb: str,
    ) -> Reply:
        if self.profile.role == "control_plane":
            raise not_found()  # route not registered on control planes
        self._only(method, self.profile.health_override_method)
        upstream = self._upstream_or_404(ws, upstream_key)
        target = self._target_or_404(ws, upstream, target_key)
        address_key: str | None = None
        if address is not None:
            p = normalize_ip(address)
            if p is None:
                raise ApiError(400, {"message": f"invalid address {address}"})
            address_key = format_host(p)
        ws.overrides[(target["id"], address_key)] = "HEALTHY" if verb == "healthy" else "UNHEALTHY"
        ws.ready.add(upstream["id"])  # posting health builds the balancer
        return Reply(204)
