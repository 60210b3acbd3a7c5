"""Cohorts of an upstream: who never sees the canary, who always does (issue 14). Pure.

The sidecar decides *who* here and Kong's bundled ``post-function`` only compares ids: a
consumer named by username, custom_id or id, or a member of a Kong ACL group, is resolved to
consumer ids on the control side (``GET /consumers``, ``GET /acls``), never from a header a
client could send (reference section 11: without the ``acl`` plugin ``X-Consumer-Groups`` is
whatever the client sent).

Shadow upstreams ``{u}--stable`` and ``{u}--canary`` carry the stable and canary targets of
``u`` (same weights, algorithm, hashing and health checks), so a cohort's request goes to one
variant only. Their names must be valid Kong upstream names: Kong's ``validate_name``
(``kong/db/schema/entities/upstreams.lua``) takes a hostname (``utils.normalize_ip`` type
``name``, no IP, no port); we hold shadow names to DNS's limits as well (RFC 1035: labels of
at most 63 characters, not starting or ending with ``-``; at most 253 in all), so a name that
works today keeps working behind any resolver.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar.core.names import is_upstream_name
from sidecar.core.tags import COHORT_TAG_PREFIX, MANAGED_TAG

STABLE_SUFFIX = "--stable"
CANARY_SUFFIX = "--canary"
MAX_HOSTNAME = 253
MAX_LABEL = 63
MAX_MEMBERS = 10_000  # per list; the Lua keeps them in a set (one table lookup per request)
HEADER_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Kong's typedefs.header_name rule
HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,256}")
# Upstream fields a shadow copies from its main upstream (Kong 2.8: upstreams.lua; 3.x adds
# the query_arg/uri_capture hash fields and use_srv_name). Fields Kong does not return are
# not sent, so one list serves every version.
MIRRORED_FIELDS = (
    "algorithm",
    "hash_on",
    "hash_fallback",
    "hash_on_header",
    "hash_fallback_header",
    "hash_on_cookie",
    "hash_on_cookie_path",
    "hash_on_query_arg",
    "hash_fallback_query_arg",
    "hash_on_uri_capture",
    "hash_fallback_uri_capture",
    "slots",
    "healthchecks",
    "host_header",
    "client_certificate",
    "use_srv_name",
)


class CohortError(ValueError):
    """Bad cohorts input: ``field`` names it, the message says the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Members:
    consumers: tuple[str, ...] = ()  # username, custom_id or id, as the caller wrote them
    groups: tuple[str, ...] = ()  # Kong ACL group names

    def as_json(self) -> dict[str, list[str]]:
        return {"consumers": list(self.consumers), "groups": list(self.groups)}

    def __bool__(self) -> bool:
        return bool(self.consumers or self.groups)


@dataclass(frozen=True)
class HeaderOverride:
    """``X-Canary: always|never``: wins over both lists (an on-call engineer's curl)."""

    name: str
    always: str = "always"
    never: str = "never"

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "always": self.always, "never": self.never}


@dataclass(frozen=True)
class CohortSpec:
    """What the caller asked for; stored in Kong (inside the plugin's code) as JSON."""

    never: Members = field(default_factory=Members)
    always: Members = field(default_factory=Members)
    header: HeaderOverride | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "never_canary": self.never.as_json(),
            "always_canary": self.always.as_json(),
            "header": self.header.as_json() if self.header else None,
        }


def _members(value: Any, where: str) -> Members:
    if value is None:
        return Members()
    if not isinstance(value, Mapping):
        raise CohortError(where, "must be an object with consumers and/or groups")
    unknown = sorted(set(value) - {"consumers", "groups"})
    if unknown:
        raise CohortError(f"{where}.{unknown[0]}", "unknown field")
    lists = []
    for key in ("consumers", "groups"):
        items = value.get(key) or []
        if not isinstance(items, list):
            raise CohortError(f"{where}.{key}", "must be a list of strings")
        if len(items) > MAX_MEMBERS:
            raise CohortError(f"{where}.{key}", f"at most {MAX_MEMBERS} entries")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip() or len(item) > 512:
                raise CohortError(f"{where}.{key}[{i}]", "must be a non-empty string (≤ 512)")
        lists.append(tuple(dict.fromkeys(items)))  # duplicates are harmless: drop them
    return Members(lists[0], lists[1])


def _header(value: Any) -> HeaderOverride | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise CohortError("header", "must be an object {name, always, never}")
    unknown = sorted(set(value) - {"name", "always", "never"})
    if unknown:
        raise CohortError(f"header.{unknown[0]}", "unknown field")
    name = value.get("name")
    if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
        raise CohortError("header.name", "must be a header name (letters, digits, '-', '_')")
    values = {}
    for key in ("always", "never"):
        text = value.get(key, key)
        if not isinstance(text, str) or not HEADER_VALUE.fullmatch(text):
            raise CohortError(f"header.{key}", "must be 1-256 printable characters, no spaces")
        values[key] = text
    if values["always"].lower() == values["never"].lower():
        raise CohortError("header.never", "must differ from header.always")
    return HeaderOverride(name, values["always"], values["never"])


