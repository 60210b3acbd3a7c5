"""Every Kong tag the sidecar writes or looks for, in one place.

Kong keeps no state of ours but these tags, so they are the sidecar's storage format: a
rename here is a migration (replicas of the old and new version read each other's tags).
Tags are printable ASCII without ``,`` and ``/`` (``kong/db/schema/typedefs.lua`` ``tag``,
2.8.5 and 3.x), which every name below respects.

On targets:

- ``managed-by=kong-canary`` and ``variant=<stable|baseline|canary>``: the target is ours and
  which variant it serves.

On upstreams (``sidecar.core.lease``):

- ``managed-by=kong-canary``: the sidecar has changed this upstream; the sweeps find managed
  upstreams by this tag with Kong's server-side filter (``GET /upstreams?tags=…``).
- ``kong-canary-lease=<epoch>``: the non-stable split expires then (dead man's switch).
- ``kong-canary-ramp=<fingerprint>``, ``kong-canary-ramp-canceled=<fingerprint>``,
  ``kong-canary-ramp-exec=<hash>``: the ramp that drives the upstream, a cancelled one, and
  the Spinnaker execution that started it.
- ``kong-canary-guard=<base64url(JSON)>``: the guard's config and arming, and
  ``kong-canary-guard-trip=<base64url(JSON)>``: its last trip (``sidecar.core.guard_tags``).

On the lock entities (upstreams named ``kong-canary-lock-<hash>``, ``sidecar.core.upstream_lock``):
``kong-canary-lock``, ``kong-canary-lock-of=<upstream>``, ``kong-canary-lock-holder=<id>``,
``kong-canary-lock-until=<epoch>``.

On the gateway window's http-log plugins (``sidecar.gateway.plugin``) and the preflight's
Prometheus plugins: ``managed-by=kong-canary``, plus ``kong-canary-upstream=<u>`` on the former.

On the cohorts' post-functions and shadow upstreams (``sidecar.core.cohorts``):
``managed-by=kong-canary`` and ``kong-canary-cohorts=<u>``.
"""

from __future__ import annotations

MANAGED_TAG = "managed-by=kong-canary"
VARIANT_TAG_PREFIX = "variant="

LEASE_TAG = "kong-canary-lease="
RAMP_TAG = "kong-canary-ramp="
RAMP_CANCELED_TAG = "kong-canary-ramp-canceled="
RAMP_EXECUTION_TAG = "kong-canary-ramp-exec="
GUARD_TAG = "kong-canary-guard="
TRIP_TAG = "kong-canary-guard-trip="

LOCK_TAG = "kong-canary-lock"
LOCK_OF_TAG = "kong-canary-lock-of="
LOCK_HOLDER_TAG = "kong-canary-lock-holder="
LOCK_UNTIL_TAG = "kong-canary-lock-until="
LOCK_NAME_PREFIX = "kong-canary-lock-"

WINDOW_UPSTREAM_TAG_PREFIX = "kong-canary-upstream="
COHORT_TAG_PREFIX = "kong-canary-cohorts="  # on cohort post-functions and shadow upstreams
