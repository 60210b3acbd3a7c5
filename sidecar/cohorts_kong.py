"""The Kong entities cohorts need beyond targets: the node's root, consumers, ACLs, raw
upstream entities (to mirror their settings) and the upstream's post-functions.

Rides on ``KongPlugins`` (the same httpx client, error mapping, pagination and DB-less
refusal as ``KongAdmin``). Paths are Kong's, the same on 2.8 and 3.x: ``GET /`` (reference
section 7), ``/consumers`` and ``/acls`` (``kong/plugins/acl/daos.lua``: rows carry
``group`` and ``consumer.id``), ``/upstreams/{name or id}``.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

from sidecar.gateway.kong_plugins import KongPlugins
from sidecar.kong import wire
from sidecar.kong.errors import KongNotFound

POST_FUNCTION = "post-function"


class CohortKong(KongPlugins):
    def root(self) -> dict[str, Any]:
        """``GET /`` as Kong sends it (``configuration.untrusted_lua``, available plugins)."""
        root = getattr(self._http, "admin_root", None)  # a workspace client: bypass it
        body = wire.call(self._http, "GET", "/", url=root if root is not None else None)
        return body if isinstance(body, dict) else {}

    def plugins_tagged(self, tag: str) -> list[dict[str, Any]]:
        """``GET /plugins?tags=<tag>``: Kong filters server-side (``kong/api/endpoints.lua``,
        the same on 2.8 and 3.x), so a split change of an upstream without cohorts reads
        one short page, not every plugin of the cluster."""
        return self._collect("/plugins", tags=tag)

    def routes(self) -> list[dict[str, Any]]:
        """``GET /routes``: rows carry ``service.id`` (a route's plugins outrank its
        service's, ``sidecar.core.cohorts.post_function_clashes``)."""
        return self._collect("/routes")

    def consumers(self) -> list[dict[str, Any]]:
        return self._collect("/consumers")

    def acls(self) -> list[dict[str, Any]]:
        return self._collect("/acls")

    def upstream_entity(self, name: str) -> dict[str, Any] | None:
        try:
            body = wire.call(self._http, "GET", f"/upstreams/{_segment(name)}")
        except KongNotFound:
            return None
        return body if isinstance(body, dict) else None

    def create_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        self._ensure_writable("POST", "/upstreams")
        return dict(wire.call(self._http, "POST", "/upstreams", body=body))

    def patch_upstream(self, ident: str, body: dict[str, Any]) -> None:
        path = f"/upstreams/{_segment(ident)}"
        self._ensure_writable("PATCH", path)
        wire.call(self._http, "PATCH", path, body=body)

    def delete_upstream(self, ident: str) -> None:
        path = f"/upstreams/{_segment(ident)}"
        self._ensure_writable("DELETE", path)
        with contextlib.suppress(KongNotFound):
            wire.call(self._http, "DELETE", path)

    def shadow_targets(self, upstream: str) -> dict[str, int]:
        rows = self._collect(f"/upstreams/{_segment(upstream)}/targets")
        return {str(r["target"]): int(r.get("weight", 0)) for r in rows if "target" in r}

    def put_target(self, upstream: str, target: str, weight: int, *, create: bool) -> None:
        base = f"/upstreams/{_segment(upstream)}/targets"
        if create:
            self._ensure_writable("POST", base)
            wire.call(self._http, "POST", base, body={"target": target, "weight": weight})
        else:
            path = f"{base}/{quote(target, safe=':')}"
            self._ensure_writable("PATCH", path)
            wire.call(self._http, "PATCH", path, body={"weight": weight})

    def delete_target(self, upstream: str, target: str) -> None:
        path = f"/upstreams/{_segment(upstream)}/targets/{quote(target, safe=':')}"
        self._ensure_writable("DELETE", path)
        with contextlib.suppress(KongNotFound):
            wire.call(self._http, "DELETE", path)


def _segment(value: str) -> str:
    return quote(value, safe="")
