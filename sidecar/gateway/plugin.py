"""The http-log plugin for the canary window: pure config builders, thin attach/detach.

Config per version (``kong/plugins/http-log/schema.lua``):

- 3.x and Konnect batch through ``queue`` (``kong/tools/queue_schema.lua``:
  ``max_batch_size``, ``max_coalescing_delay``, ``max_entries``, ``max_retry_time``); the
  legacy ``queue_size``/``flush_timeout``/``retry_count`` are deprecated, so not sent.
  ``headers`` map a name to one string.
- 2.8 batches with ``queue_size`` and ``flush_timeout``; ``headers`` map a name to an *array*
  of strings (``typedefs.headers``; the 3.0 migration ``001_280_to_300`` turns arrays into
  their first element).

Batching: 200 entries or 1 s, whichever comes first (``MAX_BATCH`` caps it at 1,000). Kong's
default is one POST per request (``max_batch_size`` 1 / ``queue_size`` 1); at 1,000 req/s per
Kong worker this makes 5 POSTs/s of ~400 kB instead of 1,000, and a quiet canary's entries
still arrive within a second – far inside a 15-30 s scrape. Kong keeps up to
``max_entries`` (10,000) waiting per worker and retries a batch for ``max_retry_seconds``
(60 s) while the sidecar is away; beyond that, entries are dropped, never the requests.

Every plugin we create is tagged ``managed-by=kong-canary`` and
``kong-canary-upstream=<u>``, so detaching finds exactly ours, wherever it sits. Kong allows
one http-log per service; a foreign one is left alone and reported as a conflict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sidecar.core.tags import MANAGED_TAG, WINDOW_UPSTREAM_TAG_PREFIX
from sidecar.errors import ApiError
from sidecar.gateway.kong_plugins import KongPlugins
from sidecar.kong.errors import KongConflict, KongError
from sidecar.kong.models import Flavour

PLUGIN_NAME = "http-log"
UPSTREAM_HEADER = "X-Kong-Canary-Upstream"
MAX_BATCH = 1000


def plugin_tags(upstream: str) -> list[str]:
    return [MANAGED_TAG, f"{WINDOW_UPSTREAM_TAG_PREFIX}{upstream}"]


def http_log_config(
    flavour: Flavour,
    *,
    endpoint: str,
    token: str,
    upstream: str,
    batch_size: int = 200,
    flush_seconds: float = 1.0,
    timeout_ms: int = 10000,
    keepalive_ms: int = 60000,
    max_retry_seconds: float = 60.0,
) -> dict[str, Any]:
    """The ``config`` record; ValueError for values Kong would refuse (or we can't ingest)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
    if not token or any(c in token for c in "\r\n"):
        raise ValueError("token must be a non-empty single-line string")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    if not 0 <= flush_seconds <= 3600:
        raise ValueError("flush_seconds must be between 0 and 3600")
    headers = {"Authorization": f"Bearer {token}", UPSTREAM_HEADER: upstream}
    config: dict[str, Any] = {
        "http_endpoint": endpoint,
        "method": "POST",
        "content_type": "application/json",
        "timeout": timeout_ms,
        "keepalive": keepalive_ms,
    }
    if flavour is Flavour.KONG_2:
        config["headers"] = {name: [value] for name, value in headers.items()}
        config["queue_size"] = batch_size
        config["flush_timeout"] = flush_seconds
    else:
        config["headers"] = headers
        config["queue"] = {
            "max_batch_size": batch_size,
            "max_coalescing_delay": flush_seconds,
            "max_retry_time": max_retry_seconds,
        }
    return config


def http_log_plugin(flavour: Flavour, *, upstream: str, **options: Any) -> dict[str, Any]:
    """The body to POST under ``/services/{id}/plugins`` (or PATCH onto ours)."""
    return {
        "name": PLUGIN_NAME,
        "enabled": True,
        "config": http_log_config(flavour, upstream=upstream, **options),
        "tags": plugin_tags(upstream),
    }


def is_managed(plugin: Mapping[str, Any], upstream: str | None = None) -> bool:
    tags = plugin.get("tags") or ()
    if plugin.get("name") != PLUGIN_NAME or MANAGED_TAG not in tags:
        return False
    return upstream is None or f"{WINDOW_UPSTREAM_TAG_PREFIX}{upstream}" in tags


def services_of(services: Sequence[Mapping[str, Any]], upstream: str) -> list[str]:
    """Ids of the services that proxy to the upstream (their ``host`` is its name)."""
    return [str(s["id"]) for s in services if s.get("host") == upstream and s.get("id")]


@dataclass(frozen=True)
class PluginWrite:
    action: str  # "create" (under a service) | "update" (a plugin of ours) | "keep"
    ref: str  # service id for create, plugin id for update and keep
    service: str = ""
    written_at: float | None = None  # keep: Kong's updated_at (3.x), else created_at


def written_at(plugin: Mapping[str, Any]) -> float | None:
    """When Kong last stored the plugin (whole seconds): ``updated_at`` exists from 3.0 on,
    2.8 has ``created_at`` only (``kong/db/schema/entities/plugins.lua``)."""
    value = plugin.get("updated_at", plugin.get("created_at"))
    return float(value) if type(value) in (int, float) else None


def covers(current: Any, wanted: Any, key: str = "") -> bool:
    """Does Kong's stored value already say what we would send? Kong fills in defaults, so
    records are compared on our fields only; ``headers`` is a map Kong stores as given."""
    if isinstance(wanted, dict) and key != "headers":
        return isinstance(current, dict) and all(
            covers(current.get(k), v, k) for k, v in wanted.items()
        )
    return bool(current == wanted)


def up_to_date(plugin: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    return (
        plugin.get("enabled") is True
        and set(plugin.get("tags") or ()) >= set(body["tags"])
        and covers(plugin.get("config"), body["config"])
    )


def plan_attach(
    upstream: str,
    service_ids: Sequence[str],
    existing: Mapping[str, Sequence[Mapping[str, Any]]],
    body: Mapping[str, Any] | None = None,
) -> list[PluginWrite]:
    """Pure: what to write so every service of the upstream logs to us, or why it can't.
    With the ``body`` we would send, plugins already configured so are kept, not written
    (a ramp re-opens the window at every step)."""
    if not service_ids:
        raise ApiError(
            409,
            "no_service",
            f"no Kong service has host {upstream!r}: nothing proxies to this upstream",
        )
    writes = []
    for service_id in service_ids:
        logs = [p for p in existing.get(service_id, ()) if p.get("name") == PLUGIN_NAME]
        ours = [p for p in logs if is_managed(p)]
        if logs and not ours:
            raise ApiError(
                409,
                "http_log_in_use",
                f"service {service_id} already has an http-log plugin that kong-canary did "
                "not create; Kong allows one per service",
            )
        if ours:
            if body is not None and up_to_date(ours[0], body):
                writes.append(
                    PluginWrite("keep", str(ours[0]["id"]), service_id, written_at(ours[0]))
                )
            else:
                writes.append(PluginWrite("update", str(ours[0]["id"]), service_id))
        else:
            writes.append(PluginWrite("create", service_id, service_id))
    return writes


@dataclass(frozen=True)
class Attached:
    plugin: str
    service: str
    action: str  # "create" | "update" | "keep"
    written_at: float | None = None  # keep: when Kong last stored it (see ``written_at``)

    def as_json(self) -> dict[str, str]:
        return {"id": self.plugin, "service": self.service, "action": self.action}


def attach_http_log(kong: Any, upstream: str, **options: Any) -> list[str]:
    """Attach (or refresh) our http-log on every service of the upstream; plugin ids back."""
    return [a.plugin for a in attach_plugins(kong, upstream, **options)]


def attach_plugins(kong: Any, upstream: str, **options: Any) -> list[Attached]:
    """Attach (or refresh) our http-log on every service of the upstream.

    All-or-nothing: if a write fails, the plugins created so far are removed again. A
    create that loses a race with another replica (Kong's 409 on the plugin's cache key)
    is planned again once, and then finds that replica's plugin to keep or update.
    """
    plugins = KongPlugins.of(kong)
    body = http_log_plugin(kong.flavour, upstream=upstream, **options)
    try:
        return _attach_once(plugins, upstream, body)
    except KongConflict:
        return _attach_once(plugins, upstream, body)


def _attach_once(plugins: KongPlugins, upstream: str, body: dict[str, Any]) -> list[Attached]:
    service_ids = services_of(plugins.services(), upstream)
    existing = {sid: plugins.service_plugins(sid) for sid in service_ids}
    created: list[str] = []
    done: list[Attached] = []
    try:
        for write in plan_attach(upstream, service_ids, existing, body):
            if write.action == "create":
                plugin_id = plugins.create(write.ref, body)["id"]
                created.append(plugin_id)
            elif write.action == "update":
                plugin_id = plugins.update(write.ref, write.service, body)["id"]
            else:
                plugin_id = write.ref
            done.append(Attached(plugin_id, write.service, write.action, write.written_at))
    except (KongError, ApiError):
        for plugin_id in created:
            with contextlib.suppress(KongError):
                plugins.delete(plugin_id)
        raise
    return done


def managed_plugins(kong: Any, upstream: str | None = None) -> list[dict[str, Any]]:
    """Our http-log plugins (of one upstream, or all) as Kong has them."""
    return [p for p in KongPlugins.of(kong).plugins() if is_managed(p, upstream)]


def detach_http_log(kong: Any, upstream: str | None = None) -> list[str]:
    """Remove our http-log plugins (of one upstream, or all); the ids removed.

    Found by tag, not by service, so a plugin whose service changed host still goes. Listed
    again afterwards: a leftover (a concurrent attach) is an error, not a silent success.
    """
    plugins = KongPlugins.of(kong)
    removed = [
        p["id"] for p in plugins.plugins() if is_managed(p, upstream) and plugins.delete(p["id"])
    ]
    left = [p["id"] for p in plugins.plugins() if is_managed(p, upstream)]
    if left:
        raise ApiError(
            502,
            "http_log_left_attached",
            f"http-log plugins still attached after detaching: {', '.join(left)}",
        )
    return removed
