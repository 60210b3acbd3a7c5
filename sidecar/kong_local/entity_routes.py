"""What the local Kong's routers of workspace entities share (``consumer_routes``: consumers
and ACLs; ``service_routes``: services, routes and plugins): Kong's generated endpoints for a
collection and for one entity, the refusal of writes without a database, and the clock.

Sources (Kong/kong, tags 2.8.5, 3.4.2, 3.9.3): ``kong/api/endpoints.lua`` (a collection
answers GET and POST; one entity GET, PATCH, PUT and DELETE: 404 when absent except DELETE,
which answers 204 whether or not the entity existed, and PUT, which creates it; any other
method 405; the body is read before the entity's absence is reported),
``kong/db/strategies/off/init.lua`` (405 ``cannot <verb> '<entity>' entities when not using
a database`` on every write of a DB-less node or data plane). ``created_at``/``updated_at``
are whole seconds (``typedefs.auto_timestamp_s``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from sidecar.kong_local.errors import method_not_allowed, not_found, operation_unsupported
from sidecar.kong_local.profiles import Profile
from sidecar.kong_local.reply import BodyReader, Reply
from sidecar.kong_local.schemas import Body
from sidecar.kong_local.store import Store, Workspace

State = TypeVar("State")


def workspace_entities(ws: Workspace, attribute: str, new: Callable[[], State]) -> State:
    """A router's entities of ``ws``, kept on it (``store.reset()`` drops them with it; the
    config hashes read every ``_kong_local_*`` attribute, ``Store.snapshot``)."""
    found = ws.__dict__.get(attribute)
    if found is None:
        found = ws.__dict__[attribute] = new()
    return found  # type: ignore[no-any-return]


def refuse_without_database(profile: Profile, verb: str, entity: str) -> None:
    """``strategies/off``: DB-less nodes and data planes answer every write with 405."""
    if not profile.writable:
        raise operation_unsupported(verb, entity)


@dataclass(frozen=True)
class EntityOps:
    """What the generic one-entity endpoint needs to know of one entity kind."""

    name: str  # "consumers", as in Kong's messages
    render: Callable[[Body], Body]
    delete: Callable[[Body], object]
    # PATCH and PUT: (fields, patch base, replacing) -> saved; PUT's fields + the path key
    # (may 404); the methods answered (Konnect: no PATCH; routes here: neither)
    save: Callable[[Body, Body | None, Body | None], Body] | None = None
    put_body: Callable[[Body, Body | None], Body] | None = None
    writes: Collection[str] = ("PATCH", "PUT")


class EntityRoutes:
    """Base of a router: the store, the workspace, and Kong's generated endpoints."""

    def __init__(self, store: Store, ws: Workspace) -> None:
        self.store = store
        self.ws = ws
        self.profile: Profile = store.profile

    def _write(self, verb: str, entity: str) -> None:
        refuse_without_database(self.profile, verb, entity)

    def _now(self) -> int:
        return int(self.store.clock())

    def _collection(
        self,
        method: str,
        read_body: BodyReader,
        name: str,
        listing: Callable[[], Body],
        create: Callable[[Body], Body],
    ) -> Reply:
        """GET lists, POST creates (201 with the rendered entity), anything else 405."""
        if method == "GET":
            return Reply(200, listing())
        if method != "POST":
            raise method_not_allowed()
        fields, _ = read_body()
        self._write("create", name)
        return Reply(201, create(fields))

    def _one(
        self, method: str, current: Body | None, read_body: BodyReader, ops: EntityOps
    ) -> Reply:
        """One entity's GET/DELETE/PATCH/PUT as ``endpoints.lua`` answers them: 404 when
        absent (DELETE: 204 anyway), PATCH merges, PUT replaces or creates."""
        if method == "GET":
            return Reply(200, ops.render(found_or_404(current)))
        if method == "DELETE":
            self._write("remove", ops.name)
            if current is not None:
                ops.delete(current)
            return Reply(204)
        if method not in ops.writes or ops.save is None or ops.put_body is None:
            raise method_not_allowed()
        fields, _ = read_body()
        if method == "PATCH":
            base = found_or_404(current)
            self._write("update", ops.name)
            return Reply(200, ops.render(ops.save(fields, base, None)))
        self._write("create or update", ops.name)
        return Reply(200, ops.render(ops.save(ops.put_body(fields, current), None, current)))


def found_or_404(rec: Body | None) -> Body:
    if rec is None:
        raise not_found()
    return rec
