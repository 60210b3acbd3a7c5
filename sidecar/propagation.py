"""Propagation checks: a weight written to Kong is not yet traffic moved.

The node that took a write rebuilds its balancer at once; the rest of the cluster follows
later (kong-admin-api.md 6): traditional nodes on their next cluster-event poll
(``db_update_frequency``, 5 s), hybrid data planes when the control plane pushes (it then
waits ``db_update_frequency`` before pushing again), Konnect nodes when they pull. Kayenta
must not judge an interval in which traffic had not moved, so a change may ``wait`` until
the nodes show the new state, up to a timeout, and report how long that took.

Three ways to look, chosen from the node we write to (``KongAdmin.info()``):

- ``health`` (traditional, or explicit ``propagation_nodes``): each node's
  ``/upstreams/{u}/health``. Only ``data`` tells the node's *balancer* (``nodeWeight``,
  ``kong/runloop/balancer/balancers.lua`` ``getTargetStatus``); the top-level ``weight`` is
  read from the shared database and is already new everywhere. ``?balancer_health=1``
  ``details.hosts`` (3.x) lists every target the balancer holds, including ones deleted
  since; where Kong gives no such list (2.8 without health checks), deleted targets a node
  still balances to are invisible. A node answers for the worker that took the request;
  its other workers follow through worker events (3.x: at once; 2.8: polled every 1 s).
- ``hybrid`` (OSS control plane): ``GET /clustering/data-planes``. Every connected data plane
  must report a config hash different from the one before the write, all the same, and no
  sooner than one push interval after the write: the control plane pushes on the first
  change and again ``db_update_frequency`` later (``kong/clustering/control_plane.lua``
  ``push_config_loop``), so the first new hash may be an intermediate configuration.
- ``konnect``: every node's ``config_hash`` equals ``…/expected-config-hash``.

A timeout does not fail the change (the write is in Kong and will still propagate): the
result says ``confirmed: false``; the pipeline treats it as a warning, or asks for
``wait_strict`` (503, which Orca retries: an idempotent re-PUT that waits again).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import KongError, KongNotFound
from sidecar.kong.http import build_http_client
from sidecar.kong.models import Flavour, normalise_target
from sidecar.settings import KongSettings

HEALTH, HYBRID, KONNECT = "health", "hybrid", "konnect"
DONE, WAIT, TIMEOUT = "done", "wait", "timeout"
DEFAULT_PUSH_INTERVAL = 5.0  # db_update_frequency's default
STALE_AFTER = 60.0  # DPs ping every 30 s (CLUSTERING_PING_INTERVAL); older rows are gone DPs
MAX_PARALLEL = 8


# ---- pure core ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeCheck:
    """One node (or data plane) at one poll: does it serve the new state?"""

    node: str
    confirmed: bool
    detail: str | None = None


@dataclass(frozen=True)
class Observation:
    checks: tuple[NodeCheck, ...]
    ignored: tuple[str, ...] = ()  # listed but disconnected (hybrid, Konnect)
    agreed: str | None = None  # the config hash all data planes agree on


@dataclass
class Tracker:
    """When each node was first seen confirmed, in its current run of confirmations."""

    started: float
    since: dict[str, float] = field(default_factory=dict)

    def update(self, checks: Sequence[NodeCheck], now: float) -> None:
        for check in checks:
            if check.confirmed:
                self.since.setdefault(check.node, now)
            else:
                self.since.pop(check.node, None)

    def after_ms(self, node: str) -> int | None:
        at = self.since.get(node)
        return None if at is None else round((at - self.started) * 1000)


def decide(
    checks: Sequence[NodeCheck], *, now: float, deadline: float, not_before: float | None
) -> str:
    """DONE when every node is confirmed (none to check counts: nothing serves stale
    weights) and ``not_before`` has passed; TIMEOUT once the deadline is reached; else WAIT."""
    if all(c.confirmed for c in checks) and (not_before is None or now >= not_before):
        return DONE
    if now >= deadline:
        return TIMEOUT
    return WAIT


def next_delay(
    attempt: int,
    *,
    now: float,
    deadline: float,
    not_before: float | None = None,
    ready: bool = False,
    first: float = 0.1,
    factor: float = 1.5,
    cap: float = 1.0,
) -> float:
    """Poll soon (a single node often confirms within milliseconds), then back off to once a
    second; never sleep past the deadline. ``ready``: every node is confirmed and only
    ``not_before`` remains, so sleep exactly until then."""
    delay = min(cap, first * factor**attempt)
    if ready and not_before is not None and now < not_before:
        delay = not_before - now
    return max(0.0, min(delay, deadline - now))


def same_weights(expected: Mapping[str, int], seen: Mapping[str, int]) -> bool:
    """Weight 0 and absent are the same to a balancer: neither gets traffic."""
    return {t: w for t, w in expected.items() if w} == {t: w for t, w in seen.items() if w}


def _describe(weights: Mapping[str, int]) -> str:
    shown = {t: w for t, w in sorted(weights.items()) if w}
    return ", ".join(f"{t}={w}" for t, w in shown.items()) or "none"


def health_check(
    node: str,
    expected: Mapping[str, int],
    balancer: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]] | None,
) -> NodeCheck:
    """Judge one traditional node from ``?balancer_health=1`` (``balancer``: its ``data``,
    None when the node has no balancer) and, when that lacks ``details.hosts``, the rows of
    ``/health``. A node without a balancer for the upstream builds it from the database on
    its first request, so it cannot serve stale weights."""
    none_yet = "no balancer for this upstream yet: built from the current weights on use"
    expected = {_target_key(t): w for t, w in expected.items()}
    if balancer is None and rows is None:
        return NodeCheck(node, True, none_yet)
    details = balancer.get("details") if isinstance(balancer, Mapping) else None
    hosts = details.get("hosts") if isinstance(details, Mapping) else None
    seen: dict[str, int] = {}
    if isinstance(hosts, list):
        for host in (h for h in hosts if isinstance(h, Mapping)):
            key = _target_key(f"{host.get('host')}:{host.get('port')}")
            seen[key] = seen.get(key, 0) + _int(host.get("nodeWeight"))
    else:
        rows = rows or []
        if rows and not any("data" in r or "health" in r for r in rows):
            return NodeCheck(node, True, none_yet)
        for row in rows:
            data = row.get("data")
            if isinstance(data, Mapping):  # no data: not in this node's balancer (yet)
                seen[_target_key(str(row.get("target")))] = _int(data.get("nodeWeight"))
    if same_weights(expected, seen):
        return NodeCheck(node, True)
    return NodeCheck(node, False, f"balancer has {_describe(seen)}")


def hybrid_observation(
    planes: Sequence[Mapping[str, Any]],
    before: Mapping[str, str] | None,
    *,
    wall_now: float,
) -> Observation:
    """A data plane is confirmed when its hash differs from its hash before the write (or
    that is unknown) and equals the hash most changed data planes report."""
    live, ignored = _connected(planes, "last_seen", wall_now)
    changed = [
        p for p in live if before is None or p.get("config_hash") != before.get(str(p.get("id")))
    ]
    counts = Counter(str(p.get("config_hash")) for p in changed)
    agreed = counts.most_common(1)[0][0] if counts else None
    checks = []
    for plane in live:
        name, value = _plane_name(plane), str(plane.get("config_hash"))
        if plane not in changed:
            checks.append(NodeCheck(name, False, f"still on config {value} (before the write)"))
        elif value != agreed:
            checks.append(NodeCheck(name, False, f"on config {value}, others on {agreed}"))
        else:
            checks.append(NodeCheck(name, True))
    return Observation(tuple(checks), ignored, agreed)


def konnect_observation(
    expected: str, nodes: Sequence[Mapping[str, Any]], *, wall_now: float
) -> Observation:
    live, ignored = _connected(nodes, "last_ping", wall_now)
    checks = tuple(
        NodeCheck(_plane_name(n), True)
        if n.get("config_hash") == expected
        else NodeCheck(_plane_name(n), False, f"config {n.get('config_hash')}, expected {expected}")
        for n in live
    )
    return Observation(checks, ignored, expected)


def _connected(
    rows: Sequence[Mapping[str, Any]], seen_key: str, wall_now: float
) -> tuple[list[Mapping[str, Any]], tuple[str, ...]]:
    """Rows outlive their data planes (14 days on an OSS CP), so skip ones not seen lately."""
    live, gone = [], []
    for row in rows:
        seen = row.get(seen_key)
        if isinstance(seen, int | float) and wall_now - seen > STALE_AFTER:
            gone.append(_plane_name(row))
        else:
            live.append(row)
    return live, tuple(gone)


def _plane_name(row: Mapping[str, Any]) -> str:
    return str(row.get("hostname") or row.get("id"))


def _target_key(raw: str) -> str:
    try:
        return normalise_target(raw)
    except ValueError:
        return raw


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def result(
    method: str,
    observation: Observation,
    tracker: Tracker,
    *,
    verdict: str,
    now: float,
    timeout: float | None,
) -> dict[str, Any]:
    """The ``propagation`` object of a change's response (``timeout`` None: one look, as a
    status poll makes, rather than a wait that ran out)."""
    nodes = []
    for check in observation.checks:
        entry: dict[str, Any] = {
            "node": check.node,
            "confirmed": check.confirmed,
            "after_ms": tracker.after_ms(check.node) if check.confirmed else None,
        }
        if check.detail:
            entry["detail"] = check.detail
        nodes.append(entry)
    waited = round((now - tracker.started) * 1000)
    noun = "node" if method == HEALTH else "data plane"
    count = len(observation.checks)
    if verdict == DONE:
        if not count:
            message = f"no connected {noun}s: none can serve stale weights"
        elif method == HEALTH:
            message = f"all {count} {noun}(s) serve the new weights ({waited} ms)"
        else:
            message = (
                f"all {count} {noun}(s) run the new configuration (config hash "
                f"{observation.agreed}) ({waited} ms)"
            )
    else:
        late = [c for c in observation.checks if not c.confirmed]
        listed = "; ".join(f"{c.node}: {c.detail}" if c.detail else c.node for c in late)
        if late:
            what = f"{len(late)} of {count} {noun}(s) not there yet ({listed})"
        else:  # hybrid: the push interval had not passed
            what = "the control plane may still push the final configuration"
        if timeout is None:
            message = f"not served yet: {what}"
        else:
            message = (
                f"not confirmed within {timeout:g} s: {what}. The change is in Kong and will "
                "still propagate"
            )
    if observation.ignored:
        message += f"; ignored {noun}(s) not seen for over {STALE_AFTER:g} s: " + ", ".join(
            observation.ignored
        )
    return {
        "confirmed": verdict == DONE,
        "method": method,
        "waited_ms": waited,
        "nodes": nodes,
        "message": message,
    }


# ---- the waiter: HTTP around the core -----------------------------------------------------


class Propagation:
    """``TrafficService``'s propagation hook. Builds its own clients lazily (a ``KongAdmin``
    per node URL, with the main connection's credentials, TLS and workspace, and no read
    retries: a poll that fails is simply repeated), so creating it costs nothing and a sidecar
    never asked to wait never talks to other nodes."""

    def __init__(
        self,
        kong: KongAdmin,
        settings: KongSettings,
        *,
        nodes: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        push_margin: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.kong = kong
        self.settings = settings
        self.nodes = tuple(nodes)
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.push_margin = push_margin  # transfer and apply after the last push
        self._transport = transport
        self._clients: dict[str | None, KongAdmin] = {}
        self._lock = threading.Lock()
        self._push_interval: float | None = None

    def method(self) -> str:
        if self.kong.flavour is Flavour.KONNECT:
            return KONNECT
        if not self.nodes and self.kong.info().role == "control_plane":
            return HYBRID
        return HEALTH

    def before_write(self, upstream: str) -> dict[str, str] | None:
        """Hybrid: each data plane's config hash before the write (None when unknown)."""
        try:
            if self.method() != HYBRID:
                return None
            return {str(p.get("id")): str(p.get("config_hash")) for p in self._data_planes()}
        except KongError:
            return None

    def wait(
        self,
        upstream: str,
        weights: Mapping[str, int],
        timeout: float,
        before: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        started = self.clock()
        deadline = started + timeout
        try:
            method = self.method()
        except KongError:  # cannot tell the cluster's kind: look at the node we write to
            method = HEALTH
        not_before = None
        if method == HYBRID:
            not_before = started + self._push_window()
        tracker = Tracker(started)
        attempt = 0
        while True:
            observation = self._observe(method, upstream, weights, before)
            now = self.clock()
            tracker.update(observation.checks, now)
            gate = not_before if observation.checks else None
            verdict = decide(observation.checks, now=now, deadline=deadline, not_before=gate)
            if verdict != WAIT:
                return result(
                    method, observation, tracker, verdict=verdict, now=now, timeout=timeout
                )
            ready = all(c.confirmed for c in observation.checks)
            self.sleep(
                next_delay(attempt, now=now, deadline=deadline, not_before=gate, ready=ready)
            )
            attempt += 1

    def check(
        self,
        upstream: str,
        weights: Mapping[str, int],
        *,
        since: float | None = None,
        before: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One look, no waiting: what a status URL that Orca polls answers each time (a
        monitored stage may wait far longer than Orca's webhook read timeout allows one call
        to). ``since``: wall-clock time of the write; a hybrid cluster is confirmed no sooner
        than one push interval after it (without it, agreeing new hashes suffice)."""
        started = self.clock()
        try:
            method = self.method()
        except KongError:
            method = HEALTH
        observation = self._observe(method, upstream, weights, before)
        tracker = Tracker(started)
        tracker.update(observation.checks, self.clock())
        not_before = None
        if method == HYBRID and since is not None and observation.checks:
            not_before = since + self._push_window()
        verdict = decide(
            observation.checks, now=self.wall_clock(), deadline=math.inf, not_before=not_before
        )
        return result(method, observation, tracker, verdict=verdict, now=self.clock(), timeout=None)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # ---- observing --------------------------------------------------------------------------

    def _observe(
        self,
        method: str,
        upstream: str,
        weights: Mapping[str, int],
        before: Mapping[str, str] | None,
    ) -> Observation:
        try:
            if method == HYBRID:
                return hybrid_observation(self._data_planes(), before, wall_now=self.wall_clock())
            if method == KONNECT:
                expected, nodes = self._konnect_state()
                return konnect_observation(expected, nodes, wall_now=self.wall_clock())
        except KongError as exc:
            return Observation((NodeCheck(self._main_name(), False, f"cannot read: {exc}"),))
        urls = self.nodes or (self._main_name(),)
        if len(urls) == 1:
            return Observation((self._check_node(urls[0], upstream, weights),))
        with ThreadPoolExecutor(min(MAX_PARALLEL, len(urls))) as pool:
            checks = pool.map(lambda url: self._check_node(url, upstream, weights), urls)
            return Observation(tuple(checks))

    def _check_node(self, url: str, upstream: str, weights: Mapping[str, int]) -> NodeCheck:
        kong = self._client(url if self.nodes else None)
        try:
            balancer = kong.balancer_health(upstream)
            details = balancer.get("details") if balancer is not None else None
            rows = None
            if balancer is not None and not (
                isinstance(details, dict) and isinstance(details.get("hosts"), list)
            ):
                rows = kong.health_rows(upstream)
        except KongNotFound:
            return NodeCheck(url, False, f"this node has no upstream {upstream!r}")
        except KongError as exc:
            return NodeCheck(url, False, f"cannot read: {exc}")
        return health_check(url, weights, balancer, rows)

    def _data_planes(self) -> list[dict[str, Any]]:
        return self._client(None).data_planes()

    def _push_window(self) -> float:
        """``db_update_frequency`` from the control plane's ``GET /``, plus the margin."""
        if self._push_interval is None:
            interval = DEFAULT_PUSH_INTERVAL
            try:
                value = self._client(None).configuration().get("db_update_frequency")
                if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                    interval = float(value)
            except KongError:
                pass
            self._push_interval = interval
        return self._push_interval + self.push_margin

    def _konnect_state(self) -> tuple[str, list[dict[str, Any]]]:
        kong = self._client(None)
        return kong.konnect_expected_config_hash(), kong.konnect_nodes()

    def _main_name(self) -> str:
        return self.settings.admin_url or "kong"

    def _client(self, url: str | None) -> KongAdmin:
        """``None``: the main Admin API (or Konnect); else another node's Admin API."""
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                settings = self.settings
                if url is not None:
                    settings = dataclasses.replace(settings, admin_url=url)
                http = build_http_client(settings, transport=self._transport)
                client = self.kong.over(http, read_retries=0)
                self._clients[url] = client
            return client
