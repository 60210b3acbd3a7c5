"""Cohorts on Kong: the post-functions and shadow upstreams of an upstream's canary window.

What lives in Kong (so a restart or another replica loses nothing):

- ``{u}--stable`` and ``{u}--canary``: upstreams mirroring the stable and canary targets of
  ``u`` (weights, algorithm/hashing, health checks), tagged ``managed-by=kong-canary`` and
  ``kong-canary-cohorts=<u>``; kept in step after every change of ``u``'s split
  (``observe``, a ``TrafficService`` observer: ramps' steps are split changes too).
- one ``post-function`` per service whose ``host`` is ``u`` (as the gateway window finds
  them, ``sidecar.gateway.plugin.services_of``), same tags, whose Lua
  (``sidecar.core.cohort_lua``) sends never-canary consumers to ``{u}--stable`` and
  always-canary ones to ``{u}--canary`` while the canary has weight. The request and the ids
  it resolved to ride inside that code (``spec``), and ``GET`` reads them back from there.

Order: shadows before plugins when setting (the plugin names them), plugins before shadows
when clearing. When the canary is about to lose its weight, ``prepare`` (a preparer: under
the upstream's locks, before the change's first write) re-renders the plugins with the
canary switched off, so no always-canary request is sent to an empty canary; a set_split that
cannot do that is refused. The canary window ends with rollback, promote, lease expiry (a
rollback) and any change back to stable-only (``window_ends``): the preparer removes the
plugins, the observer the shadows; that is never refused (warning + metric: traffic goes
back to stable anyway, ``{u}--stable`` has only stable targets).

Lease: the cohorts have no lease of their own; they share the canary window's lease, the
``kong-canary-lease`` mark on ``u`` (``sidecar.core.lease``). A cohorts PUT renews it like a
split PUT (``lease`` seconds, or the default), and when it runs out the lease sweeper rolls
``u`` back, which removes the cohorts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from sidecar.cohorts_kong import POST_FUNCTION, CohortKong
from sidecar.core import cohorts as core
from sidecar.core.cohorts import CohortError, CohortSpec, Resolved
from sidecar.core.lease import read_marks, renewed, write_marks
from sidecar.core.refusals import Refusal
from sidecar.core.split import Split, SplitError
from sidecar.errors import ApiError, from_kong_error
from sidecar.gateway.plugin import services_of
from sidecar.kong.errors import KongError
from sidecar.kong.models import Flavour
from sidecar.metrics import CONFIRMED_UPSTREAMS
from sidecar.traffic import ChangeEvent, TrafficService, lease_json

log = logging.getLogger("kong_canary.cohorts")

COHORT_CHANGES = Counter(
    "kong_canary_cohort_changes_total",
    "Cohort entities (post-functions, shadow upstreams) set, synced and removed, by result",
    ["upstream", "operation", "result"],
)
SPEC_VERSION = 1


def _refused(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(409, code, message, field=field)


@dataclass(frozen=True)
class Stored:
    """What one of our post-functions carries: the request, the ids, the canary switch."""

    spec: CohortSpec
    resolved: Resolved
    canary_live: bool

    def as_text(self, upstream: str) -> str:
        return json.dumps(
            {
                "v": SPEC_VERSION,
                "upstream": upstream,
                "cohorts": self.spec.as_json(),
                "resolved": self.resolved.as_json(),
                "canary_live": self.canary_live,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_text(cls, text: str | None) -> Stored | None:
        try:
            data = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("v") != SPEC_VERSION:
            return None
        spec = core.spec_from_json(data.get("cohorts"))
        ids = data.get("resolved") or {}
        if spec is None or not isinstance(ids, dict):
            return None
        resolved = Resolved(
            frozenset(ids.get("never_canary") or ()), frozenset(ids.get("always_canary") or ())
        )
        return cls(spec, resolved, bool(data.get("canary_live")))


def render(upstream: str, stored: Stored) -> str:
    """The post-function's access chunk (``sidecar.core.cohort_lua``)."""
    from sidecar.core import cohort_lua  # the renderer lives with its LuaJIT tests

    stable, canary = core.shadow_names(upstream)
    header = stored.spec.header
    return cohort_lua.render_access_lua(
        cohort_lua.CohortRouting(
            never_ids=stored.resolved.never_ids,
            always_ids=stored.resolved.always_ids,
            header=(
                cohort_lua.HeaderOverride(header.name, header.always, header.never)
                if header
                else None
            ),
            stable_upstream=stable,
            canary_upstream=canary,
            canary_live=stored.canary_live,
            spec=stored.as_text(upstream),
        )
    )


