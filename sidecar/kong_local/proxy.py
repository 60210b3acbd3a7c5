"""Which upstream a proxied request is balanced on, after the service's ``post-function``.

The local server has no proxy; this answers the one question cohort tests ask of Kong's data
plane: given a service, an authenticated consumer and request headers, which upstream does
the request go to? Sources (Kong/kong 2.8.5 to 3.9.3):
- the service's ``host`` names the upstream it balances on (``kong/runloop/balancer``);
- plugin precedence (``kong/runloop/plugins_iterator.lua``: 2.8.5
  ``load_configuration_through_combos`` lines 118-247, 3.4.2 ``lookup_cfg`` lines 174-221,
  3.9.3 ``lookup_cfg`` lines 215-266): one configuration per request, the most specific of
  route+service, route, service, global (post-function cannot be scoped to a consumer:
  ``kong/plugins/pre-function/_schema.lua`` ``typedefs.no_consumer``); a disabled plugin
  does not run;
- ``kong/plugins/pre-function/_handler.lua``: the phase's entries run in order (2.8's legacy
  ``functions`` in the access phase too), each chunk run once and its returned function used
  per request; ``kong/tools/sandbox.lua``: with ``untrusted_lua = off`` loading raises
  :data:`serverless.SANDBOX_OFF_ERROR` (Kong answers the request 500), with ``on`` the code
  runs unsandboxed;
- ``kong.service.set_upstream`` (``kong/pdk/service.lua``) replaces the upstream when one of
  that name exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lupa.luajit21 import LuaError

from sidecar.kong_local import consumer_routes, service_routes
from sidecar.kong_local.schemas import Body, find_by_endpoint_key
from sidecar.kong_local.serverless import PLUGIN_NAME, SANDBOX_OFF_ERROR
from sidecar.kong_local.serverless_runtime import Consumer, ServerlessRuntime
from sidecar.kong_local.store import Store, Workspace


class ServerlessError(RuntimeError):
    """The post-function could not run: Kong answers such a request 500."""


def _post_function(ws: Workspace, service: Body, route: Body | None = None) -> Body | None:
    """The one post-function Kong runs for a request to ``service`` matched by ``route``."""
    scopes: dict[tuple[str | None, str | None], Body] = {
        ((p.get("route") or {}).get("id"), (p.get("service") or {}).get("id")): p
        for p in service_routes.entities(ws).plugins.values()
        if p["name"] == PLUGIN_NAME and p.get("enabled", True)
    }
    route_id = route["id"] if route is not None else None
    precedence = [(route_id, service["id"]), (route_id, None)] if route_id else []
    precedence += [(None, service["id"]), (None, None)]
    return next((scopes[key] for key in precedence if key in scopes), None)


def _route_of(ws: Workspace, service: Body, route_key: str) -> Body:
    """The route (id or name) a request matched; it must lead to ``service``."""
    routes = service_routes.entities(ws).routes.values()
    route = next((r for r in routes if route_key in (r["id"], r.get("name"))), None)
    if route is None or (route.get("service") or {}).get("id") != service["id"]:
        raise KeyError(f"no route {route_key!r} of service {service['id']}")
    return route


class ProxyModel:
    """One LuaJIT state per server, handlers cached by (code, sandboxed) as Kong's handler
    caches them per plugin config; the caller holds ``store.lock``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.runtime = ServerlessRuntime()
        self._handlers: dict[tuple[str, bool], Any] = {}

    def _handler(self, code: str, sandboxed: bool) -> Any:
        key = (code, sandboxed)
        if key not in self._handlers:
            if len(self._handlers) > 64:
                self._handlers.clear()
            self._handlers[key] = self.runtime.load(code, sandboxed=sandboxed)
        return self._handlers[key]

    def upstream(
        self,
        ws: Workspace,
        service_key: str,
        consumer_key: str | None = None,
        headers: Mapping[str, str | Sequence[str]] | None = None,
        route_key: str | None = None,
    ) -> str:
        """The upstream name a request to ``service_key`` (name or id) from ``consumer_key``
        (id or username; None = anonymous), matched by ``route_key`` (id or name, a route of
        that service; None = no route's plugins), is balanced on. KeyError for an unknown
        service, route or consumer; :class:`ServerlessError` when Kong would fail the
        request."""
        service = find_by_endpoint_key(service_routes.entities(ws).services, service_key, "name")
        if service is None:
            raise KeyError(f"no service {service_key!r}")
        consumer = None
        if consumer_key is not None:
            rec = find_by_endpoint_key(
                consumer_routes.entities(ws).consumers, consumer_key, "username"
            )
            if rec is None:
                raise KeyError(f"no consumer {consumer_key!r}")
            consumer = Consumer(rec["id"], rec.get("username"), rec.get("custom_id"))
        route = _route_of(ws, service, route_key) if route_key is not None else None
        plugin = _post_function(ws, service, route)
        if plugin is None:
            return str(service["host"])
        mode = self.store.configuration.untrusted_lua
        if mode == "off":
            raise ServerlessError(SANDBOX_OFF_ERROR)
        config = plugin["config"]
        entries = [*(config.get("functions") or []), *(config.get("access") or [])]
        self.runtime.set_upstreams(u["name"] for u in ws.upstreams.values())
        chosen = str(service["host"])
        try:
            for code in entries:
                handler = self._handler(code, mode == "sandbox")
                chosen = self.runtime.request(handler, consumer, headers or {}) or chosen
        except LuaError as err:  # the handler's error: Kong logs it and answers 500
            raise ServerlessError(str(err).splitlines()[0]) from None
        return chosen
