"""When a plugin written through the Admin API starts running on the local Kong's workers.

The local Kong proxies nothing, so this is the model a test asks ("would Kong have logged a
request at t?"): Kong runs a plugin only once a worker rebuilt its plugins iterator
(Kong/kong ``kong/runloop/handler.lua`` 3.x, ``init_worker``: with ``worker_consistency =
eventual`` a ``kong.timer:named_every("rebuild", worker_state_update_frequency, …)`` per
worker; with ``strict``, on the next request that sees the new version). So on this (single)
node a plugin written at t runs from t + ``worker_state_update_frequency`` when eventual, from
t when strict. ``configuration`` values are those ``GET /`` shows (``sidecar.kong_local.info``:
eventual in the 3.x profiles, strict in 2.8, 5 s), changed by tests through
``create_wsgi_app(configuration=…)`` to keep them short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def runs_from(written_at: float, configuration: Mapping[str, Any]) -> float:
    """When a plugin written (created, updated or re-enabled) at ``written_at`` runs on every
    worker of this node. The Admin API's timestamps are whole seconds, so callers that know
    the write's exact time pass it."""
    if configuration.get("worker_consistency") == "eventual":
        return written_at + float(configuration.get("worker_state_update_frequency", 5))
    return written_at


def configuration_of(local: Any) -> dict[str, Any]:
    """What the local Kong's ``GET /`` shows under ``configuration`` (profile + overrides)."""
    from sidecar.kong_local.info import root_body

    body = root_body(local.profile, node_id="-", hostname="-", enterprise=False)
    return {**body["configuration"], **local.store.configuration}
