"""The one builder of every ``httpx.Client`` the sidecar and its commands open to another service
(Kong's Admin API and its nodes, Kayenta, Prometheus).

Each gets the same things, so none is forgotten on one of them: all four timeout phases explicit,
TLS built from a CA bundle / client certificate / explicit opt-out, a bounded pool, connection
retries only, our User-Agent, and no redirects followed (a redirect from an API we are configured
to call is a misconfiguration to see, not to follow).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from sidecar import __version__

# httpx's HTTPTransport(retries=n) retries only httpx.ConnectError/ConnectTimeout, i.e. requests
# that never reached the server, so it is safe for writes too (httpx docs/advanced/transports.md).
CONNECT_RETRIES = 2
USER_AGENT = f"kong-canary/{__version__}"


class OutboundSettings(Protocol):
    """What the builder reads; ``KongSettings`` and ``Outbound`` both have it."""

    @property
    def connect_timeout(self) -> float: ...
    @property
    def read_timeout(self) -> float: ...
    @property
    def write_timeout(self) -> float: ...
    @property
    def pool_timeout(self) -> float: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def ca_bundle(self) -> str | None: ...
    @property
    def client_cert(self) -> str | None: ...
    @property
    def client_key(self) -> str | None: ...
    @property
    def tls_verify(self) -> bool: ...


@dataclass(frozen=True)
class Outbound:
    """Timeouts, pool and TLS for a service that is not Kong (Kong's are in ``KongSettings``)."""

    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    write_timeout: float = 5.0
    pool_timeout: float = 2.0
    max_connections: int = 10
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_verify: bool = True

    @classmethod
    def every_phase(cls, seconds: float, **tls: Any) -> Outbound:
        """One limit for connect, read, write and pool alike (a command's ``--timeout``)."""
        return cls(seconds, seconds, seconds, seconds, **tls)


def ssl_context(settings: OutboundSettings) -> ssl.SSLContext | bool:
    """Build the TLS context ourselves: httpx 0.28 deprecates ``verify=<path>`` and ``cert=``,
    and warnings are errors here.

    ``tls_verify=False`` is the only way to switch verification off; a ``ca_bundle`` replaces
    the default (certifi) trust store; ``client_cert``/``client_key`` add mTLS.
    """
    if settings.client_key and not settings.client_cert:
        raise ValueError("client_key given without client_cert")
    if not settings.tls_verify:
        ctx = httpx.create_ssl_context(verify=False)
    elif settings.ca_bundle:
        ctx = ssl.create_default_context(cafile=settings.ca_bundle)
    elif settings.client_cert:
        ctx = httpx.create_ssl_context(verify=True)
    else:
        return True
    if settings.client_cert:
        ctx.load_cert_chain(settings.client_cert, settings.client_key)
    return ctx


def timeouts(settings: OutboundSettings) -> httpx.Timeout:
    """All four phases explicit: a missing one would silently mean 'wait forever'."""
    return httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.write_timeout,
        pool=settings.pool_timeout,
    )


def limits(settings: OutboundSettings) -> httpx.Limits:
    # keep-alive as large as the pool: threads sharing the client should reuse connections,
    # not churn through new TCP (and TLS) handshakes once more than 20 are busy.
    return httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )


def default_transport(settings: OutboundSettings) -> httpx.HTTPTransport:
    """TLS and pool from the settings; retries only of connections never established."""
    return httpx.HTTPTransport(
        verify=ssl_context(settings), limits=limits(settings), retries=CONNECT_RETRIES
    )


def build_client(
    settings: OutboundSettings,
    *,
    base_url: str,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    client_class: type[httpx.Client] = httpx.Client,
    **client_kwargs: Any,
) -> httpx.Client:
    """A client for one service. ``transport`` is for tests (``MockTransport``) and for a
    caller that wraps its own; ``client_class``/``client_kwargs`` add what only its service
    needs."""
    transport = transport or default_transport(settings)
    return client_class(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        timeout=timeouts(settings),
        transport=transport,
        follow_redirects=False,
        **client_kwargs,
    )
