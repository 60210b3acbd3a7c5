"""Kong's Admin API routes for upstreams and targets (traditional, DB-less, data plane).

Sources: ``kong/api/routes/upstreams.lua`` (target routes, health, ``/targets/all``, manual
health overrides: POST in 2.x, PUT in 3.x), ``kong/api/routes/targets.lua`` (global
``/targets`` disabled -> 404), ``kong/api/endpoints.lua`` (collections, 404/405 bodies) and
``kong/db/strategies/off/init.lua`` (405 on writes without a database).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.routing import MapAdapter

from sidecar.kong_local import consumer_routes, service_routes
from sidecar.kong_local.addresses import format_host, normalize_ip
from sidecar.kong_local.entity_routes import refuse_without_database
from sidecar.kong_local.errors import ApiError, method_not_allowed, not_found
from sidecar.kong_local.health import DnsMap, balancer_health, target_data, target_health
from sidecar.kong_local.info import root_body, status_body
from sidecar.kong_local.profiles import Profile
from sidecar.kong_local.propagation import LagView
from sidecar.kong_local.reply import BodyReader, Reply
from sidecar.kong_local.routing import Route, match, route_table
from sidecar.kong_local.schemas import Body, render_target, render_upstream
from sidecar.kong_local.store import Store, Workspace


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
        self._routes_table = self._routes()

    # ------------------------------------------------------------ dispatch

    def _routes(self) -> MapAdapter:
        """Kong's route table for this node (``kong/api/routes/kong.lua``, ``upstreams.lua``;
        ``clustering.lua`` on a control plane). The health overrides are not registered on a
        control plane, and the per-address form exists from 3.0 (``upstreams.lua``)."""
        every = ["GET", "PATCH", "PUT", "DELETE"]
        routes: list[Route] = [
            ("/", "root", ["GET"]),
            ("/status", "status", ["GET"]),
            ("/upstreams", "upstreams", ["GET", "POST"]),
            ("/upstreams/<u>", "upstream", every),
            ("/upstreams/<u>/health", "health", ["GET"]),
            ("/upstreams/<u>/targets", "targets", ["GET", "POST"]),
            # other methods on .../targets/all fall through to the target named "all"
            ("/upstreams/<u>/targets/all", "targets_all", ["GET"]),
            ("/upstreams/<u>/targets/<t>", "target", every),
        ]
        if self.data_planes is not None:
            routes.append(("/clustering/data-planes", "data_planes", ["GET"]))
        if self.profile.role != "control_plane":
            verb = "<any(healthy, unhealthy):verb>"
            override = [self.profile.health_override_method]
            routes.append((f"/upstreams/<u>/targets/<t>/{verb}", "set_health", override))
            if self.profile.is_3x:
                routes.append(
                    (f"/upstreams/<u>/targets/<t>/<address>/{verb}", "set_health", override)
                )
        return route_table(routes)

    def handle(
        self,
        ws_name: str,
        method: str,
        segments: list[str],
        args: dict[str, str],
        read_body: BodyReader,
    ) -> Reply:
        if segments and segments[0] in service_routes.ROOTS:
            ws = self.store.workspace(ws_name)
            return service_routes.handle(self.store, ws, method, segments, args, read_body)
        if segments and segments[0] in consumer_routes.ROOTS:
            ws = self.store.workspace(ws_name)
            return consumer_routes.handle(self.store, ws, method, segments, args, read_body)
        # no route: 404, including the disabled global /targets
        endpoint, values = match(self._routes_table, segments, method)
        if method == "HEAD":  # werkzeug lets HEAD through to GET rules; Kong's do not
            raise method_not_allowed()
        ws = self.store.workspace(ws_name)
        if endpoint == "root":
            conf = self.store.configuration
            return Reply(200, root_body(self.profile, **vars(self.node), configuration=conf))
        if endpoint == "status":
            return Reply(200, status_body(self.profile))
        if endpoint == "data_planes":
            assert self.data_planes is not None
            return Reply(200, self.data_planes())
        if endpoint == "upstreams":
            return self._upstreams(ws, method, args, read_body)
        u = values["u"]
        if endpoint == "upstream":
            return self._upstream(ws, method, u, read_body)
        if endpoint == "health":
            return self._health(ws, self._upstream_or_404(ws, u), u, args)
        if endpoint == "targets":
            return self._targets(ws, method, u, args, read_body)
        if endpoint == "targets_all":
            return self._targets_all(ws, u, args)
        if endpoint == "target":
            return self._target(ws, method, u, values["t"], read_body)
        return self._set_health(ws, u, values["t"], values.get("address"), values["verb"])

    def _write(self, verb: str, entity: str) -> None:
        refuse_without_database(self.profile, verb, entity)

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
        upstream_key: str,
        target_key: str,
        address: str | None,
        verb: str,
    ) -> Reply:
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
