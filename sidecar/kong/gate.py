"""A bound on the Admin API requests one sidecar process has in flight, to every Kong node.

Why: each request Kong serves holds one of its database connections; a sidecar that fans out
(parallel write chunks, concurrent reads, many request threads, propagation checks) can make
Postgres refuse connections ("sorry, too many clients already", seen on Kong 3.4.2 under the
split bench). httpx's pool bounds one client's connections only, and the propagation checks
have clients of their own, so the bound sits in the transport of every client this process
builds: ``GatedTransport`` takes a slot before sending and gives it back when the response
is closed. A request that finds no slot within ``wait`` fails as a pool timeout would, before
anything was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx


class SlotTimeout(httpx.PoolTimeout):
    """No request slot came free in time; nothing was sent."""


class ConcurrencyGate:
    """At most ``limit`` holders at once; ``wait`` seconds to get in."""

    def __init__(self, limit: int, wait: float) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.wait = wait
        self._slots = threading.BoundedSemaphore(limit)

    def enter(self) -> None:
        if not self._slots.acquire(timeout=self.wait):
            raise SlotTimeout(
                f"all {self.limit} Admin API request slots of this process stayed busy for "
                f"{self.wait:g} s (kong_max_concurrency)"
            )

    def leave(self) -> None:
        self._slots.release()


_gates: dict[tuple[int, float], ConcurrencyGate] = {}
_gates_guard = threading.Lock()


def process_gate(limit: int, wait: float) -> ConcurrencyGate:
    """The gate every client of this process built with these settings shares (a gunicorn
    worker is a process: the bound is per worker, so per replica it is workers x limit)."""
    with _gates_guard:
        gate = _gates.get((limit, wait))
        if gate is None:
            gate = _gates[(limit, wait)] = ConcurrencyGate(limit, wait)
        return gate


class _ReleasingStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, gate: ConcurrencyGate) -> None:
        self._inner = inner
        self._gate = gate
        self._open = True
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            with self._lock:
                if self._open:
                    self._open = False
                    self._gate.leave()


class GatedTransport(httpx.BaseTransport):
    """Wraps a transport: one gate slot per request, from sending until the body is closed."""

    def __init__(self, inner: httpx.BaseTransport, gate: ConcurrencyGate) -> None:
        self.inner = inner
        self.gate = gate

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.gate.enter()
        try:
            response = self.inner.handle_request(request)
        except BaseException:
            self.gate.leave()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        if response.is_closed:  # read whole already (a MockTransport's): nothing in flight
            self.gate.leave()
            return response
        # The same response, its stream wrapped in place: building a second Response
        # would copy and re-validate its headers on every call (the profile of a ramp step).
        response.stream = _ReleasingStream(response.stream, self.gate)
        return response

    def close(self) -> None:
        self.inner.close()
