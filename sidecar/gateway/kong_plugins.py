"""A small adapter for Kong's services and plugins, until ``KongAdmin`` grows plugin methods.

It rides on the ``KongAdmin``'s own httpx client (``kong._http``: base URL, workspace
prefix, RBAC or Konnect headers, timeouts) and on ``sidecar.kong.wire.call`` for error
mapping, so it behaves like the client for everything but the paths. Paths are relative:
``/services``, ``/services/{id}/plugins``, ``/plugins``, ``/plugins/{id}`` – the same on
Kong 2.8, 3.x and Konnect's ``core-entities``. Two differences are hidden here, as
``KongAdmin`` hides them for targets: Konnect has no PATCH (Kong/sdk-konnect-go
``docs/sdks/plugins``: list, create, get, PUT upsert, delete), so an update is a PUT of the
whole plugin, service reference included; and a DB-less node or data plane is refused before
anything is sent (it would answer 405).
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from sidecar.kong import pages, wire
from sidecar.kong.errors import KongError, KongNotFound, KongProtocolError, KongReadOnly
from sidecar.kong.models import Flavour
from sidecar.kong.parse import Call


class KongPlugins:
    def __init__(self, http: httpx.Client, *, konnect: bool = False, writable: bool = True) -> None:
        self._http = http
        self._konnect = konnect
        self._writable = writable

    @classmethod
    def of(cls, kong: Any) -> KongPlugins:
        """From a ``KongAdmin`` (or anything with an ``_http`` httpx client; ``info()`` and
        ``flavour`` are read when it has them)."""
        info = flavour = None
        with contextlib.suppress(KongError):  # unreachable: the calls that follow say so
            info = kong.info() if hasattr(kong, "info") else None
            flavour = getattr(kong, "flavour", None)
        return cls(
            kong._http,
            konnect=flavour is Flavour.KONNECT,
            writable=info is None or info.writable,
        )

    def configuration(self) -> dict[str, Any] | None:
        """``GET /`` ``configuration`` (Kong's settings, e.g. ``worker_consistency``); None on
        Konnect, which has no ``GET /``, or when the node does not show it."""
        if self._konnect:
            return None
        body = wire.call(self._http, "GET", "/")
        config = body.get("configuration") if isinstance(body, dict) else None
        return config if isinstance(config, dict) else None

    def services(self) -> list[dict[str, Any]]:
        return self._collect("/services")

    def plugins(self) -> list[dict[str, Any]]:
        return self._collect("/plugins")

    def service_plugins(self, service_id: str) -> list[dict[str, Any]]:
        return self._collect(f"/services/{_segment(service_id)}/plugins")

    def create(self, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/services/{_segment(service_id)}/plugins"
        self._ensure_writable("POST", path)
        return _entity(wire.call(self._http, "POST", path, body=body), path)

    def update(self, plugin_id: str, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH ours (Kong); Konnect: PUT the whole plugin, still under its service."""
        path = f"/plugins/{_segment(plugin_id)}"
        if self._konnect:
            body = {**body, "service": {"id": service_id}}
        method = "PUT" if self._konnect else "PATCH"
        self._ensure_writable(method, path)
        return _entity(wire.call(self._http, method, path, body=body), path)

    def delete(self, plugin_id: str) -> bool:
        """False when it was already gone (the outcome we wanted)."""
        path = f"/plugins/{_segment(plugin_id)}"
        self._ensure_writable("DELETE", path)
        try:
            wire.call(self._http, "DELETE", path)
        except KongNotFound:
            return False
        return True

    def _ensure_writable(self, method: str, path: str) -> None:
        if not self._writable:
            raise KongReadOnly(wire.READ_ONLY_MESSAGE, method=method, path=path)

    def _collect(self, path: str, **params: Any) -> list[dict[str, Any]]:
        get = partial(wire.call, self._http, "GET", path)
        return pages.collect(get, Call("GET", path), params=params)[0]


def _entity(body: Any, path: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise KongProtocolError("expected an entity with an 'id'", path=path)
    return body


def _segment(value: str) -> str:
    return quote(value, safe="")
