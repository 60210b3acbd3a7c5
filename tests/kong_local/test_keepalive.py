"""The local Kong keeps connections alive between requests, as Kong's nginx does, without
letting one request's unread body spill into the next."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from sidecar.kong_local.server import serve_in_thread

SEED = {"upstreams": [{"name": "orders", "targets": [{"target": "10.0.0.1:80"}]}]}


@pytest.fixture
def kong():
    with serve_in_thread("3.9", seed=SEED) as server:
        yield server


def connect(kong) -> http.client.HTTPConnection:
    host, port = kong.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=5)


def exchange(conn: http.client.HTTPConnection, method: str, path: str, body=None, **headers):
    payload = json.dumps(body).encode() if body is not None else None
    if payload is not None:
        headers.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    return response.status, response.getheader("Connection"), response.read()


def test_one_connection_serves_many_requests(kong):
    conn = connect(kong)
    status, connection, _ = exchange(conn, "GET", "/upstreams/orders")
    assert (status, connection) == (200, None)
    sock = conn.sock
    assert sock is not None
    for weight in (5, 6, 7):
        path = "/upstreams/orders/targets/10.0.0.1:80"
        assert exchange(conn, "PATCH", path, {"weight": weight})[0] == 200
        assert conn.sock is sock  # the same TCP connection: nothing closed it
    _, _, body = exchange(conn, "GET", "/upstreams/orders/targets")
    assert json.loads(body)["data"][0]["weight"] == 7
    conn.close()


def test_an_unread_body_does_not_spill_into_the_next_request(kong):
    """A GET's body is never read by the app; it must still be consumed, or its bytes
    would be parsed as the next request line."""
    conn = connect(kong)
    padding = {"target": "10.0.0.9:80", "tags": ["x" * 50] * 200}
    status, _, _ = exchange(conn, "GET", "/upstreams/orders/targets", padding)
    assert status == 200
    sock = conn.sock
    status, _, body = exchange(conn, "GET", "/upstreams/orders")
    assert status == 200 and json.loads(body)["name"] == "orders"
    assert conn.sock is sock
    conn.close()


def test_a_chunked_body_closes_the_connection(kong):
    """Without a Content-Length there is no bound to drain to: answer, then close."""
    conn = connect(kong)
    conn.putrequest("POST", "/upstreams/orders/targets")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = json.dumps({"target": "10.0.0.2:80"}).encode()
    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
    response = conn.getresponse()
    assert response.status == 201
    assert response.getheader("Connection") == "close"
    response.read()
    conn.close()


def test_the_client_may_ask_to_close(kong):
    conn = connect(kong)
    status, connection, _ = exchange(conn, "GET", "/upstreams/orders", Connection="close")
    assert (status, connection) == (200, "close")
    conn.close()


def test_stopping_closes_idle_kept_alive_connections():
    server = serve_in_thread("3.9", seed=SEED)
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(b"GET /upstreams/orders HTTP/1.1\r\nHost: kong\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2  # not held by the idle connection's thread
    while sock.recv(65536):  # the rest of the answer, then the end: the server closed it
        pass  # (a connection left open would raise socket.timeout here instead)
    sock.close()


def raw_exchange(kong, payload: bytes) -> bytes:
    """Send raw bytes, read until the server closes (a kept-open connection would raise
    socket.timeout instead)."""
    host, port = kong.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_request_http_server_cannot_parse_closes_the_connection(kong):
    """431 for an oversized header is http.server's own answer; the rest of that header
    must not be read as a next request on the same connection."""
    answer = raw_exchange(kong, b"GET /upstreams HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431")
    assert b"Connection: close" in answer
    assert answer.count(b"HTTP/1.1 ") == 1  # no second answer to the header's leftovers


@pytest.mark.parametrize("length", [b"-1", b"+5", b"1_0", b" ", b"5\r\nContent-Length: 7"])
def test_a_doubtful_content_length_closes_rather_than_smuggle(kong, length):
    """The bytes after a body of uncertain length are never served as a request."""
    smuggled = b"GET /upstreams/smuggled HTTP/1.1\r\nHost: kong\r\n\r\n"
    raw_exchange(
        kong,
        b"POST /upstreams HTTP/1.1\r\nHost: kong\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + length + b"\r\n\r\n" + smuggled,
    )
    assert not any("smuggled" in path for _, path in kong.app.calls)
