"""In-memory upstreams and targets with Kong's DAO semantics (``kong/db/dao/targets.lua``).

One :class:`Store` per server, one :class:`Workspace` per EE workspace (Konnect uses
"default"). The caller holds ``store.lock`` around every call; nothing here is thread-aware.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sidecar.kong_local.addresses import format_target
from sidecar.kong_local.configuration import NodeConfiguration
from sidecar.kong_local.errors import (
    ApiError,
    invalid_offset,
    invalid_options,
    invalid_size,
    primary_key_violation,
    unique_violation,
)
from sidecar.kong_local.profiles import Profile
from sidecar.kong_local.schemas import (
    Body,
    build_upstream,
    find_by_endpoint_key,
    is_uuid,
    validate_target,
)

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


@dataclass
class Workspace:
    upstreams: dict[str, Body] = field(default_factory=dict)
    targets: dict[str, Body] = field(default_factory=dict)
    # (target id, "ip:port" or None for the whole target) -> "HEALTHY" | "UNHEALTHY"
    overrides: dict[tuple[str, str | None], str] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)  # upstream ids with a built balancer


class Store:
    def __init__(
        self,
        profile: Profile,
        clock: Callable[[], float],
        configuration: NodeConfiguration | None = None,
    ) -> None:
        self.profile = profile
        self.clock = clock
        self.configuration = configuration or NodeConfiguration.for_profile(profile)
        self.lock = threading.RLock()
        self.workspaces: dict[str, Workspace] = {"default": Workspace()}
        self._seq = 0

    def reconfigure(self, **values: Any) -> None:
        """Change kong.conf values of a running node (tests: e.g. shorter intervals); a real
        Kong reads them at start."""
        with self.lock:
            self.configuration = self.configuration.with_values(**values)

    def workspace(self, name: str) -> Workspace:
        return self.workspaces.setdefault(name, Workspace())

    def reset(self) -> None:
        self.workspaces = {name: Workspace() for name in self.workspaces}

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------ upstreams

    def find_upstream(self, ws: Workspace, key: str) -> Body | None:
        return find_by_endpoint_key(ws.upstreams, key, "name")

    def create_upstream(self, ws: Workspace, body: Body, *, from_form: bool = False) -> Body:
        entity = build_upstream(body, self.profile, base=None, from_form=from_form)
        if self.find_upstream(ws, entity["name"]) is not None:
            raise unique_violation({"name": entity["name"]})
        upstream_id = body.get("id") or str(uuid.uuid4())
        if upstream_id in ws.upstreams:
            raise primary_key_violation({"id": upstream_id})
        now = int(self.clock())
        rec = {**entity, "id": upstream_id, "created_at": now, "updated_at": now}
        ws.upstreams[upstream_id] = rec
        if self.profile.eager_balancer:
            ws.ready.add(upstream_id)
        return rec

    def update_upstream(
        self, ws: Workspace, rec: Body, body: Body, *, from_form: bool = False
    ) -> Body:
        entity = build_upstream(body, self.profile, base=rec, from_form=from_form)
        other = self.find_upstream(ws, entity["name"])
        if other is not None and other["id"] != rec["id"]:
            raise unique_violation({"name": entity["name"]})
        rec.update(entity)
        rec["updated_at"] = int(self.clock())
        return rec

    def put_upstream(self, ws: Workspace, key: str, body: Body, *, from_form: bool = False) -> Body:
        """PUT /upstreams/{name|id}: upsert that replaces every field not given."""
        body = dict(body)
        if is_uuid(key):
            body["id"] = key.lower()
        else:
            body["name"] = key
        existing = self.find_upstream(ws, key)
        if existing is None:
            return self.create_upstream(ws, body, from_form=from_form)
        body.setdefault("name", existing["name"])
        entity = build_upstream(body, self.profile, base=None, from_form=from_form)
        other = self.find_upstream(ws, entity["name"])
        if other is not None and other["id"] != existing["id"]:
            raise unique_violation({"name": entity["name"]})
        existing.update({k: v for k, v in entity.items() if k not in ("id", "created_at")})
        existing["updated_at"] = int(self.clock())
        return existing

    def delete_upstream(self, ws: Workspace, rec: Body) -> None:
        """Cascade: the foreign key on targets is ``on_delete = "cascade"``."""
        ws.upstreams.pop(rec["id"], None)
        for target_id in [t["id"] for t in self.targets_of(ws, rec)]:
            self._drop_target(ws, target_id)
        ws.ready.discard(rec["id"])

    def list_upstreams(
        self, ws: Workspace, args: dict[str, str], base_path: str
    ) -> tuple[list[Body], str | None, str | None]:
        return page_by_id(list(ws.upstreams.values()), args, base_path)

    # ------------------------------------------------------------ targets

    def targets_of(self, ws: Workspace, upstream: Body) -> list[Body]:
        """Chronological, as ``select_by_upstream_raw`` sorts (created_at, then insertion)."""
        rows = [t for t in ws.targets.values() if t["upstream_id"] == upstream["id"]]
        return sorted(rows, key=lambda t: (t["created_at"], t["_seq"]))

    def find_target(self, ws: Workspace, upstream: Body, key: str) -> Body | None:
        """By id or by the exact stored ``host:port`` string (no normalisation of ``key``)."""
        if is_uuid(key):
            rec = ws.targets.get(key.lower())
            return rec if rec and rec["upstream_id"] == upstream["id"] else None
        return next((t for t in self.targets_of(ws, upstream) if t["target"] == key), None)

    def create_target(
        self, ws: Workspace, upstream: Body, body: Body, *, from_form: bool = False
    ) -> tuple[Body, bool]:
        """Returns (record, created). 2.x re-POST of the raw string updates instead."""
        clean = validate_target(body, self.profile, partial=False, from_form=from_form)
        if self.profile.post_existing_updates:
            existing = self.find_target(ws, upstream, clean["target"])
            if existing is not None:
                return self.update_target(ws, existing, body, from_form=from_form), False
        stored = format_target(clean["target"])
        assert stored is not None  # validated above
        # 3.0+: cache_key (upstream, target) is unique (#8179/#8596/#8798).
        if not self.profile.post_existing_updates and any(
            t["target"] == stored for t in self.targets_of(ws, upstream)
        ):
            raise unique_violation({"target": stored, "upstream": {"id": upstream["id"]}})
        target_id = clean.get("id") or str(uuid.uuid4())
        if target_id in ws.targets:
            raise primary_key_violation({"id": target_id})
        now = round(self.clock(), 3)
        rec = {
            "id": target_id,
            "target": stored,
            "weight": clean.get("weight", 100),
            "tags": clean.get("tags"),
            "upstream_id": upstream["id"],
            "created_at": now,
            "updated_at": now,
            "failover": clean.get("failover", False),
            "_seq": self._next_seq(),
        }
        ws.targets[target_id] = rec
        return rec, True

    def update_target(
        self,
        ws: Workspace,
        rec: Body,
        body: Body,
        *,
        from_form: bool = False,
        replace: bool = False,
    ) -> Body:
        """PATCH (and OSS PUT) are partial; ``replace`` is Konnect's PUT (defaults reset)."""
        clean = validate_target(body, self.profile, partial=not replace, from_form=from_form)
        clean.pop("id", None)
        if "target" in clean:
            stored = format_target(clean["target"])
            if stored != rec["target"] and any(
                t["target"] == stored and t["id"] != rec["id"]
                for t in ws.targets.values()
                if t["upstream_id"] == rec["upstream_id"]
            ):
                raise unique_violation({"target": stored, "upstream": {"id": rec["upstream_id"]}})
            clean["target"] = stored
        if replace:
            clean = {"weight": 100, "tags": None, "failover": False, **clean}
        rec.update(clean)
        rec["updated_at"] = round(self.clock(), 3)
        return rec

    def put_target_konnect(self, ws: Workspace, upstream: Body, key: str, body: Body) -> Body:
        """Konnect PUT …/targets/{id}: upsert by id, replacing every field."""
        existing = self.find_target(ws, upstream, key)
        if existing is not None:
            return self.update_target(ws, existing, body, replace=True)
        if not is_uuid(key):
            raise ApiError(404, {"message": "Not found"})
        rec, _ = self.create_target(ws, upstream, {**body, "id": key.lower()})
        return rec

    def delete_target(self, ws: Workspace, rec: Body) -> None:
        self._drop_target(ws, rec["id"])

    def _drop_target(self, ws: Workspace, target_id: str) -> None:
        ws.targets.pop(target_id, None)
        for key in [k for k in ws.overrides if k[0] == target_id]:
            del ws.overrides[key]

    def page_targets(
        self, ws: Workspace, upstream: Body, args: dict[str, str]
    ) -> tuple[list[Body], str | None]:
        """``page_for_upstream``: all targets newest first; size capped at 1000 silently;
        ``offset`` is a plain index; size=0 yields an empty page with offset "0"."""
        size = parse_lenient_size(args.get("size"))
        offset_raw = args.get("offset")
        offset = 0
        if offset_raw:
            try:
                offset = int(offset_raw)
            except ValueError:
                raise invalid_offset(offset_raw) from None
        rows = list(reversed(self.targets_of(ws, upstream)))
        size = min(size, MAX_PAGE_SIZE)
        page = rows[offset : offset + size] if size > 0 else []
        more = 0 <= size + offset < len(rows)
        return page, (str(size + offset) if more else None)

    def page_targets_raw(
        self, ws: Workspace, upstream: Body, args: dict[str, str]
    ) -> tuple[list[Body], str | None]:
        """3.x ``/targets/all``: the generic DAO page, ordered by primary key, opaque offset."""
        size = parse_strict_size(args.get("size"))
        rows = sorted(self.targets_of(ws, upstream), key=lambda t: t["id"])
        return page_after_offset(rows, args.get("offset"), size)

    # ------------------------------------------------------------ seed

    def load_seed(self, seed: dict[str, Any], ws_name: str = "default") -> None:
        ws = self.workspace(ws_name)
        for item in seed.get("upstreams", []):
            body = {k: v for k, v in item.items() if k != "targets"}
            upstream = self.create_upstream(ws, body)
            for target in item.get("targets", []):
                self.create_target(ws, upstream, dict(target))
            ws.ready.add(upstream["id"])  # seeded = traffic already flowed

    def snapshot(self, ws_name: str = "default") -> list[Any]:
        """A stable view of the configuration, for the config hashes (Konnect, hybrid)."""
        ws = self.workspace(ws_name)
        out: list[Any] = []
        for up in sorted(ws.upstreams.values(), key=lambda u: u["id"]):
            targets = [
                (t["id"], t["target"], t["weight"], t["tags"]) for t in self.targets_of(ws, up)
            ]
            out.append((up["id"], up["name"], up["algorithm"], up["hash_on"], targets))
        # Services, plugins, consumers, ACLs: kept by their route modules on the workspace
        # (``_kong_local_*``); a data plane's hash covers its whole configuration.
        for key in sorted(k for k in vars(ws) if k.startswith("_kong_local_")):
            out.append((key, vars(vars(ws)[key])))
        return out


