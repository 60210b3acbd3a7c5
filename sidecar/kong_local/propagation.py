"""Propagation lag: other nodes and data planes see each write ``lag`` seconds late.

A write reaches one Kong node at once, the rest of the cluster later (``kong/runloop/events.lua``:
the ``balancer:targets`` cluster event; ``kong/clustering/control_plane.lua`` for hybrid):

- traditional: every node reads targets from the shared database (so the Admin API lists
  the new ``weight`` everywhere at once), but a node's *balancer* is rebuilt only when it
  polls the cluster event (``db_update_frequency``). ``/upstreams/{u}/health`` shows that
  balancer in ``data`` (``nodeWeight``: ``kong/runloop/balancer/balancers.lua``
  ``getTargetStatus``); a target the balancer does not have yet has no ``data`` and shows
  ``DNS_ERROR`` (``kong/db/dao/targets.lua`` ``page_for_upstream_with_health``).
- hybrid: the control plane lists its data planes and the config hash each last reported
  at ``GET /clustering/data-planes`` (``kong/clustering/control_plane.lua``: the hash
  arrives with the DP's ping, sent right after it applied a config, ``data_plane.lua``).
- Konnect: ``GET …/nodes`` ``config_hash`` against ``GET …/expected-config-hash``.

:class:`History` keeps the configuration as it was after each write, so a lagging view
answers with the version current ``lag`` seconds ago on the server's (injectable) clock.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.kong_local.store import Store

# upstream id -> target id -> (target "host:port", weight), as a balancer holds them
Balancers = dict[str, dict[str, tuple[str, int]]]
PURGE_DELAY = 1209600  # cluster_data_plane_purge_delay default (14 days): the rows' ttl


def config_hash(store: Store) -> str:
    """A 32-hex digest of the configuration (Kong's hashes are md5 hex too)."""
    raw = json.dumps(store.snapshot(), sort_keys=True, default=str)
    return hashlib.md5(raw.encode()).hexdigest()


def balancers_of(store: Store) -> Balancers:
    out: Balancers = {}
    for ws in store.workspaces.values():
        for upstream in ws.upstreams.values():
            out[upstream["id"]] = {
                t["id"]: (t["target"], t["weight"]) for t in store.targets_of(ws, upstream)
            }
    return out


@dataclass(frozen=True)
class Version:
    at: float
    balancers: Balancers
    config_hash: str


class History:
    """The configuration after each write; the caller holds ``store.lock``."""

    def __init__(self, store: Store, clock: Callable[[], float], keep: float) -> None:
        self.store = store
        self.clock = clock
        self.keep = keep  # the longest lag anyone asks for
        self._versions: list[Version] = []
        self._stale = False
        self.record()

    def record(self) -> None:
        if self.keep == 0 and self._versions:
            # Nobody lags: only the newest version is ever asked for, so build it on demand
            # instead of hashing the whole configuration after every write.
            self._stale = True
            return
        now = self.clock()
        self._versions.append(Version(now, balancers_of(self.store), config_hash(self.store)))
        # keep every version a lagging view may still need: the newest one older than keep
        cutoff = now - self.keep
        while len(self._versions) > 1 and self._versions[1].at <= cutoff:
            self._versions.pop(0)

    def as_of(self, moment: float) -> Version:
        """The version current at ``moment``; the oldest one kept if it is older still."""
        if self._stale:
            self._stale = False
            with self.store.lock:
                self._versions = [
                    Version(self.clock(), balancers_of(self.store), config_hash(self.store))
                ]
        found = self._versions[0]
        for version in self._versions:
            if version.at > moment:
                break
            found = version
        return found


@dataclass(frozen=True)
class LaggingNode:
    """A node (traditional), data plane (hybrid) or Konnect node that sees writes late."""

    node_id: str
    hostname: str
    lag: float


def lagging_nodes(count: int, lag: float | Sequence[float], prefix: str) -> list[LaggingNode]:
    lags = [float(lag)] * count if isinstance(lag, int | float) else [float(x) for x in lag]
    if len(lags) != count:
        raise ValueError(f"lag: expected one value per lagging node ({count}), got {len(lags)}")
    if any(x < 0 for x in lags):
        raise ValueError("lag must not be negative")
    return [LaggingNode(str(uuid.uuid4()), f"{prefix}-{i + 1}", x) for i, x in enumerate(lags)]


class LagView:
    """What one lagging node sees: balancers and config hash as of ``now - lag``."""

    def __init__(self, history: History, node: LaggingNode) -> None:
        self.history = history
        self.node = node

    def version(self) -> Version:
        if self.node.lag <= 0:  # no lag: the current configuration, not a recorded copy
            store = self.history.store
            return Version(self.history.clock(), balancers_of(store), config_hash(store))
        return self.history.as_of(self.history.clock() - self.node.lag)

    def balancer(self, upstream_id: str) -> dict[str, tuple[str, int]]:
        return self.version().balancers.get(upstream_id, {})

    def config_hash(self) -> str:
        return self.version().config_hash


def data_planes_body(views: Sequence[LagView], version: str, now: float) -> dict[str, Any]:
    """``GET /clustering/data-planes`` on a control plane (entity ``clustering_data_planes``:
    id, last_seen, ip, config_hash, hostname, version, sync_status; rows carry a ttl)."""
    rows = [
        {
            "id": view.node.node_id,
            "ip": "127.0.0.1",
            "hostname": view.node.hostname,
            "version": version,
            "sync_status": "normal",
            "config_hash": view.config_hash(),
            "last_seen": int(now),
            "ttl": PURGE_DELAY,
        }
        for view in views
    ]
    return {"data": rows, "next": None}
