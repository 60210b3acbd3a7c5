"""``SettledConfig``: the serve worker reads each gunicorn setting once, and gunicorn's own
parser, given it, accepts and refuses exactly what it does with gunicorn's ``Config``."""

from __future__ import annotations

import socket

import pytest
from gunicorn import http
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi

from sidecar.serve import SidecarApplication
from sidecar.settings import Settings
from sidecar.worker import SettledConfig

PEER, SERVER = ("127.0.0.1", 50000), ("127.0.0.1", 8080)
BODY = b'{"split": {"stable": 95, "baseline": 2.5, "canary": 2.5}}'
PUT = (
    b"PUT /v1/upstreams/orders/split?dry_run=1 HTTP/1.1\r\nHost: sidecar\r\n"
    b"Authorization: Bearer t\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
REFUSED = {
    "smuggling: length and chunked": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two lengths": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "obsolete folding": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  2\r\n\r\n",
    "bad header name": b"GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad method": b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad version": b"GET / HTTP/7.1\r\nHost: a\r\n\r\n",
    "request line too long": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 120 + b"\r\n",
}


def serve_config():  # type: ignore[no-untyped-def]
    """gunicorn's Config as ``kong-canary serve`` loads it."""
    return SidecarApplication(Settings()).cfg


def parsed(cfg, data: bytes):  # type: ignore[no-untyped-def]
    """gunicorn's parser over ``data`` (already read, as the worker hands it over), then
    the WSGI environ, as a thread of the worker builds them."""
    here, there = socket.socketpair()
    with here, there:
        parser = http.get_parser(cfg, here, PEER)
        parser.unreader.unread(data)
        request = next(parser)
        _, environ = wsgi.create(request, here, PEER, SERVER, cfg)
        body = environ["wsgi.input"].read()
    kept = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_LENGTH", "wsgi.url_scheme")
    return request.headers, {k: environ[k] for k in kept}, body


def test_every_setting_reads_as_gunicorns_config_says() -> None:
    cfg = serve_config()
    settled = SettledConfig(cfg)
    for name in cfg.settings:
        assert getattr(settled, name) == getattr(cfg, name), name
    assert settled.is_ssl == cfg.is_ssl
    assert settled.forwarded_allow_networks() == cfg.forwarded_allow_networks()


def test_a_setting_is_read_from_config_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = serve_config()
    reads: list[str] = []
    looked_up = type(cfg).__getattr__
    monkeypatch.setattr(type(cfg), "__getattr__", lambda c, n: reads.append(n) or looked_up(c, n))
    settled = SettledConfig(cfg)
    parsed(settled, PUT)
    assert "limit_request_fields" in reads and "forwarded_allow_ips" in reads
    reads.clear()
    for _ in range(3):
        parsed(settled, PUT)
    assert reads == []  # unlike gunicorn's Config, read ~25 times per request


def test_writing_a_setting_is_refused() -> None:
    with pytest.raises(AttributeError, match="keepalive"):
        SettledConfig(serve_config()).keepalive = 30


def test_gunicorns_parser_reads_a_request_alike_through_it() -> None:
    cfg = serve_config()
    assert parsed(SettledConfig(cfg), PUT) == parsed(cfg, PUT)
    _, environ, body = parsed(SettledConfig(cfg), PUT)
    assert environ["QUERY_STRING"] == "dry_run=1" and body == BODY


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_gunicorns_parser_refuses_alike_through_it(data: bytes) -> None:
    cfg = serve_config()
    with pytest.raises(http_errors.ParseException) as plain:
        parsed(cfg, data)
    with pytest.raises(type(plain.value)) as settled:
        parsed(SettledConfig(cfg), data)
    assert str(settled.value) == str(plain.value)
