"""KayentaClient.connect builds its client like every outbound one: TLS options, User-Agent,
timeouts (``sidecar.outbound``). Real TLS handshakes on loopback, with tests/kong/certs."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from sidecar import __version__
from sidecar.kayenta.cli import kayenta_commands
from sidecar.kayenta.rest import KayentaClient, KayentaError
from sidecar.outbound import Outbound
from tests.kayenta.kayenta_server import serve_kayenta

CERTS = Path(__file__).parents[1] / "kong" / "certs"


def _server_tls(*, require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERTS / "server.pem", CERTS / "server.key")
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(CERTS / "ca.pem")
    return ctx


def test_connect_should_send_our_user_agent_and_set_every_timeout_phase() -> None:
    with serve_kayenta() as (url, server):
        client = KayentaClient.connect(url, Outbound.every_phase(3.0))
        try:
            assert client.list_configs() == []
            assert client._http.timeout == httpx.Timeout(3.0)
            assert client._http.follow_redirects is False
        finally:
            client.close()
    assert server.user_agents == [f"kong-canary/{__version__}"]


def test_connect_should_trust_a_private_ca_only_when_given_its_bundle() -> None:
    with serve_kayenta(tls=_server_tls()) as (url, _):
        trusting = KayentaClient.connect(url, Outbound(ca_bundle=str(CERTS / "ca.pem")))
        default = KayentaClient.connect(url)
        try:
            assert trusting.list_configs() == []
            with pytest.raises(KayentaError, match="cannot reach Kayenta"):
                default.list_configs()
        finally:
            trusting.close()
            default.close()


def test_sync_should_present_a_client_certificate_when_kayenta_requires_one() -> None:
    tls = ["--ca-bundle", str(CERTS / "ca.pem")]
    cert = ["--client-cert", str(CERTS / "client.pem"), "--client-key", str(CERTS / "client.key")]
    mtls = [*tls, *cert]
    with serve_kayenta(tls=_server_tls(require_client_cert=True)) as (url, server):
        refused = CliRunner().invoke(kayenta_commands, ["sync", "--url", url, "--dry-run", *tls])
        synced = CliRunner().invoke(kayenta_commands, ["sync", "--url", url, "--dry-run", *mtls])
    assert refused.exit_code == 1 and "cannot reach Kayenta" in refused.output
    assert synced.exit_code == 0, synced.output
    assert server.calls and all(method == "GET" for method, _ in server.calls)


def test_sync_should_refuse_a_client_key_without_its_certificate() -> None:
    key = str(CERTS / "client.key")
    result = CliRunner().invoke(
        kayenta_commands, ["sync", "--url", "https://k", "--client-key", key]
    )
    assert result.exit_code == 2 and "--client-cert and --client-key" in result.output