# ---------------------------------------------------------------- paging helpers


def page_by_id(
    rows: list[Body], args: dict[str, str], base_path: str
) -> tuple[list[Body], str | None, str | None]:
    """Kong's generic DAO page (``kong/api/endpoints.lua``, top-level collections): ordered
    by id, ``?tags=`` filter, opaque offset, and a ``next`` that keeps ``size`` and ``tags``."""
    size = parse_strict_size(args.get("size"))
    tags_filter = parse_tags_filter(args.get("tags"))
    rows = sorted(rows, key=lambda r: r["id"])
    if tags_filter is not None:
        rows = [r for r in rows if tags_filter(r.get("tags") or [])]
    page, offset = page_after_offset(rows, args.get("offset"), size)
    next_page = None
    if offset is not None:
        next_page = f"{base_path}?offset={offset}"
        if args.get("size"):
            next_page += f"&size={args['size']}"
        if args.get("tags"):
            next_page += f"&tags={args['tags']}"
    return page, offset, next_page


def page_after_offset(
    rows: list[Body], offset: str | None, size: int
) -> tuple[list[Body], str | None]:
    """Up to ``size`` rows (ordered by id) after the opaque ``offset``, and the offset of the
    next page when rows remain (the Postgres strategy pages by primary key)."""
    start = 0
    if offset:
        after = decode_offset(offset)
        start = next((i for i, r in enumerate(rows) if r["id"] > after), len(rows))
    page = rows[start : start + size]
    more = start + size < len(rows)
    return page, (encode_offset(page[-1]["id"]) if more else None)


