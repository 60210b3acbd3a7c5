"""When a newly written http-log plugin runs on every Kong worker: pure decisions.

Why a wait is needed at all (Kong/kong ``kong/runloop/handler.lua``, read at 3.x): a plugin
runs only once the worker's *plugins iterator* has been rebuilt with it. With
``worker_consistency = eventual`` (the default since 3.0, ``kong/templates/kong_defaults.lua``;
2.8's default is ``strict``: /work/shared/reference/kong-admin-api.md) each worker rebuilds it
on its own timer every ``worker_state_update_frequency`` seconds (``init_worker``:
``kong.timer:named_every("rebuild", worker_state_update_frequency, rebuild_timer)``), so a plugin
created at t runs on every worker of the node at the latest at t + that interval. With
``strict`` the iterator is rebuilt on the request path as soon as the worker sees the new
version (``get_updated_plugins_iterator``). The version reaches the node that took the write at
once (worker events); the other nodes of a traditional cluster poll the database's cluster
events every ``db_update_frequency`` seconds and apply them ``db_update_propagation`` later
(``kong/cluster_events/init.lua``). So the bound on a traditional (database) node is
``db_update_frequency + db_update_propagation`` (+ ``worker_state_update_frequency`` when
eventual), all read from ``GET /`` ``configuration``.

Which signal is right: the first batch reaching ``/v1/kong-log`` after the write proves only
that *one* worker of *one* node runs the plugin (each worker rebuilds on its own timer, and the
batch lands on one of the sidecar's workers and replicas); Kong's interval bounds *all*
workers of all nodes. So the interval is the signal, stateless and the same for every replica.
A hybrid control plane (``role = control_plane``) and Konnect do not show the data planes'
intervals (the config is pushed, then rebuilt by ``reconfigure`` on each DP): the delay is
unknown there, and the caller waits its whole bound (``gateway_live_wait``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Kong's timestamps are whole seconds: a plugin written at 10.9 shows 10.
TIMESTAMP_RESOLUTION = 1.0


def live_delay(configuration: Mapping[str, Any] | None) -> float | None:
    """Seconds from a plugin write until every worker of every node runs it; None when Kong
    does not say (Konnect, a hybrid control plane, an unreadable ``GET /``)."""
    if not configuration or configuration.get("role") == "control_plane":
        return None
    if configuration.get("database") == "off":
        return 0.0  # DB-less: a new config is rebuilt synchronously (and we cannot write one)
    try:
        delay = float(configuration.get("db_update_frequency", 5)) + float(
            configuration.get("db_update_propagation", 0)
        )
        if configuration.get("worker_consistency", "eventual") == "eventual":
            delay += float(configuration.get("worker_state_update_frequency", 5))
    except (TypeError, ValueError):
        return None
    return delay if delay >= 0 else None


@dataclass(frozen=True)
class PluginWritten:
    """One plugin of the window: written by this change (``at`` None), or found in place
    and last written at Kong's ``at`` (``updated_at``, else ``created_at``; None unknown)."""

    by_us: bool
    at: float | None = None


def remaining_wait(plugins: Iterable[PluginWritten], delay: float, now: float) -> float:
    """Seconds still to wait until every plugin runs everywhere (0: live now)."""
    remaining = 0.0
    for plugin in plugins:
        if plugin.by_us:
            remaining = max(remaining, delay)
        elif plugin.at is not None:
            remaining = max(remaining, plugin.at + TIMESTAMP_RESOLUTION + delay - now)
    return max(0.0, remaining)
