"""Test doubles for the Kong client: a scripted Admin API for httpx.MockTransport, and tiny
loopback servers that misbehave on purpose (slow, dribbling, hanging up)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong.models import Flavour
from sidecar.settings import KongSettings

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def info_body(
    version: str = "3.4.2", database: str = "postgres", role: str = "traditional"
) -> dict[str, Any]:
    return {
        "version": version,
        "node_id": "node-1",
        "hostname": "kong-0",
        "configuration": {"database": database, "role": role},
    }


def target_body(target: str, weight: int = 100, ident: str = "t-1", **extra: Any) -> dict:
    return {
        "id": ident,
        "target": target,
        "weight": weight,
        "tags": extra.pop("tags", None),
        "upstream": {"id": extra.pop("upstream_id", "u-1")},
        "created_at": 1700000000.123,
        **extra,
    }


def upstream_body(name: str = "orders", ident: str = "u-1", **extra: Any) -> dict:
    return {
        "id": ident,
        "name": name,
        "algorithm": "round-robin",
        "hash_on": "none",
        "hash_fallback": "none",
        "slots": 10000,
        "tags": None,
        "created_at": 1700000000,
        **extra,
    }


def reply(status: int = 200, body: Any = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    if isinstance(body, bytes | str):
        return httpx.Response(status, content=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class FakeKong:
    """Answers by (method, path) from a script; the last answer of a route repeats.

    Unscripted requests get a 599 so a test notices a call it did not expect.
    """

    routes: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, *answers: Answer) -> FakeKong:
        self.routes[(method, path)] = list(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        queue = self.routes.get((request.method, request.url.path))
        if not queue:
            return reply(599, {"message": f"unscripted {request.method} {request.url.path}"})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer

    def calls(self, method: str | None = None) -> list[tuple[str, str]]:
        return [
            (r.method, r.url.path) for r in self.requests if method is None or r.method == method
        ]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@dataclass
class Sleeps:
    """Injected instead of time.sleep: records backoffs, never waits."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_admin(
    fake: FakeKong,
    *,
    flavour: Flavour | None = None,
    settings: KongSettings | None = None,
    read_retries: int = 2,
    sleep: Sleeps | None = None,
) -> KongAdmin:
    settings = settings or KongSettings(admin_url="http://kong:8001")
    http = build_http_client(settings, transport=httpx.MockTransport(fake))
    return KongAdmin(http, flavour=flavour, read_retries=read_retries, sleep=sleep or Sleeps())


KONNECT = KongSettings(
    admin_url="https://eu.api.konghq.com",
    konnect_token="kpat_test",
    konnect_control_plane_id="cp-1",
)
KONNECT_BASE = "/v2/control-planes/cp-1/core-entities"


# -- misbehaving loopback servers -------------------------------------------------------------

Behaviour = Callable[[socket.socket], None]


@contextmanager
def raw_server(behaviour: Behaviour) -> Iterator[str]:
    """A loopback TCP server on port 0 running ``behaviour(conn)`` per connection, in threads.

    Yields the base URL; on exit it stops accepting and closes every connection it holds.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve_one(conn: socket.socket) -> None:
        try:
            _read_request_head(conn)
            behaviour(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    host, port = listener.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def _read_request_head(conn: socket.socket) -> None:
    data = b""
    conn.settimeout(2)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
