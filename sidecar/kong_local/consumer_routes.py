"""Consumers and ACL groups on the local server: ``/consumers``, ``/consumers/{c}/acls``,
``/acls`` (enough for a client to resolve usernames, custom_ids and groups to consumer ids).

Sources (Kong/kong, tags 2.8.5, 3.4.2, 3.9.3):
- ``kong/db/schema/entities/consumers.lua``: ``id``, ``created_at``, ``username`` and
  ``custom_id`` (strings, each unique), ``tags``; ``updated_at`` from 3.3; entity check
  ``at_least_one_of {custom_id, username}``; ``endpoint_key = "username"`` (a path segment is
  an id when it is a UUID, else a username).
- ``kong/api/routes/consumers.lua``: ``GET /consumers?custom_id=x`` answers
  ``{"data": [that consumer], "next": null}`` (an empty list when none); 3.x refuses an empty
  value with 400 ``custom_id must be an unempty string``.
- ``kong/plugins/acl/daos.lua``: ``acls`` = ``id``, ``created_at``, ``consumer`` (foreign,
  required, ``on_delete = "cascade"``), ``group`` (required string), ``tags``;
  ``cache_key = {consumer, group}`` (stored unique: one row per consumer and group).
- ``kong/plugins/acl/api.lua``: under ``/consumers/{c}/acls/{x}``, ``x`` is an id when it is
  a UUID, else a group name of that consumer (404 when absent, except PUT which creates it).
- ``kong/api/endpoints.lua``: the generated collections (``/acls``, nested
  ``/consumers/{c}/acls``), ``?tags=`` filters, paging, DELETE 204 whether or not found,
  PUT upserts; ``kong/db/errors.lua`` for the 409/400 bodies.

The entities live on the store's ``Workspace`` (``store.reset()`` drops them with it); the
caller holds ``store.lock``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sidecar.kong_local.entity_routes import (
    EntityOps,
    EntityRoutes,
    found_or_404,
    workspace_entities,
)
from sidecar.kong_local.errors import (
    ApiError,
    foreign_key_violation,
    not_found,
    primary_key_violation,
    schema_violation,
    unique_violation,
)
from sidecar.kong_local.plugin_schemas import (
    new_id,
    when_updating,
)
from sidecar.kong_local.reply import BodyReader, Reply
from sidecar.kong_local.routing import match, route_table
from sidecar.kong_local.schemas import (
    REQUIRED,
    UNKNOWN,
    Body,
    find_by_endpoint_key,
    is_uuid,
    tags_and_id_errors,
)
from sidecar.kong_local.store import Store, Workspace, page_body

ROOTS = frozenset({"consumers", "acls"})
_ROUTES = route_table(
    [
        ("/consumers", "consumers"),
        ("/consumers/<c>", "consumer"),
        ("/consumers/<c>/acls", "consumer_acls"),
        ("/consumers/<c>/acls/<a>", "consumer_acl"),
        ("/acls", "acls"),
        ("/acls/<a>", "acl"),
    ]
)
_ATTRIBUTE = "_kong_local_consumers"
AT_LEAST_ONE = "at least one of these fields must be non-empty: 'custom_id', 'username'"


@dataclass
class Entities:
    consumers: dict[str, Body] = field(default_factory=dict)
    acls: dict[str, Body] = field(default_factory=dict)


def entities(ws: Workspace) -> Entities:
    return workspace_entities(ws, _ATTRIBUTE, Entities)


def consumer_exists(ws: Workspace, consumer_id: str) -> bool:
    """For foreign keys elsewhere (plugins scoped to a consumer)."""
    return consumer_id in entities(ws).consumers


def handle(
    store: Store,
    ws: Workspace,
    method: str,
    segments: list[str],
    args: dict[str, str],
    read_body: BodyReader,
) -> Reply:
    """``segments`` start at ``consumers`` or ``acls`` (after any workspace prefix)."""
    return _Routes(store, ws).dispatch(method, segments, args, read_body)


class _Routes(EntityRoutes):
    def __init__(self, store: Store, ws: Workspace) -> None:
        super().__init__(store, ws)
        self.state = entities(ws)

    def dispatch(
        self, method: str, segments: list[str], args: dict[str, str], read_body: BodyReader
    ) -> Reply:
        endpoint, values = match(_ROUTES, segments, method)
        if endpoint == "consumers":
            return self._consumers(method, args, read_body)
        if endpoint == "consumer":
            return self._consumer(method, values["c"], read_body)
        if endpoint == "acls":
            return self._acl_collection(method, args, read_body, None)
        if endpoint == "acl":
            return self._acl(method, self._acl_by_id(values["a"]), values["a"], read_body, None)
        consumer = self._consumer_or_404(values["c"])
        if endpoint == "consumer_acls":
            return self._acl_collection(method, args, read_body, consumer)
        key = values["a"]
        acl = self._acl_by_id(key) if is_uuid(key) else self._acl_by_group(consumer, key)
        if acl is not None and acl["consumer"]["id"] != consumer["id"]:
            acl = None
        if acl is None and not is_uuid(key) and method != "PUT":
            raise not_found()
        return self._acl(method, acl, key, read_body, consumer)

    # ------------------------------------------------------------ consumers

    def _consumer_or_none(self, key: str) -> Body | None:
        return find_by_endpoint_key(self.state.consumers, key, "username")

    def _consumer_or_404(self, key: str) -> Body:
        return found_or_404(self._consumer_or_none(key))

    def _render_consumer(self, rec: Body) -> Body:
        keys = ["id", "created_at", "username", "custom_id", "tags"]
        if self.profile.has_updated_at:
            keys.append("updated_at")
        return {k: copy.deepcopy(rec.get(k)) for k in sorted(keys)}

    def _consumers(self, method: str, args: dict[str, str], read_body: BodyReader) -> Reply:
        def listing() -> Body:
            if "custom_id" in args:
                custom_id = args["custom_id"]
                if custom_id == "" and self.profile.is_3x:
                    raise ApiError(400, {"message": "custom_id must be an unempty string"})
                rows = [
                    self._render_consumer(c)
                    for c in self.state.consumers.values()
                    if c["custom_id"] == custom_id
                ]
                return {"data": rows, "next": None}
            rows = [self._render_consumer(c) for c in self.state.consumers.values()]
            return page_body(rows, args, "/consumers")

        def create(fields: Body) -> Body:
            return self._render_consumer(self._save_consumer(fields, None))

        return self._collection(method, read_body, "consumers", listing, create)

    def _consumer(self, method: str, key: str, read_body: BodyReader) -> Reply:
        def put_body(fields: Body, current: Body | None) -> Body:
            return {
                **fields,
                ("id" if is_uuid(key) else "username"): key.lower() if is_uuid(key) else key,
            }

        ops = EntityOps(
            "consumers",
            self._render_consumer,
            self._delete_consumer,
            save=self._save_consumer,
            put_body=put_body,
        )
        return self._one(method, self._consumer_or_none(key), read_body, ops)

    def _field_errors(self, body: Body, allowed: set[str]) -> dict[str, Any]:
        """Unknown fields, ``tags`` (typedefs.tags) and ``id`` (typedefs.uuid)."""
        errors: dict[str, Any] = {k: UNKNOWN for k in body if k not in allowed}
        return {**errors, **tags_and_id_errors(body, self.profile)}

    def _save_consumer(self, body: Body, base: Body | None, replacing: Body | None = None) -> Body:
        allowed = {"id", "username", "custom_id", "tags", "created_at", "updated_at"}
        errors = self._field_errors(body, allowed)
        for key in ("username", "custom_id"):
            if body.get(key) is not None and not isinstance(body[key], str):
                errors[key] = "expected a string"
        merged: Body = {"username": None, "custom_id": None, "tags": None, **(base or {})}
        merged.update({k: v for k, v in body.items() if k in ("username", "custom_id", "tags")})
        if not errors and not merged["username"] and not merged["custom_id"]:
            errors["@entity"] = [when_updating(AT_LEAST_ONE, base is not None)]
        if errors:
            raise schema_violation(errors)
        ident = (base or replacing or {}).get("id") or body.get("id") or new_id()
        for key in ("username", "custom_id"):
            value = merged[key]
            if value is not None and any(
                c[key] == value and c["id"] != ident for c in self.state.consumers.values()
            ):
                raise unique_violation({key: value})
        if base is None and replacing is None and ident in self.state.consumers:
            raise primary_key_violation({"id": ident})
        now = self._now()
        created = (base or replacing or {}).get("created_at", now)
        rec = {**merged, "id": ident, "created_at": created, "updated_at": now}
        self.state.consumers[ident] = rec
        return rec

    def _delete_consumer(self, consumer: Body) -> None:
        """``on_delete = "cascade"``: its ACL rows and the plugins scoped to it go with it
        (``acl/daos.lua``, ``entities/plugins.lua``)."""
        from sidecar.kong_local.service_routes import drop_plugins_of  # it imports this module

        self.state.consumers.pop(consumer["id"], None)
        for acl_id in [a["id"] for a in self.state.acls.values() if _owner(a) == consumer["id"]]:
            del self.state.acls[acl_id]
        drop_plugins_of(self.ws, "consumer", consumer["id"])

    # ------------------------------------------------------------ acls

    def _acl_by_id(self, key: str) -> Body | None:
        return self.state.acls.get(key.lower()) if is_uuid(key) else None

    def _acl_by_group(self, consumer: Body, group: str) -> Body | None:
        return next(
            (
                a
                for a in self.state.acls.values()
                if _owner(a) == consumer["id"] and a["group"] == group
            ),
            None,
        )

    def _acl_collection(
        self, method: str, args: dict[str, str], read_body: BodyReader, consumer: Body | None
    ) -> Reply:
        def listing() -> Body:
            rows = [
                _render_acl(a)
                for a in self.state.acls.values()
                if consumer is None or _owner(a) == consumer["id"]
            ]
            base = "/acls" if consumer is None else f"/consumers/{consumer['id']}/acls"
            return page_body(rows, args, base)

        def create(fields: Body) -> Body:
            return _render_acl(self._save_acl(fields, None, consumer))

        return self._collection(method, read_body, "acls", listing, create)

    def _acl(
        self,
        method: str,
        current: Body | None,
        key: str,
        read_body: BodyReader,
        consumer: Body | None,
    ) -> Reply:
        def put_body(fields: Body, current: Body | None) -> Body:
            body = dict(fields)
            if current is not None:
                body["id"] = current["id"]
            elif is_uuid(key):
                body["id"] = key.lower()
            if not is_uuid(key):  # acl/api.lua: PUT by group name sets (creates) that group
                body.setdefault("group", key)
            return body

        ops = EntityOps(
            "acls",
            _render_acl,
            lambda acl: self.state.acls.pop(acl["id"], None),
            save=lambda fields, base, replacing: self._save_acl(fields, base, consumer, replacing),
            put_body=put_body,
        )
        return self._one(method, current, read_body, ops)

    def _save_acl(
        self,
        body: Body,
        base: Body | None,
        consumer: Body | None,
        replacing: Body | None = None,
    ) -> Body:
        errors = self._field_errors(body, {"id", "consumer", "group", "tags", "created_at"})
        merged: Body = {"group": None, "tags": None, "consumer": None, **(base or {})}
        merged.update({k: v for k, v in body.items() if k in ("group", "tags", "consumer")})
        if consumer is not None:
            merged["consumer"] = {"id": consumer["id"]}
        if merged["group"] is None:
            errors["group"] = REQUIRED
        elif not isinstance(merged["group"], str):
            errors["group"] = "expected a string"
        owner = merged["consumer"]
        if owner is None:
            errors["consumer"] = REQUIRED
        elif not isinstance(owner, dict) or not is_uuid(str(owner.get("id", ""))):
            errors["consumer"] = {"id": "expected a valid UUID"}
        if errors:
            raise schema_violation(errors)
        owner_id = owner["id"].lower()
        if owner_id not in self.state.consumers:
            raise foreign_key_violation("consumer", "consumers", {"id": owner_id})
        ident = (base or replacing or {}).get("id") or body.get("id") or new_id()
        for other in self.state.acls.values():
            same = _owner(other) == owner_id and other["group"] == merged["group"]
            if same and other["id"] != ident:
                raise unique_violation({"consumer": {"id": owner_id}, "group": merged["group"]})
        if base is None and replacing is None and ident in self.state.acls:
            raise primary_key_violation({"id": ident})
        created = (base or replacing or {}).get("created_at", self._now())
        rec = {
            "id": ident,
            "created_at": created,
            "consumer": {"id": owner_id},
            "group": merged["group"],
            "tags": merged["tags"],
        }
        self.state.acls[ident] = rec
        return rec


def _owner(acl: Body) -> str:
    return str(acl["consumer"]["id"])


def _render_acl(rec: Body) -> Body:
    return {k: copy.deepcopy(rec[k]) for k in ("consumer", "created_at", "group", "id", "tags")}
