"""Kong JSON -> frozen models, refusing shapes we do not understand.

A 200 with the wrong shape (a list where an object belongs, no ``data``) is as
untrustworthy as an HTML error page, so it becomes KongProtocolError naming the call.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sidecar.kong.errors import KongError, KongProtocolError
from sidecar.kong.models import (
    Address,
    Flavour,
    NodeInfo,
    Target,
    TargetHealth,
    Upstream,
    UpstreamHealth,
    normalise_target,
)


class Call:
    """Which request a body came from, so shape errors can say so."""

    __slots__ = ("method", "path")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path

    def fail(self, what: str, body: Any) -> KongProtocolError:
        text = json.dumps(body, default=str)
        short = text if len(text) <= 120 else text[:119] + "…"
        return KongProtocolError(
            f"unexpected response shape: {what}; got {short}", method=self.method, path=self.path
        )


def detect_flavour(version: str) -> Flavour:
    """2.x -> KONG_2, 3.x and later -> KONG_3; EE spellings ("3.4.3.29",
    "2.8.1.0-enterprise-edition") included. Before 2.2 targets were an append-only history
    (#6336) that this client cannot drive."""
    match = re.match(r"\s*(\d+)\.(\d+)", version)
    if not match:
        raise KongProtocolError(f"cannot read Kong's version {version!r}", method="GET", path="/")
    major, minor = int(match.group(1)), int(match.group(2))
    if major > 2:
        return Flavour.KONG_3
    if major == 2 and minor >= 2:
        return Flavour.KONG_2
    raise KongError(f"Kong {version} is not supported: targets are plain entities only from 2.2")


def node_info(body: Any, call: Call, *, flavour: Flavour | None = None) -> NodeInfo:
    """``flavour`` overrides detection (for builds whose version string we cannot read)."""
    if not isinstance(body, dict) or not isinstance(body.get("version"), str):
        raise call.fail("expected Kong's node information with a 'version'", body)
    version: str = body["version"]
    config = body.get("configuration")
    config = config if isinstance(config, dict) else {}
    edition = body.get("edition")
    if not isinstance(edition, str):  # 'edition' only exists since 3.6
        enterprise = "enterprise" in version or len(version.split("-")[0].split(".")) > 3
        edition = "enterprise" if enterprise else "community"
    return NodeInfo(
        version=version,
        edition=edition,
        database=str(config.get("database") or "unknown"),
        role=str(config.get("role") or "traditional"),
        node_id=body.get("node_id") if isinstance(body.get("node_id"), str) else None,
        flavour=flavour or detect_flavour(version),
    )


def konnect_info() -> NodeInfo:
    """Konnect's control-plane API has no ``GET /``; it is always writable, never DB-less."""
    return NodeInfo(
        version="konnect",
        edition="konnect",
        database="konnect",
        role="control_plane",
        node_id=None,
        flavour=Flavour.KONNECT,
    )


def page(body: Any, call: Call) -> tuple[list[dict[str, Any]], str | None]:
    """One list page: its items and the offset of the next page (None when it was the last)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise call.fail("expected a page object with a 'data' list", body)
    items = body["data"]
    for item in items:  # a plain loop: every Kong list read goes through it
        if not isinstance(item, dict):
            raise call.fail("expected 'data' to be a list of objects", body)
    offset = body.get("offset")
    if offset is None or offset == "":
        return items, None
    if isinstance(offset, bool) or not isinstance(offset, str | int):
        raise call.fail("expected 'offset' to be a string", body)
    return items, str(offset)


def entity(body: Any, call: Call) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise call.fail("expected an entity object with an 'id'", body)
    return body


def upstream(body: Any, call: Call) -> Upstream:
    obj = entity(body, call)
    name, slots = obj.get("name"), obj.get("slots", 10000)
    if not isinstance(name, str) or not _is_int(slots):
        raise call.fail("expected an upstream with 'name' and integer 'slots'", body)
    return Upstream(
        id=obj["id"],
        name=name,
        algorithm=str(obj.get("algorithm") or "round-robin"),
        hash_on=str(obj.get("hash_on") or "none"),
        hash_fallback=str(obj.get("hash_fallback") or "none"),
        slots=slots,
        tags=_tags(obj.get("tags"), body, call),
    )


def target(body: Any, call: Call) -> Target:
    ident, normalised, weight, tags = _target_fields(body, call)
    parent = body.get("upstream")
    upstream_id = parent.get("id") if isinstance(parent, dict) else None
    return Target(
        id=ident,
        target=normalised,
        weight=weight,
        tags=tags,
        upstream_id=upstream_id if isinstance(upstream_id, str) else None,
    )


def target_health(body: Any, call: Call) -> TargetHealth:
    ident, normalised, weight, tags = _target_fields(body, call)
    health = body.get("health")
    data = body.get("data")
    addresses: tuple[Address, ...] | None = None
    total: int | None = None
    if isinstance(data, dict):
        listed = data.get("addresses")
        if not isinstance(listed, list):
            raise call.fail("expected health 'data.addresses' to be a list", body)
        addresses = tuple([_address(item, body, call) for item in listed])
        weight_data = data.get("weight")
        if isinstance(weight_data, dict) and _is_int(weight_data.get("total")):
            total = weight_data["total"]
    return TargetHealth(
        target=normalised,
        id=ident,
        weight=weight,
        health=health if isinstance(health, str) else None,
        addresses=addresses,
        total_weight=total,
        tags=tags,
    )


def _target_fields(body: Any, call: Call) -> tuple[str, str, int, tuple[str, ...]]:
    """A target entity's id, normalised target, weight and tags, checked: what ``/targets``
    and ``/health`` rows share (a health row is built at once, not through a Target)."""
    obj = entity(body, call)
    raw, weight = obj.get("target"), obj.get("weight")
    if not isinstance(raw, str) or not _is_int(weight):
        raise call.fail("expected a target with string 'target' and integer 'weight'", body)
    return obj["id"], _normalised(raw), weight, _tags(obj.get("tags"), body, call)


def upstream_health(items: list[dict[str, Any]], node_id: Any, call: Call) -> UpstreamHealth:
    return UpstreamHealth(
        node_id=node_id if isinstance(node_id, str) else None,
        targets=tuple(target_health(item, call) for item in items),
    )


def _address(item: Any, body: Any, call: Call) -> Address:
    if not (
        isinstance(item, dict)
        and isinstance(item.get("ip"), str)
        and _is_int(item.get("port"))
        and _is_int(item.get("weight"))
    ):
        raise call.fail("expected addresses with 'ip', 'port' and 'weight'", body)
    return Address(
        ip=item["ip"], port=item["port"], weight=item["weight"], health=str(item.get("health"))
    )


def _tags(value: Any, body: Any, call: Call) -> tuple[str, ...]:
    if value is None:  # Kong sends null for "no tags"
        return ()
    if not isinstance(value, list):
        raise call.fail("expected 'tags' to be a list of strings", body)
    for tag in value:  # a plain loop: every upstream and target parsed goes through it
        if not isinstance(tag, str):
            raise call.fail("expected 'tags' to be a list of strings", body)
    return tuple(value)


def _normalised(raw: str) -> str:
    try:
        return normalise_target(raw)
    except ValueError:  # stored by a Kong with looser rules than ours: keep its spelling
        return raw


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