def page_body(rows: list[Body], args: dict[str, str], base_path: str) -> Body:
    """A top-level or nested collection's answer: ``data``, ``next`` and ``offset`` if any."""
    page, offset, next_page = page_by_id(rows, args, base_path)
    body: Body = {"data": page, "next": next_page}
    if offset is not None:
        body["offset"] = offset
    return body


def parse_strict_size(raw: str | None) -> int:
    """endpoints.lua: a number between 1 and 1000, else 400 code 9 (recorded for size=0)."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = float(raw)
    except ValueError:
        raise invalid_size("size must be a number") from None
    if not size.is_integer() or not 1 <= size <= MAX_PAGE_SIZE:
        raise invalid_size(f"size must be an integer between 1 and {MAX_PAGE_SIZE}")
    return int(size)


def parse_lenient_size(raw: str | None) -> int:
    """targets ``page_for_upstream`` bypasses the 1..1000 check (size=0 and 5000 recorded)."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        return int(float(raw))
    except ValueError:
        raise invalid_size("size must be a number") from None


def encode_offset(last_id: str) -> str:
    """Postgres strategy offsets: base64 of the JSON list of the last primary key."""
    return base64.b64encode(json.dumps([last_id]).encode()).decode().rstrip("=")


def decode_offset(offset: str) -> str:
    try:
        padded = offset + "=" * (-len(offset) % 4)
        value = json.loads(base64.b64decode(padded, validate=True))
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[0]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    raise invalid_offset(offset)


