"""Issue 13 item 16: the sidecar's own parallelism towards Kong is bounded per process, over
every client it builds (the main Admin API client and the propagation checks' clients)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import KongUnavailable
from sidecar.kong.gate import ConcurrencyGate, GatedTransport
from sidecar.kong.http import build_http_client
from sidecar.settings import KongSettings, SettingsError, load_settings
from tests.kong.conftest import seed, start_local


class InFlight(httpx.BaseTransport):
    """The real transport to the local Kong, counting requests in flight as they leave the
    process (held 20 ms each, so that concurrent ones overlap)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.now = 0
        self.most = 0
        self.sent = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.now += 1
            self.sent += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.02)
            response = self.inner.handle_request(request)
            body = response.read()
            response.close()
            kept = [
                (k, v)
                for k, v in response.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            ]
            return httpx.Response(response.status_code, headers=kept, content=body)
        finally:
            with self._lock:
                self.now -= 1

    def close(self) -> None:
        self.inner.close()


def test_requests_in_flight_stay_within_the_bound_across_every_client() -> None:
    with start_local("kong-3.9", seed_data=seed("orders")) as server:
        # a limit no other test uses: the gate is per process and per (limit, wait)
        settings = KongSettings(admin_url=server.url, max_concurrency=3, pool_timeout=30.0)
        wire = InFlight()
        main = KongAdmin(build_http_client(settings, transport=wire))
        other_node = KongAdmin(build_http_client(settings, transport=wire))  # as propagation
        try:
            with ThreadPoolExecutor(24) as pool:
                calls = [
                    pool.submit((main if i % 2 else other_node).upstream, "orders")
                    for i in range(96)
                ]
                assert all(c.result().name == "orders" for c in calls)
        finally:
            main.close()
            other_node.close()
    assert wire.sent == 96
    assert wire.most == 3


def test_a_request_that_finds_no_slot_in_time_fails_unsent() -> None:
    gate = ConcurrencyGate(1, 0.05)
    seen: list[httpx.Request] = []
    transport = GatedTransport(
        httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json={})), gate
    )
    gate.enter()  # someone holds the only slot
    with httpx.Client(base_url="http://kong:8001", transport=transport) as http:
        admin = KongAdmin(http, read_retries=0)
        with pytest.raises(KongUnavailable) as failed:
            admin.upstream("orders")
    assert "request slots" in str(failed.value) and failed.value.status is None
    assert seen == []
    gate.leave()


def test_slots_come_back_after_errors_and_closed_bodies() -> None:
    gate = ConcurrencyGate(2, 0.05)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/boom":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(500, json={"message": "An unexpected error occurred"})

    with httpx.Client(transport=GatedTransport(httpx.MockTransport(answer), gate)) as http:
        for _ in range(10):
            assert http.get("http://kong/upstreams").status_code == 500
            with pytest.raises(httpx.ConnectError):
                http.get("http://kong/boom")
    for _ in range(2):  # both slots are free again
        gate.enter()


class Chunks(httpx.SyncByteStream):
    """A body still to be read from the wire, as the real transport's is."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield b'{"data": []}'

    def close(self) -> None:
        self.closed = True


def test_a_streamed_body_holds_its_slot_until_it_is_closed() -> None:
    """The slot is the request's until its body is closed (the connection is Kong's until
    then), and the transport's own stream is closed with it."""
    gate = ConcurrencyGate(1, 0.01)
    body = Chunks()
    transport = GatedTransport(
        httpx.MockTransport(lambda r: httpx.Response(200, stream=body)), gate
    )
    with httpx.Client(transport=transport) as http:
        with http.stream("GET", "http://kong/upstreams") as response:
            with pytest.raises(httpx.PoolTimeout):
                gate.enter()  # the response's until its body is read and closed
            assert response.read() == b'{"data": []}'
        assert body.closed
    gate.enter()  # free again
    gate.leave()


def test_the_bound_is_a_validated_setting() -> None:
    loaded = load_settings(
        environ={"KONG_CANARY_KONG_MAX_CONCURRENCY": "4", "KONG_CANARY_TOKENS": "a=" + "x" * 20}
    )
    assert loaded.kong.max_concurrency == 4
    with pytest.raises(SettingsError, match="kong_max_concurrency"):
        load_settings(
            environ={"KONG_CANARY_KONG_MAX_CONCURRENCY": "0", "KONG_CANARY_TOKENS": "a=" + "x" * 20}
        )
