"""The real ``kong-canary serve`` (gunicorn, two workers) against clients and a Kong that
misbehave: half-open and trickling clients must not take request handling away, and
requests stuck on a Kong that never answers must not take ``/healthz`` away (issue 13
items 2 and 3). Bounds are the chart's liveness-probe timeout, not tight timings."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli.sidecar_process import TOKEN, free_port, process, sidecar_env, wait_until

pytestmark = pytest.mark.slow

VALUES = Path(__file__).parents[2] / "helm" / "kong-canary" / "values.yaml"
PROBE_TIMEOUT = float(yaml.safe_load(VALUES.read_text())["livenessProbe"]["timeoutSeconds"])
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHANGE = {
    "split": {"stable": 90, "baseline": 5, "canary": 5},
    "targets": {"canary": ["127.0.0.1:9113"], "baseline": ["127.0.0.1:9112"]},
}


@contextmanager
def sidecar(tmp_path: Path, workers: int = 2, **env: str) -> Iterator[str]:
    port = free_port()
    args = ["serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    with (tmp_path / "output").open("w") as output, process(args, sidecar_env(**env), output):
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(base + "/readyz").status_code == 200, 30, "readiness")
        yield base


def probe(base: str) -> float:
    """One liveness probe as the kubelet makes it: a fresh connection, the chart's timeout."""
    started = time.monotonic()
    r = httpx.get(base + "/healthz", timeout=PROBE_TIMEOUT)
    assert r.status_code == 200
    return time.monotonic() - started


def open_sockets(base: str, count: int, payload: bytes, stack: ExitStack) -> list[socket.socket]:
    host, port = base.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = stack.enter_context(socket.create_connection((host, int(port)), timeout=5))
        sock.sendall(payload)
        sockets.append(sock)
    return sockets


