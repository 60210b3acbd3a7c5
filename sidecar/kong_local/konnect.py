"""Konnect's control-plane configuration API for upstreams and targets.

Source: ``Kong/developer.konghq.com`` ``api-specs/konnect/control-planes-config/v2/openapi.yaml``
(paths, PUT = upsert on targets, no PATCH, DELETE 204, ``expected-config-hash``, ``nodes``) and
``Kong/sdk-konnect-go`` models (``BadRequestError``: status, title, type, instance, detail,
invalid_parameters; ``GetExpectedConfigHash``: expected_hash, created_at, updated_at).
Its data plane nodes report the config as of ``lag`` seconds ago (``kong_local.propagation``);
with no lag they are always in sync (config_hash equals the expected one).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sidecar.kong_local import service_routes
from sidecar.kong_local.errors import ApiError, method_not_allowed, not_found
from sidecar.kong_local.propagation import LagView, config_hash
from sidecar.kong_local.reply import BodyReader, Reply
from sidecar.kong_local.routing import match, route_table
from sidecar.kong_local.schemas import render_target, render_upstream
from sidecar.kong_local.service_routes import ROOTS
from sidecar.kong_local.store import Store

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    500: "Internal Server Error",
}
PROBLEM_JSON = "application/problem+json"


def problem(status: int, detail: str, invalid: list[dict[str, Any]] | None = None) -> Reply:
    body: dict[str, Any] = {
        "status": status,
        "title": _TITLES.get(status, "Error"),
        "type": f"https://httpstatuses.com/{status}",
        "instance": f"kong:trace:{secrets.randbelow(10**19):019d}",
        "detail": detail,
    }
    if status == 400:
        body["invalid_parameters"] = invalid or []
    return Reply(status, body, {"Content-Type": PROBLEM_JSON})


def problem_from(err: ApiError) -> Reply:
    fields = err.body.get("fields") or {}
    invalid: list[dict[str, Any]] = []
    for name, reason in sorted(fields.items()):
        if name == "@entity":
            invalid += [{"field": "@entity", "reason": r, "rule": "entity_check"} for r in reason]
        elif isinstance(reason, list):
            invalid += [{"field": f"{name}[{i}]", "reason": r} for i, r in enumerate(reason) if r]
        elif isinstance(reason, str):
            invalid.append({"field": name, "reason": reason})
    detail = err.body.get("message", "")
    if err.status == 404:
        detail = "Not found"
    return problem(err.status, detail, invalid)


# Paths under /v2/control-planes/{id}. No methods: each handler answers 405 itself after the
# 404s (an unknown upstream before a wrong method on its targets).
_ROUTES = route_table(
    [
        ("/expected-config-hash", "expected_hash"),
        ("/nodes", "nodes"),
        ("/core-entities/targets", "all_targets"),
        ("/core-entities/upstreams", "upstreams"),
        ("/core-entities/upstreams/<u>", "upstream"),
        ("/core-entities/upstreams/<u>/targets", "targets"),
        ("/core-entities/upstreams/<u>/targets/<t>", "target"),
    ]
)
_GET_ONLY = frozenset({"expected_hash", "nodes", "all_targets"})


class KonnectApi:
    def __init__(self, store: Store, control_plane_id: str, nodes: Sequence[LagView] = ()) -> None:
        self.store = store
        self.cp = control_plane_id
        self.nodes = list(nodes)
        self.profile = store.profile

    def config_hash(self) -> str:
        return config_hash(self.store)

    def handle(
        self, method: str, segments: list[str], args: dict[str, str], read_body: BodyReader
    ) -> Reply:
        try:
            return self._dispatch(method, segments, args, read_body)
        except ApiError as err:
            return problem_from(err)

    def _dispatch(
        self, method: str, segments: list[str], args: dict[str, str], read_body: BodyReader
    ) -> Reply:
        ws = self.store.workspace("default")
        if segments[:1] == ["core-entities"] and segments[1:2] and segments[1] in ROOTS:
            rest = segments[1:]
            return service_routes.handle(
                self.store, ws, method, rest, args, read_body, konnect=True
            )
        endpoint, values = match(_ROUTES, segments, method)
        if endpoint in _GET_ONLY:
            if method != "GET":
                raise not_found()  # the spec has no other method there: no route at all
            return self._read_only(endpoint)
        if endpoint == "upstreams":
            return self._upstreams(method, args, read_body)
        if endpoint == "upstream":
            return self._upstream(method, values["u"], read_body)
        upstream = self.store.find_upstream(ws, values["u"])
        if upstream is None:
            raise not_found()
        if endpoint == "targets":
            return self._targets(method, upstream, args, read_body)
        return self._target(method, upstream, values["t"], read_body)

    def _read_only(self, endpoint: str) -> Reply:
        ws = self.store.workspace("default")
        now = int(self.store.clock())
        if endpoint == "expected_hash":
            return Reply(
                200, {"expected_hash": self.config_hash(), "created_at": now, "updated_at": now}
            )
        if endpoint == "nodes":
            items = [
                {
                    "id": view.node.node_id,
                    "version": "3.9.1.0",
                    "hostname": view.node.hostname,
                    "last_ping": now,
                    "type": "kong-proxy",
                    "created_at": now,
                    "updated_at": now,
                    "config_hash": view.config_hash(),
                    "compatibility_status": {"state": "COMPATIBILITY_STATE_FULLY_COMPATIBLE"},
                }
                for view in self.nodes
            ]
            return Reply(200, {"items": items, "page": {"total": len(items)}})
        rows = [t for u in ws.upstreams.values() for t in self.store.targets_of(ws, u)]
        return Reply(200, {"data": [render_target(t, self.profile) for t in rows], "next": None})

    def _upstreams(self, method: str, args: dict[str, str], read_body: BodyReader) -> Reply:
        ws = self.store.workspace("default")
        if method == "GET":
            page, offset, _ = self.store.list_upstreams(ws, args, "")
            return Reply(200, self._list([render_upstream(u, self.profile) for u in page], offset))
        if method == "POST":
            fields, form = read_body()
            rec = self.store.create_upstream(ws, fields, from_form=form)
            return Reply(201, render_upstream(rec, self.profile))
        raise method_not_allowed()

    def _targets(
        self, method: str, upstream: dict[str, Any], args: dict[str, str], read_body: BodyReader
    ) -> Reply:
        ws = self.store.workspace("default")
        if method == "GET":
            page, offset = self.store.page_targets_raw(ws, upstream, args)
            return Reply(200, self._list([render_target(t, self.profile) for t in page], offset))
        if method == "POST":
            fields, form = read_body()
            rec, _ = self._create_target(upstream, fields, form)
            return Reply(201, render_target(rec, self.profile))
        raise method_not_allowed()

    def _target(
        self, method: str, upstream: dict[str, Any], target_key: str, read_body: BodyReader
    ) -> Reply:
        ws = self.store.workspace("default")
        target = self.store.find_target(ws, upstream, target_key)
        if method == "GET":
            if target is None:
                raise not_found()
            return Reply(200, render_target(target, self.profile))
        if method == "PUT":
            fields, _ = read_body()
            rec = self.store.put_target_konnect(ws, upstream, target_key, fields)
            return Reply(200, render_target(rec, self.profile))
        if method == "DELETE":
            if target is not None:
                self.store.delete_target(ws, target)
            return Reply(204)  # the spec answers 204 whether or not it existed
        raise method_not_allowed()

    def _create_target(self, upstream: dict[str, Any], fields: dict[str, Any], form: bool):
        ws = self.store.workspace("default")
        return self.store.create_target(ws, upstream, fields, from_form=form)

    def _upstream(self, method: str, key: str, read_body: BodyReader) -> Reply:
        ws = self.store.workspace("default")
        rec = self.store.find_upstream(ws, key)
        if method == "GET":
            if rec is None:
                raise not_found()
            return Reply(200, render_upstream(rec, self.profile))
        if method == "PUT":
            fields, form = read_body()
            rec = self.store.put_upstream(ws, key, fields, from_form=form)
            return Reply(200, render_upstream(rec, self.profile))
        if method == "DELETE":
            if rec is not None:
                self.store.delete_upstream(ws, rec)
            return Reply(204)
        raise method_not_allowed()

    @staticmethod
    def _list(rows: list[dict[str, Any]], offset: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"data": rows, "next": None}
        if offset is not None:
            body["offset"] = offset
            body["next"] = f"?offset={offset}"
        return body
