"""Kong's Admin API routes for services, routes and plugins (``/services``,
``/services/{s}/plugins``, ``/plugins``, ``/plugins/{id}``, ``/routes``, ``/routes/{r}``,
``/services/{s}/routes``), for the Admin API and Konnect's ``core-entities``. Route records:
``route_entities.py``; only create, read, list and delete are modelled for them.

Sources (Kong/kong): ``kong/api/endpoints.lua`` (collections, nested collections, PUT upsert,
DELETE 204 whether or not the entity existed), ``kong/db/schema/entities/services.lua`` and
``plugins.lua`` (``on_delete = "cascade"`` from service to plugins; ``cache_key`` name, route,
service, consumer -> one plugin of a name per service), ``kong/db/strategies/off/init.lua``
(405 on writes without a database). Konnect (Kong/sdk-konnect-go ``docs/sdks/plugins``):
list, create, get, PUT upsert and delete; no PATCH.

The entities live on the store's ``Workspace`` object (``store.reset()`` builds new
workspaces, so they go with it); the caller holds ``store.lock``, as for every route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sidecar.kong_local.consumer_routes import consumer_exists
from sidecar.kong_local.entity_routes import (
    EntityOps,
    EntityRoutes,
    found_or_404,
    workspace_entities,
)
from sidecar.kong_local.errors import (
    foreign_key_violation,
    not_found,
    primary_key_violation,
    unique_violation,
)
from sidecar.kong_local.plugin_schemas import (
    PLUGIN_CONFIGS,
    build_plugin_config,
    build_service,
    merge_patch,
    new_id,
    render_plugin,
    render_service,
    validate_plugin,
)
from sidecar.kong_local.reply import BodyReader, Reply
from sidecar.kong_local.route_entities import build_route, referenced_by_routes, render_route
from sidecar.kong_local.routing import match, route_table
from sidecar.kong_local.schemas import Body, find_by_endpoint_key, is_uuid
from sidecar.kong_local.store import Store, Workspace, page_body

ROOTS = frozenset({"services", "plugins", "routes"})
# No methods: each handler answers 405 after the 404s Kong gives first (an unknown service
# before a wrong method on its plugins, as endpoints.lua looks it up first).
_ROUTES = route_table(
    [
        ("/plugins", "plugins"),
        ("/plugins/<p>", "plugin"),
        ("/services", "services"),
        ("/services/<s>", "service"),
        ("/services/<s>/plugins", "service_plugins"),
        ("/services/<s>/plugins/<p>", "service_plugin"),
        ("/routes", "routes"),
        ("/routes/<r>", "route"),
        ("/services/<s>/routes", "service_routes"),
    ]
)
_ATTRIBUTE = "_kong_local_services"


@dataclass
class Entities:
    services: dict[str, Body] = field(default_factory=dict)
    plugins: dict[str, Body] = field(default_factory=dict)
    routes: dict[str, Body] = field(default_factory=dict)


def entities(ws: Workspace) -> Entities:
    return workspace_entities(ws, _ATTRIBUTE, Entities)


def handle(
    store: Store,
    ws: Workspace,
    method: str,
    segments: list[str],
    args: dict[str, str],
    read_body: BodyReader,
    *,
    konnect: bool = False,
) -> Reply:
    """``segments`` start at ``services`` or ``plugins`` (after any workspace prefix)."""
    return _Routes(store, ws, konnect).dispatch(method, segments, args, read_body)


class _Routes(EntityRoutes):
    def __init__(self, store: Store, ws: Workspace, konnect: bool) -> None:
        super().__init__(store, ws)
        self.state = entities(ws)
        # Konnect (sdk-konnect-go docs/sdks/plugins, services): no PATCH
        self.writes = ("PUT",) if konnect else ("PATCH", "PUT")

    # ------------------------------------------------------------ dispatch

    def dispatch(
        self, method: str, segments: list[str], args: dict[str, str], read_body: BodyReader
    ) -> Reply:
        endpoint, values = match(_ROUTES, segments, method)
        if endpoint == "plugins":
            return self._plugins(method, args, read_body, None)
        if endpoint == "plugin":
            return self._plugin(method, self._plugin_or_none(values["p"]), values["p"], read_body)
        if endpoint == "services":
            return self._services(method, args, read_body)
        if endpoint == "service":
            return self._service(method, values["s"], read_body)
        if endpoint == "routes":
            return self._routes(method, args, read_body, None)
        if endpoint == "route":
            return self._route(method, values["r"], read_body)
        service = self._service_or_404(values["s"])
        if endpoint == "service_routes":
            return self._routes(method, args, read_body, service)
        if endpoint == "service_plugins":
            return self._plugins(method, args, read_body, service)
        plugin = self._plugin_or_none(values["p"])
        if plugin is not None and (plugin.get("service") or {}).get("id") != service["id"]:
            plugin = None
        return self._plugin(method, plugin, values["p"], read_body, service)

    # ------------------------------------------------------------ services

    def _service_or_none(self, key: str) -> Body | None:
        return find_by_endpoint_key(self.state.services, key, "name")

    def _service_or_404(self, key: str) -> Body:
        return found_or_404(self._service_or_none(key))

    def _services(self, method: str, args: dict[str, str], read_body: BodyReader) -> Reply:
        def listing() -> Body:
            rows = [render_service(s) for s in self.state.services.values()]
            return page_body(rows, args, "/services")

        def create(fields: Body) -> Body:
            return render_service(self._save_service(fields, None))

        return self._collection(method, read_body, "services", listing, create)

    def _service(self, method: str, key: str, read_body: BodyReader) -> Reply:
        def put_body(fields: Body, current: Body | None) -> Body:
            return {**fields, **({"id": key.lower()} if is_uuid(key) else {"name": key})}

        ops = EntityOps(
            "services",
            render_service,
            self._delete_service,
            save=self._save_service,
            put_body=put_body,
            writes=self.writes,
        )
        return self._one(method, self._service_or_none(key), read_body, ops)

    def _save_service(self, body: Body, base: Body | None, replacing: Body | None = None) -> Body:
        rec = build_service(body, self.profile, base=base)
        ident = (base or replacing or {}).get("id") or body.get("id") or new_id()
        name = rec.get("name")
        if name is not None and any(
            s.get("name") == name and s["id"] != ident for s in self.state.services.values()
        ):
            raise unique_violation({"name": name})
        if base is None and replacing is None and ident in self.state.services:
            raise primary_key_violation({"id": ident})
        now = self._now()
        created = (base or replacing or {}).get("created_at", now)
        rec.update(id=ident, created_at=created, updated_at=now)
        self.state.services[ident] = rec
        return rec

    def _delete_service(self, service: Body) -> None:
        """``on_delete = "cascade"``: the service's plugins go with it; its routes refuse."""
        if any(_service_id(r) == service["id"] for r in self.state.routes.values()):
            raise referenced_by_routes()
        self.state.services.pop(service["id"], None)
        drop_plugins_of(self.ws, "service", service["id"])

    # ------------------------------------------------------------ routes

    def _routes(
        self, method: str, args: dict[str, str], read_body: BodyReader, service: Body | None
    ) -> Reply:
        """``GET``/``POST`` on ``/routes`` and ``/services/{s}/routes`` (the nested one sets
        the route's ``service``; on ``/routes`` the body names it, or it has none)."""

        def listing() -> Body:
            return _listing("routes", self.state.routes.values(), render_route, service, args)

        def create(fields: Body) -> Body:
            return render_route(self._create_route(fields, service))

        return self._collection(method, read_body, "routes", listing, create)

    def _create_route(self, fields: Body, service: Body | None) -> Body:
        body = dict(fields)
        if service is not None:
            body["service"] = {"id": service["id"]}
        rec = build_route(body, self.profile, base=None)
        parent = rec.get("service")
        if parent is not None and _service_id(rec) not in self.state.services:
            raise foreign_key_violation("service", "services", {"id": _service_id(rec)})
        ident = str(body.get("id") or new_id()).lower()
        name = rec.get("name")
        if name is not None and any(r.get("name") == name for r in self.state.routes.values()):
            raise unique_violation({"name": name})
        if ident in self.state.routes:
            raise primary_key_violation({"id": ident})
        now = self._now()
        rec.update(id=ident, created_at=now, updated_at=now)
        self.state.routes[ident] = rec
        return rec

    def _route(self, method: str, key: str, read_body: BodyReader) -> Reply:
        """Only GET and DELETE are modelled for one route."""
        ops = EntityOps("routes", render_route, self._delete_route, writes=())
        current = find_by_endpoint_key(self.state.routes, key, "name")
        return self._one(method, current, read_body, ops)

    def _delete_route(self, route: Body) -> None:
        """``on_delete = "cascade"`` from route to plugins (``plugins.lua``)."""
        del self.state.routes[route["id"]]
        drop_plugins_of(self.ws, "route", route["id"])

    # ------------------------------------------------------------ plugins

    def _plugin_or_none(self, key: str) -> Body | None:
        endpoint_key = "instance_name" if self.profile.is_3x else None  # plugins.lua
        return find_by_endpoint_key(self.state.plugins, key, endpoint_key)

    def _render_plugin(self, rec: Body) -> Body:
        return render_plugin(rec, self.profile)

    def _plugins(
        self, method: str, args: dict[str, str], read_body: BodyReader, service: Body | None
    ) -> Reply:
        def listing() -> Body:
            plugins = self.state.plugins.values()
            return _listing("plugins", plugins, self._render_plugin, service, args)

        def create(fields: Body) -> Body:
            return self._render_plugin(self._save_plugin(fields, None, service, inserting=True))

        return self._collection(method, read_body, "plugins", listing, create)

    def _plugin(
        self,
        method: str,
        current: Body | None,
        key: str,
        read_body: BodyReader,
        service: Body | None = None,
    ) -> Reply:
        def put_body(fields: Body, current: Body | None) -> Body:
            if current is None and not is_uuid(key):
                raise not_found()  # a PUT by instance name creates nothing
            return {**fields, "id": current["id"] if current else key.lower()}

        def save(fields: Body, base: Body | None, replacing: Body | None) -> Body:
            patch = base is not None
            return self._save_plugin(fields, base or replacing, service, patch=patch)

        ops = EntityOps(
            "plugins",
            self._render_plugin,
            lambda plugin: self.state.plugins.pop(plugin["id"]),
            save=save,
            put_body=put_body,
            writes=self.writes,
        )
        return self._one(method, current, read_body, ops)

    def _save_plugin(
        self,
        body: Body,
        current: Body | None,
        service: Body | None,
        *,
        patch: bool = False,
        inserting: bool = False,
    ) -> Body:
        disabled = self.store.configuration.disabled_plugins
        validate_plugin(body, self.profile, partial=patch, disabled=disabled)
        if patch and current is not None:
            name = body.get("name") or current["name"]
            fields = PLUGIN_CONFIGS[name](self.profile)
            config = merge_patch(fields, current["config"], body.get("config") or {})
            merged: Body = {**current, **{k: v for k, v in body.items() if k != "config"}}
        else:
            name = body["name"]
            config = body.get("config") or {}
            merged = {
                "route": None,
                "service": None,
                "consumer": None,
                "enabled": True,
                "tags": None,
                "instance_name": None,
                "protocols": None,
                **body,
            }
        if service is not None:
            merged["service"] = {"id": service["id"]}
        merged["name"] = name
        merged["config"] = build_plugin_config(name, config, self.profile, updating=patch)
        merged["protocols"] = merged.get("protocols") or ["grpc", "grpcs", "http", "https"]
        self._check_references(merged)
        ident = (current or {}).get("id") or body.get("id") or new_id()
        self._check_unique(merged, ident)
        if inserting and ident in self.state.plugins:  # POST inserts; PUT upserts
            raise primary_key_violation({"id": ident})
        now = self._now()
        merged.update(id=ident, created_at=(current or {}).get("created_at", now))
        merged["updated_at"] = now
        if not self.profile.is_3x:
            merged.pop("instance_name", None)
        self.state.plugins[ident] = merged
        return merged

    def _check_references(self, plugin: Body) -> None:
        service = plugin.get("service")
        if service is not None and service["id"] not in self.state.services:
            raise foreign_key_violation("service", "services", {"id": service["id"]})
        route = plugin.get("route")
        if route is not None and route["id"] not in self.state.routes:
            raise foreign_key_violation("route", "routes", {"id": route["id"]})
        consumer = plugin.get("consumer")
        if consumer is not None and not consumer_exists(self.ws, consumer["id"]):
            raise foreign_key_violation("consumer", "consumers", {"id": consumer["id"]})

    def _check_unique(self, plugin: Body, ident: str) -> None:
        scope = ("name", "route", "service", "consumer")
        key: dict[str, Any] = {k: plugin.get(k) for k in scope}
        for other in self.state.plugins.values():
            if other["id"] == ident:
                continue
            if all(other.get(k) == key[k] for k in scope):
                raise unique_violation(key)
            name = plugin.get("instance_name")
            if name is not None and other.get("instance_name") == name:
                raise unique_violation({"instance_name": name})


def drop_plugins_of(ws: Workspace, scope: str, parent_id: str) -> None:
    """The plugins scoped to a deleted service, route or consumer (``scope``): the foreign
    keys of ``entities/plugins.lua`` are ``on_delete = "cascade"``."""
    plugins = entities(ws).plugins
    for plugin_id in [
        p["id"] for p in plugins.values() if (p.get(scope) or {}).get("id") == parent_id
    ]:
        del plugins[plugin_id]


def _service_id(entity: Body) -> str | None:
    return (entity.get("service") or {}).get("id")


def _listing(
    name: str,
    rows: Iterable[Body],
    render: Callable[[Body], Body],
    service: Body | None,
    args: dict[str, str],
) -> Body:
    """``GET /{name}`` or, under a service, only its own (``/services/{s}/{name}``)."""
    shown = [render(r) for r in rows if service is None or _service_id(r) == service["id"]]
    base = f"/{name}" if service is None else f"/services/{service['id']}/{name}"
    return page_body(shown, args, base)
