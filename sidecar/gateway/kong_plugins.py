"""A small adapter for Kong's services and plugins, until ``KongAdmin`` grows plugin methods.

It rides on the ``KongAdmin``'s own httpx client (``kong._http``: base URL, workspace
prefix, RBAC or Konnect headers, timeouts) and on ``sidecar.kong.wire.call`` for error
mapping, so it behaves like the client for everything but the paths. Paths are relative:
``/services``, ``/services/{id}/plugins``, ``/plugins``, ``/plugins/{id}`` – the same on
Kong 2.8, 3.x and Konnect's ``core-entities``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from sidecar.kong import wire
from sidecar.kong.errors import KongNotFound, KongProtocolError

PAGE_SIZE = 1000


class KongPlugins:
    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    @classmethod
    def of(cls, kong: Any) -> KongPlugins:
        """From a ``KongAdmin`` (or anything with an ``_http`` httpx client)."""
        return cls(kong._http)

    def services(self) -> list[dict[str, Any]]:
        return self._collect("/services")

    def plugins(self) -> list[dict[str, Any]]:
        return self._collect("/plugins")

    def service_plugins(self, service_id: str) -> list[dict[str, Any]]:
        return self._collect(f"/services/{_segment(service_id)}/plugins")

    def create(self, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/services/{_segment(service_id)}/plugins"
        return _entity(wire.call(self._http, "POST", path, body=body), path)

    def update(self, plugin_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/plugins/{_segment(plugin_id)}"
        return _entity(wire.call(self._http, "PATCH", path, body=body), path)

    def delete(self, plugin_id: str) -> bool:
        """False when it was already gone (the outcome we wanted)."""
        try:
            wire.call(self._http, "DELETE", f"/plugins/{_segment(plugin_id)}")
        except KongNotFound:
            return False
        return True

    def _collect(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"size": PAGE_SIZE}
        while True:
            page = wire.call(self._http, "GET", path, params=params)
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise KongProtocolError("expected a page {data, offset}", method="GET", path=path)
            items.extend(item for item in page["data"] if isinstance(item, dict))
            offset = page.get("offset")
            if not offset:
                return items
            params = {"size": PAGE_SIZE, "offset": offset}


def _entity(body: Any, path: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise KongProtocolError("expected an entity with an 'id'", path=path)
    return body


def _segment(value: str) -> str:
    return quote(value, safe="")