def parse_spec(body: Mapping[str, Any]) -> CohortSpec:
    """The cohorts of a PUT body (its other fields, lease/dry_run/wait, are the caller's)."""
    spec = CohortSpec(
        _members(body.get("never_canary"), "never_canary"),
        _members(body.get("always_canary"), "always_canary"),
        _header(body.get("header")),
    )
    if not (spec.never or spec.always or spec.header):
        raise CohortError(
            "never_canary", "name at least one consumer or group, or a header override"
        )
    return spec


def spec_from_json(value: Any) -> CohortSpec | None:
    """A spec read back from Kong; None when it is not one of ours."""
    try:
        return parse_spec(value) if isinstance(value, Mapping) else None
    except CohortError:
        return None


# ---- resolution --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    never_ids: frozenset[str]
    always_ids: frozenset[str]  # never wins over always: no id is in both

    def as_json(self) -> dict[str, list[str]]:
        return {"never_canary": sorted(self.never_ids), "always_canary": sorted(self.always_ids)}


def consumer_index(consumers: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Reference -> consumer id: by id first, then username, then custom_id (Kong's
    ``/consumers/{username or id}`` looks up the same way; custom_id is unique too)."""
    index: dict[str, str] = {}
    rows = [c for c in consumers if isinstance(c.get("id"), str)]
    for key in ("custom_id", "username", "id"):  # later keys win
        for c in rows:
            value = c.get(key)
            if isinstance(value, str) and value:
                index[value] = c["id"]
    return index


def group_index(acls: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """ACL group -> consumer ids (``GET /acls`` rows: ``group`` and ``consumer.id``)."""
    out: dict[str, set[str]] = {}
    for acl in acls:
        consumer = acl.get("consumer")
        cid = consumer.get("id") if isinstance(consumer, Mapping) else None
        if isinstance(acl.get("group"), str) and isinstance(cid, str):
            out.setdefault(acl["group"], set()).add(cid)
    return out


def resolve(
    spec: CohortSpec,
    consumers: Mapping[str, str],
    groups: Mapping[str, set[str]],
    *,
    strict: bool = True,
) -> Resolved:
    """Consumer ids per list. ``strict``: a consumer Kong does not know is a CohortError
    naming it (a typo must not leave a merchant on the canary); groups may be empty or
    unknown (membership changes, and the timer picks it up). Not strict (the timer's
    refresh): unknown consumers are skipped."""

    def ids(members: Members, where: str) -> set[str]:
        found: set[str] = set()
        for i, ref in enumerate(members.consumers):
            cid = consumers.get(ref)
            if cid is None:
                if strict:
                    raise CohortError(
                        f"{where}.consumers[{i}]",
                        f"Kong has no consumer with username, custom_id or id {ref!r}",
                    )
                continue
            found.add(cid)
        for group in members.groups:
            found |= groups.get(group, set())
        return found

    never = ids(spec.never, "never_canary")
    always = ids(spec.always, "always_canary") - never
    return Resolved(frozenset(never), frozenset(always))


# ---- shadow upstreams --------------------------------------------------------------------


def shadow_names(upstream: str) -> tuple[str, str]:
    return upstream + STABLE_SUFFIX, upstream + CANARY_SUFFIX


def check_shadow_names(upstream: str) -> None:
    """CohortError (field ``upstream``) when ``{u}--stable``/``{u}--canary`` would not be a
    valid upstream name (see the module docstring for the rule)."""
    for name in shadow_names(upstream):
        labels = name.split(".")
        bad = (
            not is_upstream_name(name)
            or len(name) > MAX_HOSTNAME
            or any(not label or len(label) > MAX_LABEL for label in labels)
            or any(label.startswith("-") or label.endswith("-") for label in labels)
        )
        if bad:
            raise CohortError(
                "upstream",
                f"the shadow upstream name {name!r} would not be a valid hostname (labels of "
                f"1-{MAX_LABEL} characters, not starting or ending with '-', at most "
                f"{MAX_HOSTNAME} in all); rename the upstream or shorten its last label",
            )


def shadow_targets(
    targets: Iterable[tuple[str, int, str]],
) -> dict[str, dict[str, int]]:
    """``(target, weight, variant)`` rows of the main upstream -> the targets and weights
    each shadow should hold: ``stable`` the stable targets, ``canary`` the canary ones."""
    out: dict[str, dict[str, int]] = {"stable": {}, "canary": {}}
    for target, weight, variant in targets:
        if variant in out:
            out[variant][target] = weight
    return out


@dataclass(frozen=True)
class TargetWrite:
    action: str  # "create" | "update" | "delete"
    target: str
    weight: int


def plan_shadow(current: Mapping[str, int], wanted: Mapping[str, int]) -> list[TargetWrite]:
    """Writes that make a shadow's targets ``wanted``: creates and raises first, then lowers,
    deletions last, so the shadow never has fewer live targets than either end state."""
    creates = [TargetWrite("create", t, w) for t, w in wanted.items() if t not in current]
    updates = [
        TargetWrite("update", t, w) for t, w in wanted.items() if t in current and current[t] != w
    ]
    updates.sort(key=lambda w: w.weight < current[w.target])  # raises before lowers
    deletes = [TargetWrite("delete", t, 0) for t in current if t not in wanted]
    return [*creates, *updates, *deletes]


def mirrored_fields(upstream: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a shadow copies from its main upstream, as Kong returned them."""
    return {k: upstream[k] for k in MIRRORED_FIELDS if upstream.get(k) is not None}


def fields_differ(shadow: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if shadow.get(k) != v}


def canary_live(canary_weight: int) -> bool:
    """An always-canary request may go to ``{u}--canary`` only while the canary has weight
    in the main upstream (never to a canary at 0 %)."""
    return canary_weight > 0


def served_shares(counts: Mapping[str, float]) -> dict[str, float] | None:
    """Per-variant shares (percent) actually served, from gateway request counts."""
    total = sum(counts.values())
    if total <= 0:
        return None
    return {v: round(100 * n / total, 2) for v, n in counts.items()}


def tags_for(upstream: str) -> list[str]:
    return [MANAGED_TAG, f"{COHORT_TAG_PREFIX}{upstream}"]


def is_ours(tags: Sequence[str] | None, upstream: str | None = None) -> bool:
    tags = tags or ()
    if MANAGED_TAG not in tags:
        return False
    if upstream is None:
        return any(t.startswith(COHORT_TAG_PREFIX) for t in tags)
    return f"{COHORT_TAG_PREFIX}{upstream}" in tags


@dataclass(frozen=True)
class PostFunctionClash:
    """A post-function not ours that Kong would weigh against ours for some request."""

    plugin_id: str
    scope: str  # "service", "route", "route+service" or "global"
    service_id: str | None
    route_id: str | None

    def describe(self) -> str:
        where = {
            "service": f"on service {self.service_id}",
            "route": f"on route {self.route_id}",
            "route+service": f"on route {self.route_id} and service {self.service_id}",
            "global": "global (no service, no route)",
        }[self.scope]
        effect = (
            "ours would silence it on these services"
            if self.scope == "global"
            else "Kong allows one per service"
            if self.scope == "service"
            else "it would run instead of ours on that route, so cohort rules would not apply"
        )
        return f"post-function {self.plugin_id} {where} ({effect})"


def post_function_clashes(
    plugins: Iterable[Mapping[str, Any]],
    routes: Iterable[Mapping[str, Any]],
    service_ids: Sequence[str],
    upstream: str,
) -> list[PostFunctionClash]:
    """The post-functions, not ours, that would compete with ours on ``service_ids``.

    Kong runs one configuration of a plugin per request, the most specific
    (``kong/runloop/plugins_iterator.lua``: 2.8.5 ``load_configuration_through_combos``
    lines 118-247, 3.4.2 ``lookup_cfg`` lines 174-221, 3.9.3 ``lookup_cfg`` lines 215-266):
    route+service, then route, then service, then global. post-function cannot be scoped to
    a consumer (``kong/plugins/pre-function/_schema.lua``: ``typedefs.no_consumer``). So any
    post-function whose service is unset or ours and whose route is unset or one of our
    services' routes meets ours: a route one overrides ours for its route, a global one is
    overridden by ours, a service one cannot coexist. ``plugins`` may be every plugin; a
    disabled one is counted too (enabling it later needs no sidecar call)."""
    ours = set(service_ids)
    our_routes = {str(r["id"]) for r in routes if str((r.get("service") or {}).get("id")) in ours}
    found = []
    for plugin in plugins:
        if plugin.get("name") != "post-function" or is_ours(plugin.get("tags"), upstream):
            continue
        service = (plugin.get("service") or {}).get("id")
        route = (plugin.get("route") or {}).get("id")
        if service is not None and str(service) not in ours:
            continue
        if route is not None and str(route) not in our_routes:
            continue
        scope = (
            ("route+service" if service else "route")
            if route
            else ("service" if service else "global")
        )
        found.append(
            PostFunctionClash(
                str(plugin["id"]),
                scope,
                str(service) if service else None,
                str(route) if route else None,
            )
        )
    return sorted(found, key=lambda c: (c.scope, c.plugin_id))
