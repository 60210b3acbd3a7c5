"""build_http_client: base URLs, credentials, timeouts, TLS (real handshakes on loopback)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sidecar import __version__
from sidecar.kong import errors, wire
from sidecar.kong.http import build_http_client
from sidecar.outbound import CONNECT_RETRIES, limits
from sidecar.settings import KongSettings

CERTS = Path(__file__).parent / "certs"


def _sent(settings: KongSettings, path: str = "/upstreams") -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": []})

    with build_http_client(settings, transport=httpx.MockTransport(handler)) as http:
        http.get(path)
    return seen[0]


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        (KongSettings(admin_url="http://kong:8001"), "http://kong:8001/upstreams"),
        (KongSettings(admin_url="http://kong:8001/"), "http://kong:8001/upstreams"),
        (KongSettings(admin_url="https://kong/admin"), "https://kong/admin/upstreams"),
        (
            KongSettings(admin_url="http://kong:8001", workspace="SRE"),
            "http://kong:8001/SRE/upstreams",
        ),
        (
            KongSettings(konnect_token="kpat_x", konnect_control_plane_id="cp-1"),
            "https://us.api.konghq.com/v2/control-planes/cp-1/core-entities/upstreams",
        ),
        (
            KongSettings(
                admin_url="https://eu.api.konghq.com/v2/",
                konnect_token="kpat_x",
                konnect_control_plane_id="cp-1",
            ),
            "https://eu.api.konghq.com/v2/control-planes/cp-1/core-entities/upstreams",
        ),
    ],
)
def test_base_url(settings: KongSettings, url: str) -> None:
    assert str(_sent(settings).url) == url


def test_konnect_without_control_plane_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="konnect_control_plane_id"):
        build_http_client(KongSettings(flavour="konnect", konnect_token="kpat_x"))


def test_missing_admin_url_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="admin_url"):
        build_http_client(KongSettings())


def test_headers_for_plain_kong() -> None:
    headers = _sent(KongSettings(admin_url="http://kong:8001")).headers
    assert headers["user-agent"] == f"kong-canary/{__version__}"
    assert "kong-admin-token" not in headers and "authorization" not in headers


def test_rbac_token_header() -> None:
    headers = _sent(KongSettings(admin_url="http://kong:8001", admin_token="s3cret")).headers
    assert headers["kong-admin-token"] == "s3cret" and "authorization" not in headers


def test_konnect_bearer_and_never_the_rbac_header() -> None:
    settings = KongSettings(
        konnect_token="spat_abc", konnect_control_plane_id="cp-1", admin_token="ignored"
    )
    headers = _sent(settings).headers
    assert headers["authorization"] == "Bearer spat_abc" and "kong-admin-token" not in headers


def test_timeouts_and_limits_come_from_settings() -> None:
    settings = KongSettings(
        admin_url="http://kong:8001",
        connect_timeout=1.5,
        read_timeout=4.0,
        write_timeout=3.0,
        pool_timeout=0.5,
        max_connections=7,
    )
    with build_http_client(settings) as http:
        assert http.timeout == httpx.Timeout(connect=1.5, read=4.0, write=3.0, pool=0.5)
        pool = http._transport.inner._pool  # httpcore pool behind the gated HTTPTransport
        assert pool._max_connections == 7 and pool._max_keepalive_connections == 7
        assert pool._retries == CONNECT_RETRIES  # connection establishment only
    assert limits(settings).max_connections == 7


def test_client_key_without_cert_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="client_key"):
        build_http_client(
            KongSettings(admin_url="https://kong", client_key=str(CERTS / "client.key"))
        )


# -- real TLS handshakes --------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        body = json.dumps({"client_cert": bool(peer)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def https_server(*, require_client_cert: bool) -> Iterator[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERTS / "server.pem", CERTS / "server.key")
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(CERTS / "ca.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _get(settings: KongSettings) -> dict:
    with build_http_client(settings) as http:
        return wire.call(http, "GET", "/")


def test_private_ca_bundle_is_trusted() -> None:
    with https_server(require_client_cert=False) as url:
        got = _get(KongSettings(admin_url=url, ca_bundle=str(CERTS / "ca.pem")))
    assert got == {"client_cert": False}


def test_default_trust_store_rejects_a_private_ca() -> None:
    with (
        https_server(require_client_cert=False) as url,
        pytest.raises(errors.KongUnavailable, match="TLS handshake failed"),
    ):
        _get(KongSettings(admin_url=url, read_timeout=2.0))


def test_explicit_opt_out_skips_verification() -> None:
    with https_server(require_client_cert=False) as url:
        assert _get(KongSettings(admin_url=url, tls_verify=False)) == {"client_cert": False}


def test_mutual_tls_presents_the_client_certificate() -> None:
    settings = {
        "ca_bundle": str(CERTS / "ca.pem"),
        "client_cert": str(CERTS / "client.pem"),
        "client_key": str(CERTS / "client.key"),
    }
    with https_server(require_client_cert=True) as url:
        assert _get(KongSettings(admin_url=url, **settings)) == {"client_cert": True}
        with pytest.raises(errors.KongUnavailable):
            _get(KongSettings(admin_url=url, ca_bundle=str(CERTS / "ca.pem"), read_timeout=2.0))


# -- cookies: a load balancer's sticky cookie goes back; other answers skip the jar ----------


def _answers(*set_cookies: str | None) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A Kong behind a load balancer: answer i sets ``set_cookies[i]`` (None: no cookie)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookie = set_cookies[len(seen)]
        seen.append(request)
        headers = {"Set-Cookie": cookie} if cookie else {}
        return httpx.Response(200, json={"data": []}, headers=headers)

    return httpx.MockTransport(handler), seen


def test_a_load_balancers_sticky_cookie_is_sent_back_until_it_changes() -> None:
    node_2, node_3, gone = "lb=node-2; Path=/", "lb=node-3; Path=/", "lb=; Path=/; Max-Age=0"
    answers = (None, node_2, None, None, node_3, None, gone)
    transport, seen = _answers(*answers, None)
    settings = KongSettings(admin_url="http://kong-admin.example:8001", workspace="SRE")
    with build_http_client(settings, transport=transport) as http:
        for _ in range(len(answers) + 1):
            wire.call(http, "GET", "/upstreams")
    sent = [request.headers.get("cookie") for request in seen]
    # each request carries what the answers before it set; Max-Age=0 removes the cookie
    assert sent == [None, None, *["lb=node-2"] * 3, *["lb=node-3"] * 2, None]


def test_answers_without_set_cookie_never_reach_the_cookie_jar(monkeypatch) -> None:
    transport, _ = _answers(None, None, "lb=node-2; Path=/", None)
    with build_http_client(KongSettings(admin_url="http://kong:8001"), transport=transport) as http:
        read = []
        jar = http.cookies.jar
        original = jar.extract_cookies
        monkeypatch.setattr(jar, "extract_cookies", lambda *a: read.append(1) or original(*a))
        for _ in range(4):
            wire.call(http, "GET", "/upstreams")
        assert len(read) == 1 and dict(http.cookies) == {"lb": "node-2"}