def stored_in(plugin: dict[str, Any]) -> Stored | None:
    from sidecar.core import cohort_lua

    for chunk in (plugin.get("config") or {}).get("access") or ():
        found = Stored.from_text(cohort_lua.read_spec(chunk))
        if found is not None:
            return found
    return None


def plugin_body(upstream: str, stored: Stored) -> dict[str, Any]:
    return {
        "name": POST_FUNCTION,
        "enabled": True,
        "config": {"access": [render(upstream, stored)]},
        "tags": core.tags_for(upstream),
    }


def window_ends(event: ChangeEvent) -> bool:
    """Rollback, promote (the sweeper's lease expiry is a rollback) and any change back to
    stable-only end the canary window, and the cohorts with it: a split at stable 100 % has
    no lease left, so nothing else would ever remove them. Ramp steps keep them."""
    return event.operation in ("rollback", "promote") or event.split in (None, Split.STABLE_ONLY)


class CohortService:
    def __init__(
        self,
        traffic: TrafficService,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.traffic = traffic
        self.clock = clock

    @property
    def kong(self) -> CohortKong:
        return CohortKong.of(self.traffic.kong)  # type: ignore[return-value]

    # ---- reading ---------------------------------------------------------------------

    def ours(self, kong: CohortKong, upstream: str) -> list[dict[str, Any]]:
        return [
            p
            for p in kong.plugins_tagged(f"{core.COHORT_TAG_PREFIX}{upstream}")
            if p.get("name") == POST_FUNCTION and core.is_ours(p.get("tags"), upstream)
        ]

    def stored(self, upstream: str) -> Stored | None:
        for plugin in self.ours(self.kong, upstream):
            found = stored_in(plugin)
            if found is not None:
                return found
        return None

    def view(self, upstream: str) -> dict[str, Any]:
        """The cohorts in force, their ids and what Kong runs (plugins, shadows)."""
        kong = self.kong
        try:
            entity_of_upstream = self.traffic.kong.upstream(upstream)  # its name and marks
            name = entity_of_upstream.name
            plugins = self.ours(kong, name)
            shadows = []
            for shadow in core.shadow_names(name):
                entity = kong.upstream_entity(shadow)
                if entity is not None:
                    shadows.append(
                        {
                            "name": shadow,
                            "id": entity.get("id"),
                            "targets": kong.shadow_targets(shadow),
                        }
                    )
            competing = self._competing(kong, name) if plugins else []
        except KongError as exc:
            raise from_kong_error(exc, upstream=upstream) from exc
        stored = next((s for s in map(stored_in, plugins) if s is not None), None)
        marks = read_marks(entity_of_upstream.tags)
        return {
            "upstream": name,
            "cohorts": stored.spec.as_json() if stored else None,
            "resolved": stored.resolved.as_json() if stored else None,
            "canary_live": stored.canary_live if stored else False,
            "lease": lease_json(marks.lease_until) if stored else None,
            "kong": {
                "plugins": [
                    {"id": str(p["id"]), "service": str((p.get("service") or {}).get("id"))}
                    for p in plugins
                ],
                "shadow_upstreams": shadows,
                "competing_post_functions": competing,
            },
        }

    @staticmethod
    def _competing(kong: CohortKong, name: str) -> list[dict[str, Any]]:
        """Post-functions added after the PUT (Kong does not stop a route's) that would
        have refused it: reported, not removed (they are someone else's)."""
        clashes = core.post_function_clashes(
            kong.plugins(), kong.routes(), services_of(kong.services(), name), name
        )
        return [
            {
                "id": c.plugin_id,
                "scope": c.scope,
                "service": c.service_id,
                "route": c.route_id,
                "message": c.describe(),
            }
            for c in clashes
        ]

    def summary(self, upstream: str) -> dict[str, Any] | None:
        """For ``GET …/split``: the cohorts in force (None when none); never raises."""
        try:
            stored = self.stored(upstream)
        except Exception:  # a read for a view: the split answer must not fail for it
            log.exception("reading the cohorts of %s", upstream)
            return None
        if stored is None:
            return None
        return {
            **stored.spec.as_json(),
            "resolved": stored.resolved.as_json(),
            "canary_live": stored.canary_live,
        }

    @staticmethod
    def resolve(kong: CohortKong, spec: CohortSpec, *, strict: bool = True) -> Resolved:
        """Consumer ids from Kong's consumers and ACLs (only what the spec needs is read)."""
        names = spec.never.consumers + spec.always.consumers
        groups = spec.never.groups + spec.always.groups
        return core.resolve(
            spec,
            core.consumer_index(kong.consumers()) if names else {},
            core.group_index(kong.acls()) if groups else {},
            strict=strict,
        )

    # ---- refusals --------------------------------------------------------------------

    def check_kong(self, kong: CohortKong, name: str) -> list[str]:
        """Refuse (409, changing nothing) when Kong cannot run cohorts; the upstream's
        service ids otherwise."""
        info = self.traffic.kong.info()
        if info.flavour is Flavour.KONNECT:
            raise _refused(
                "cohorts_unsupported",
                "cohorts are not supported on Konnect by this sidecar: Konnect runs "
                "post-function, but its control-plane API shows no data plane's untrusted_lua "
                "and addresses targets by id only; use a self-managed Kong (traditional or "
                "hybrid) for cohorts",
            )
        if not info.writable:
            raise _refused(
                "cohorts_unsupported",
                "this Kong is DB-less or a data plane: its Admin API cannot create plugins; "
                "point the sidecar at a control plane or a node with a database",
            )
        root = kong.root()
        lua = (root.get("configuration") or {}).get("untrusted_lua")
        if lua == "off":
            raise _refused(
                "untrusted_lua_off",
                "Kong runs with untrusted_lua = off, so post-function cannot run the cohort "
                "Lua; set untrusted_lua = sandbox (KONG_UNTRUSTED_LUA=sandbox) and restart Kong",
            )
        available = (root.get("plugins") or {}).get("available_on_server") or {}
        if POST_FUNCTION not in available:
            raise _refused(
                "post_function_unavailable",
                "Kong does not have the post-function plugin enabled; add it to the plugins "
                "setting (KONG_PLUGINS=bundled) and restart Kong",
            )
        service_ids = services_of(kong.services(), name)
        if not service_ids:
            raise _refused(
                "no_service",
                f"no Kong service has host {name!r}: nothing proxies to this upstream",
            )
        clashes = core.post_function_clashes(kong.plugins(), kong.routes(), service_ids, name)
        if clashes:
            raise _refused(
                "post_function_in_use",
                "cohorts need the only post-function Kong runs for this upstream's services, "
                "and Kong runs one post-function per request (the most specific): "
                + "; ".join(c.describe() for c in clashes)
                + ". Move that code to a pre-function (cohorts do not use it) or another "
                "plugin, or remove it; a post-function on a route would switch cohorts off "
                "on that route",
            )
        return service_ids

    # ---- changing --------------------------------------------------------------------

    def _plan(
        self, kong: CohortKong, upstream: str, spec: CohortSpec, lease: float | None
    ) -> tuple[Any, list[str], Stored, float | None]:
        """Every read and refusal of a PUT, no write: the upstream's state, its services,
        what the plugins will carry and the lease deadline."""
        state = self.traffic.read(upstream)
        name = state.upstream.name
        try:
            core.check_shadow_names(name)
        except CohortError as exc:
            raise ApiError(422, "invalid_upstream", exc.message, field=exc.field) from None
        service_ids = self.check_kong(kong, name)
        for shadow in core.shadow_names(name):
            entity = kong.upstream_entity(shadow)
            if entity is not None and not core.is_ours(entity.get("tags"), name):
                raise _refused(
                    "shadow_name_taken",
                    f"an upstream named {shadow!r} exists that kong-canary did not create; "
                    "rename or remove it (cohorts need that name)",
                )
        try:
            resolved = self.resolve(kong, spec)
        except CohortError as exc:
            raise ApiError(422, "unknown_consumer", exc.message, field=exc.field) from None
        now = self.clock()
        try:
            deadline = self.traffic.leases.deadline(now, lease)
        except SplitError as exc:
            raise ApiError(422, "invalid_lease", str(exc), field=exc.field) from None
        deadline = renewed(read_marks(state.upstream.tags).lease_until, deadline, now)
        canary_weight = sum(t.weight for t in state.targets if t.variant == "canary")
        return state, service_ids, Stored(spec, resolved, core.canary_live(canary_weight)), deadline

    def set(
        self,
        upstream: str,
        spec: CohortSpec,
        *,
        lease: float | None = None,
        dry_run: bool = False,
        wait: float | None = None,
    ) -> dict[str, Any]:
        """Refusals and dry runs never take the upstream's Kong lock (a lock is a write);
        the plan is made again under the lock before anything is written."""
        kong = self.kong
        try:
            state, service_ids, stored, deadline = self._plan(kong, upstream, spec, lease)
            if not dry_run:
                with self.traffic.exclusive(upstream):
                    state, service_ids, stored, deadline = self._plan(kong, upstream, spec, lease)
                    plugins, before = self._apply(kong, state, service_ids, stored, deadline, wait)
        except KongError as exc:
            COHORT_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "set", "failed").inc()
            raise from_kong_error(exc, upstream=upstream) from exc
        name = state.upstream.name
        answer: dict[str, Any] = {
            "upstream": name,
            "dry_run": dry_run,
            "cohorts": spec.as_json(),
            "resolved": stored.resolved.as_json(),
            "canary_live": stored.canary_live,
            "lease": lease_json(deadline),
            "services": service_ids,
        }
        if dry_run:
            return answer
        COHORT_CHANGES.labels(CONFIRMED_UPSTREAMS.label(name), "set", "ok").inc()
        answer["kong"] = self.view(name)["kong"] | {"written_plugins": plugins}
        waiter = self.traffic.propagation
        if waiter is not None and wait is not None:
            stable_shadow = name + core.STABLE_SUFFIX
            weights = kong.shadow_targets(stable_shadow)
            answer["propagation"] = waiter.wait(stable_shadow, weights, wait, before)
        return answer

    def _apply(
        self,
        kong: CohortKong,
        state: Any,
        service_ids: list[str],
        stored: Stored,
        deadline: float | None,
        wait: float | None,
    ) -> tuple[list[dict[str, str]], Any]:
        """The lease first (a crash after it leaves entities the sweeper will remove), then
        the shadows, then the plugins that name them; created shadows go again on failure."""
        name = state.upstream.name
        waiter = self.traffic.propagation if wait is not None else None
        before = waiter.before_write(name + core.STABLE_SUFFIX) if waiter else None
        marks = read_marks(state.upstream.tags)
        new_tags = write_marks(state.upstream.tags, marks.but(managed=True, lease_until=deadline))
        if set(new_tags) != set(state.upstream.tags):
            self.traffic.kong.update_upstream(name, tags=list(new_tags))
        created = self._sync_shadows(kong, name, state)
        try:
            plugins = self._put_plugins(kong, name, service_ids, stored)
        except (KongError, ApiError):
            for shadow_id in created:
                kong.delete_upstream(shadow_id)
            raise
        return plugins, before

    def clear(self, upstream: str, *, dry_run: bool = False) -> dict[str, Any]:
        with self.traffic.exclusive(upstream):
            try:
                name = self.traffic.kong.upstream(upstream).name
                kong = self.kong
                plugins = [str(p["id"]) for p in self.ours(kong, name)]
                shadows = [s for s in core.shadow_names(name) if kong.upstream_entity(s)]
                if not dry_run:
                    self.remove(kong, name)
            except KongError as exc:
                COHORT_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "clear", "failed").inc()
                raise from_kong_error(exc, upstream=upstream) from exc
        if not dry_run:
            COHORT_CHANGES.labels(CONFIRMED_UPSTREAMS.label(name), "clear", "ok").inc()
        return {
            "upstream": name,
            "dry_run": dry_run,
            "removed": {"plugins": plugins, "shadow_upstreams": shadows},
        }

    def remove(self, kong: CohortKong, name: str) -> None:
        """Plugins first (traffic stops going to the shadows), then the shadows. A shadow
        not tagged ours (someone else's upstream with that name) is left alone."""
        for plugin in self.ours(kong, name):
            kong.delete(str(plugin["id"]))
        for shadow in core.shadow_names(name):
            entity = kong.upstream_entity(shadow)
            if entity is not None and core.is_ours(entity.get("tags"), name):
                kong.delete_upstream(str(entity["id"]))

    def _sync_shadows(self, kong: CohortKong, name: str, state: Any) -> list[str]:
        """Make both shadows mirror ``state``; ids of the shadows created (to undo)."""
        main = kong.upstream_entity(name) or {}
        fields = core.mirrored_fields(main)
        wanted = core.shadow_targets((t.target, t.weight, t.variant) for t in state.targets)
        created = []
        for variant, shadow in zip(("stable", "canary"), core.shadow_names(name), strict=True):
            entity = kong.upstream_entity(shadow)
            if entity is None:
                entity = kong.create_upstream(
                    {"name": shadow, "tags": core.tags_for(name), **fields}
                )
                created.append(str(entity["id"]))
                current: dict[str, int] = {}
            else:
                if not core.is_ours(entity.get("tags"), name):
                    raise _refused(
                        "shadow_name_taken",
                        f"an upstream named {shadow!r} exists that kong-canary did not create; "
                        "rename or remove it (cohorts need that name)",
                    )
                changed = core.fields_differ(entity, fields)
                if changed:
                    kong.patch_upstream(str(entity["id"]), changed)
                current = kong.shadow_targets(shadow)
            for write in core.plan_shadow(current, wanted[variant]):
                if write.action == "delete":
                    kong.delete_target(shadow, write.target)
                else:
                    kong.put_target(
                        shadow, write.target, write.weight, create=write.action == "create"
                    )
        return created

    def _put_plugins(
        self, kong: CohortKong, name: str, service_ids: Sequence[str], stored: Stored
    ) -> list[dict[str, str]]:
        body = plugin_body(name, stored)
        mine = {str((p.get("service") or {}).get("id")): p for p in self.ours(kong, name)}
        written: list[dict[str, str]] = []
        created: list[str] = []
        try:
            for service_id in service_ids:
                plugin = mine.pop(service_id, None)
                if plugin is None:
                    plugin_id = kong.create(service_id, body)["id"]
                    created.append(plugin_id)
                    action = "create"
                elif (plugin.get("config") or {}).get("access") == body["config"]["access"]:
                    plugin_id, action = str(plugin["id"]), "keep"
                else:
                    plugin_id = kong.update(str(plugin["id"]), service_id, body)["id"]
                    action = "update"
                written.append({"id": str(plugin_id), "service": service_id, "action": action})
        except (KongError, ApiError):
            for plugin_id in created:
                kong.delete(plugin_id)
            raise
        for stale in mine.values():  # a service that no longer proxies to the upstream
            kong.delete(str(stale["id"]))
        return written

    # ---- following the split ---------------------------------------------------------

    def prepare(self, event: ChangeEvent) -> list[str]:
        """Preparer: before the canary loses its weight (or the window ends), the plugins
        stop sending anyone to ``{u}--canary``. Refuses a set_split it cannot make safe;
        never a rollback or promote."""
        ending = window_ends(event)
        losing = event.split is None or event.split.canary == 0
        if not (ending or losing):
            return []
        try:
            kong = self.kong
            plugins = self.ours(kong, event.upstream)
            if not plugins:
                return []
            if ending:
                for plugin in plugins:
                    kong.delete(str(plugin["id"]))
                return []
            for plugin in plugins:
                stored = stored_in(plugin)
                if stored is not None and stored.canary_live:
                    off = Stored(stored.spec, stored.resolved, False)
                    kong.update(
                        str(plugin["id"]),
                        str((plugin.get("service") or {}).get("id")),
                        plugin_body(event.upstream, off),
                    )
            return []
        except Exception as exc:
            reason = exc.message if isinstance(exc, (ApiError, KongError)) else repr(exc)
            COHORT_CHANGES.labels(
                CONFIRMED_UPSTREAMS.label(event.upstream), "prepare", "failed"
            ).inc()
            if not ending:
                raise ApiError(
                    503,
                    "cohorts_not_updated",
                    f"the cohorts' post-function could not be switched off the canary before "
                    f"it loses its weight ({reason}); nothing was changed, retry",
                ) from None
            warning = (
                f"cohorts: the post-function of {event.upstream} could not be removed "
                f"({reason}); traffic still goes to stable – DELETE "
                f"/v1/upstreams/{event.upstream}/cohorts"
            )
            log.warning("%s", warning)
            return [warning]

    def observe(self, event: ChangeEvent) -> list[str]:
        """Observer: shadows follow the split; the window's end removes everything."""
        ending = window_ends(event)
        try:
            kong = self.kong
            if ending:
                has_shadow = any(
                    kong.upstream_entity(s) is not None for s in core.shadow_names(event.upstream)
                )
                if has_shadow or self.ours(kong, event.upstream):
                    self.remove(kong, event.upstream)
                    COHORT_CHANGES.labels(event.upstream, "remove", "ok").inc()
                return []
            plugins = self.ours(kong, event.upstream)
            if not plugins:
                return []
            state = self.traffic.read(event.upstream)
            self._sync_shadows(kong, event.upstream, state)
            live = core.canary_live(sum(t.weight for t in state.targets if t.variant == "canary"))
            for plugin in plugins:
                stored = stored_in(plugin)
                if stored is not None and stored.canary_live != live:
                    kong.update(
                        str(plugin["id"]),
                        str((plugin.get("service") or {}).get("id")),
                        plugin_body(event.upstream, Stored(stored.spec, stored.resolved, live)),
                    )
            COHORT_CHANGES.labels(event.upstream, "sync", "ok").inc()
            return []
        except Exception as exc:
            reason = exc.message if isinstance(exc, (ApiError, KongError)) else repr(exc)
            COHORT_CHANGES.labels(CONFIRMED_UPSTREAMS.label(event.upstream), "sync", "failed").inc()
            what = "removed" if ending else "brought in step with the split"
            warning = (
                f"cohorts: the shadow upstreams of {event.upstream} could not be {what} "
                f"({reason}); PUT or DELETE /v1/upstreams/{event.upstream}/cohorts to fix"
            )
            log.warning("%s", warning)
            return [warning]

    # ---- the group refresh -----------------------------------------------------------

    def refresh(self) -> list[str]:
        """Re-resolve every upstream's cohorts (ACL membership changes in Kong); re-render
        the plugins whose ids changed. The upstreams re-rendered."""
        kong = self.kong
        names = sorted(
            {
                t[len(core.COHORT_TAG_PREFIX) :]
                for p in kong.plugins()
                if p.get("name") == POST_FUNCTION and core.is_ours(p.get("tags"))
                for t in p.get("tags") or ()
                if t.startswith(core.COHORT_TAG_PREFIX)
            }
        )
        changed = []
        for name in names:
            try:
                with self.traffic.exclusive(name):
                    stored = self.stored(name)
                    if stored is None:
                        continue
                    resolved = self.resolve(kong, stored.spec, strict=False)
                    if resolved == stored.resolved:
                        continue
                    fresh = Stored(stored.spec, resolved, stored.canary_live)
                    for plugin in self.ours(kong, name):
                        kong.update(
                            str(plugin["id"]),
                            str((plugin.get("service") or {}).get("id")),
                            plugin_body(name, fresh),
                        )
                    changed.append(name)
            except (ApiError, Refusal, KongError) as exc:
                log.warning("refreshing the cohorts of %s: %s", name, exc)
        return changed


class CohortRefresher:
    """A daemon thread calling ``CohortService.refresh`` every ``interval`` seconds."""

    def __init__(self, service: CohortService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cohort-refresh", daemon=True)

    def start(self) -> CohortRefresher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.service.refresh()
            except Exception:
                log.exception("cohort refresh")
