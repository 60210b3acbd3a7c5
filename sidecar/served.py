"""Looks whether Kong's nodes serve what Kong's database holds for an upstream: the I/O
around ``sidecar.core.served`` for status URLs and ramp steps.

The expected weights are read from Kong at each look, not carried in the status URL: the
URL stays short whatever the number of targets, and a removed target (rollback with
``remove``, promote) is expected to be gone from every node's balancer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sidecar.core.served import Verdict, expected_weights, judge
from sidecar.core.split import Split
from sidecar.traffic import TrafficService, UpstreamState


class Checker(Protocol):
    """``sidecar.propagation.Propagation.check``: one look at every checkable node."""

    def check(
        self, upstream: str, weights: Mapping[str, int], *, since: float | None = None
    ) -> dict[str, Any]: ...


class ServedCheck:
    """Looks through the traffic service's propagation waiter (the one that ``wait`` uses,
    so both see the same nodes); without one that can ``check``, Kong's database is all."""

    def __init__(self, traffic: TrafficService, clock: Callable[[], float]) -> None:
        self.traffic = traffic
        self.clock = clock  # wall clock: status URLs carry epoch seconds

    @property
    def checker(self) -> Checker | None:
        waiter = self.traffic.propagation
        return waiter if callable(getattr(waiter, "check", None)) else None  # type: ignore[return-value]

    def look(
        self, upstream: str, *, state: UpstreamState | None = None, since: float | None = None
    ) -> tuple[UpstreamState, dict[str, Any] | None]:
        """Kong's state (read now unless given) and whether its nodes serve it."""
        state = state if state is not None else self.traffic.read(upstream)
        checker = self.checker
        if checker is None:
            return state, None
        weights = expected_weights({t.target: t.weight for t in state.targets})
        return state, checker.check(state.upstream.name, weights, since=since)

    def status(
        self, upstream: str, expected: Split, *, since: float | None, until: float
    ) -> tuple[Verdict, UpstreamState, dict[str, Any] | None]:
        state = self.traffic.read(upstream)
        if state.split() != expected:  # replaced: no need to ask every node
            return judge(expected, state.split(), None, now=self.clock(), until=until), state, None
        state, propagation = self.look(upstream, state=state, since=since)
        verdict = judge(expected, state.split(), propagation, now=self.clock(), until=until)
        return verdict, state, propagation
