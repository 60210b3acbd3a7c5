"""When a plugin written through the Admin API starts running on the local Kong's workers.

The local Kong proxies nothing, so this is the model a test asks ("would Kong have logged a
request at t?"): Kong runs a plugin only once a worker rebuilt its plugins iterator
(Kong/kong ``kong/runloop/handler.lua`` 3.x, ``init_worker``: with ``worker_consistency =
eventual`` a ``kong.timer:named_every("rebuild", worker_state_update_frequency, …)`` per
worker; with ``strict``, on the next request that sees the new version). So on this (single)
node a plugin written at t runs from t + ``worker_state_update_frequency`` when eventual, from
t when strict. The values are the node's kong.conf (``sidecar.kong_local.configuration``:
eventual in the 3.x profiles, strict in 2.8, 5 s), set by tests through
``create_wsgi_app(configuration=…)`` or ``store.reconfigure(…)`` to keep them short.
"""

from __future__ import annotations

from sidecar.kong_local.configuration import NodeConfiguration


def runs_from(written_at: float, configuration: NodeConfiguration) -> float:
    """When a plugin written (created, updated or re-enabled) at ``written_at`` runs on every
    worker of this node. The Admin API's timestamps are whole seconds, so callers that know
    the write's exact time pass it."""
    if configuration.worker_consistency == "eventual":
        return written_at + float(configuration.worker_state_update_frequency)
    return written_at