def answer_or_close(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends before closing (b"" for a plain close); fails if it does not."""
    sock.settimeout(timeout)
    received = b""
    while True:
        data = sock.recv(4096)
        if not data:
            return received
        received += data


def test_half_open_and_slow_clients_do_not_take_request_handling_away(tmp_path: Path) -> None:
    timeouts = {"KONG_CANARY_HEADER_TIMEOUT": "3", "KONG_CANARY_BODY_TIMEOUT": "3"}
    with sidecar(tmp_path, **timeouts) as base, ExitStack() as stack:
        half_open = open_sockets(base, 200, b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n", stack)
        slow_body = open_sockets(
            base,
            20,
            b"PUT /v1/upstreams/orders/split HTTP/1.1\r\nHost: sidecar\r\n"
            b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"split": ',
            stack,
        )
        time.sleep(0.5)  # every worker has its share of them by now
        for _ in range(5):
            probe(base)
        r = httpx.put(base + "/v1/upstreams/orders/split", json=CHANGE, headers=AUTH, timeout=10)
        assert r.status_code == 200, r.text
        # The deadlines end them: the head and the body each within 3 s, answered 408.
        for sock in (half_open[0], half_open[-1], slow_body[0]):
            answer = answer_or_close(sock, 10)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b'"code": "request_timeout"' in answer


def test_at_the_connection_limit_the_oldest_half_open_socket_makes_room(tmp_path: Path) -> None:
    """One worker, 50 connections: 200 half-open sockets would have stopped it accepting."""
    with sidecar(tmp_path, 1, KONG_CANARY_CONNECTIONS="50") as base, ExitStack() as stack:
        open_sockets(base, 200, b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n", stack)
        for _ in range(5):
            probe(base)
        r = httpx.put(base + "/v1/upstreams/orders/split", json=CHANGE, headers=AUTH, timeout=10)
        assert r.status_code == 200, r.text
        assert shed(base, "evicted") >= 150


def shed(base: str, reason: str) -> float:
    text = httpx.get(base + "/metrics", timeout=PROBE_TIMEOUT).text
    found = re.search(rf'kong_canary_http_shed_total\{{reason="{reason}"\}} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else 0.0


def test_a_trickling_client_is_cut_at_the_header_deadline_though_it_keeps_sending(
    tmp_path: Path,
) -> None:
    """A read timeout alone would never fire: a byte arrives every 0.3 s."""
    with sidecar(tmp_path, KONG_CANARY_HEADER_TIMEOUT="2") as base, ExitStack() as stack:
        (sock,) = open_sockets(base, 1, b"G", stack)
        started = time.monotonic()
        with pytest.raises(OSError):  # broken pipe or reset once the server closed
            for _ in range(100):
                sock.sendall(b"X")
                time.sleep(0.3)
        assert time.monotonic() - started < 15


def test_a_kong_that_never_answers_leaves_healthz_alone_and_saturation_gets_fast_503(
    tmp_path: Path,
) -> None:
    kong_port = free_port()
    kong_url = f"http://127.0.0.1:{kong_port}"
    kong_args = ["kong-local", "--kong-version", "3.9", "--bind", f"127.0.0.1:{kong_port}"]
    with (
        (tmp_path / "kong-output").open("w") as kong_output,
        process([*kong_args, "--test-controls"], {}, kong_output),
    ):
        wait_until(lambda: httpx.get(kong_url + "/").status_code == 200, 20, "kong-local")
        with sidecar(
            tmp_path,
            KONG_CANARY_KONG_ADMIN_URL=kong_url,
            KONG_CANARY_KONG_READ_TIMEOUT="5",
            KONG_CANARY_KONG_READ_RETRIES="0",
            KONG_CANARY_THREADS="4",
            KONG_CANARY_REQUEST_QUEUE="4",
        ) as base:
            # From now on every GET to Kong is held for 60 s: Kong accepts and never answers.
            for nth in range(1, 301):  # the nth GET from now, for each of the next 300
                rule = {"nth": nth, "mode": "timeout", "methods": ["GET"], "delay": 60}
                assert httpx.post(kong_url + "/_kong_local/faults", json=rule).status_code == 201

            limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
            client = httpx.Client(base_url=base, headers=AUTH, timeout=60, limits=limits)

            def kong_bound() -> tuple[int, float, httpx.Headers, bytes]:
                started = time.monotonic()
                r = client.get("/v1/upstreams/orders/split")
                return r.status_code, time.monotonic() - started, r.headers, r.content

            with client, ThreadPoolExecutor(48) as pool:
                calls = [pool.submit(kong_bound) for _ in range(48)]
                time.sleep(1.0)  # all 48 sent: the lanes are full
                probes = [probe(base) for _ in range(10)]
                overloaded = [c.result() for c in calls if c.done()]
                counted = shed(base, "overloaded")  # /metrics is served meanwhile too
                httpx.delete(kong_url + "/_kong_local/faults")
            assert max(probes) < PROBE_TIMEOUT
            refused = [o for o in overloaded if o[0] == 503]
            # 2 workers x (4 threads + 4 waiting) at most are admitted; the rest are refused.
            assert len(refused) >= 48 - 16, overloaded
            assert counted >= len(refused)
            for _, seconds, headers, content in refused:
                assert seconds < PROBE_TIMEOUT
                assert headers["retry-after"] == "1"
                assert httpx.Response(503, content=content).json()["error"]["code"] == "overloaded"


def test_reading_requests_in_the_loop_keeps_http_1_1_intact(tmp_path: Path) -> None:
    """Pipelined requests, ``Expect: 100-continue`` (one 100, before the body), chunked
    bodies, and the loop's own answers to heads and bodies over the limits."""
    with sidecar(tmp_path, 1) as base, ExitStack() as stack:
        (pipelined,) = open_sockets(base, 1, b"GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n" * 3, stack)
        pipelined.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answers = answer_or_close(pipelined, 10)
        assert answers.count(b'{"status":"ok"}') == 4
        body = b'{"split": {"stable": 100, "baseline": 0, "canary": 0}}'
        head = (
            b"PUT /v1/upstreams/orders/split HTTP/1.1\r\nHost: s\r\nConnection: close\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
        )
        (expecting,) = open_sockets(
            base, 1, head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body), stack
        )
        expecting.settimeout(10)
        assert expecting.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        expecting.sendall(body)
        answer = answer_or_close(expecting, 10)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"100 Continue" not in answer, answer
        chunks = (
            b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:9], body[9:])) + b"0\r\n\r\n"
        )
        (chunked,) = open_sockets(base, 1, head + b"Transfer-Encoding: chunked\r\n\r\n", stack)
        chunked.sendall(chunks)
        assert answer_or_close(chunked, 10).startswith(b"HTTP/1.1 200 ")
        (big_head,) = open_sockets(base, 1, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 70000, stack)
        assert answer_or_close(big_head, 10).startswith(b"HTTP/1.1 431 ")
        (big_body,) = open_sockets(base, 1, head + b"Content-Length: 99999999999\r\n\r\n", stack)
        assert answer_or_close(big_body, 10).startswith(b"HTTP/1.1 413 ")


def test_a_client_that_stops_reading_its_answers_gives_the_thread_back(tmp_path: Path) -> None:
    """Pipelined requests for the OpenAPI document, none of the answers read: the thread
    writing them blocks once the socket buffers are full, until BODY_TIMEOUT cuts it off.
    One thread and no queue, so the next Kong-lane request needs that very thread."""
    settings = {
        "KONG_CANARY_THREADS": "1",
        "KONG_CANARY_REQUEST_QUEUE": "0",
        "KONG_CANARY_BODY_TIMEOUT": "2",
    }
    with sidecar(tmp_path, 1, **settings) as base, ExitStack() as stack:
        host, port = base.removeprefix("http://").split(":")
        reader = stack.enter_context(socket.socket())
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect((host, int(port)))
        reader.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: s\r\n\r\n" * 400)
        time.sleep(1)  # the thread is writing into full buffers by now

        def split_is_served() -> bool:
            r = httpx.get(base + "/v1/upstreams/orders/split", headers=AUTH, timeout=10)
            return r.status_code == 200

        wait_until(split_is_served, 15, "the thread to come back")