# endpoints.lua (2.8.5, 3.4.2, 3.9.3): tag bytes are printable ASCII but ``,`` and ``/``, or
# the bytes of a non-ASCII UTF-8 character (0x80-0xF4); in text, any character above 0x7F.
_TAG_CHAR = r"[\x21-\x2B\x2D\x2E\x30-\x7E\u0080-\U0010FFFF]"
_TAGS_AND = re.compile(f"(?:{_TAG_CHAR}+(?:,|$))+")
_TAGS_OR = re.compile(f"(?:{_TAG_CHAR}+(?:/|$))+")


def parse_tags_filter(raw: str | None) -> Callable[[Iterable[str]], bool] | None:
    """``?tags=a,b`` = AND, ``a/b`` = OR, at most 5 (``kong/api/endpoints.lua``
    ``TAGS_AND_REGEX``/``TAGS_OR_REGEX``). Anything neither regex matches – ``,`` and ``/``
    mixed, a space or a control character – stays a string without ``tags_cond``, which the
    DAO refuses as "invalid filter syntax" (``kong/db/dao/init.lua`` ``check_options``)."""
    if raw is None or raw == "":
        return None
    if _TAGS_AND.fullmatch(raw):
        sep = ","
    elif _TAGS_OR.fullmatch(raw):
        sep = "/"
    else:
        raise invalid_options({"tags": "invalid filter syntax"})
    wanted = raw.split(sep)
    if len(wanted) > 5:
        raise invalid_options({"tags": "cannot query more than 5 tags"})
    if sep == "/":
        return lambda tags: bool(set(wanted) & set(tags))
    return lambda tags: set(wanted) <= set(tags)
