"""The one ``httpx.Client`` per process that talks to Kong's Admin API.

Everything about *how* we reach Kong lives here (base URL, TLS, credentials,
timeouts, pool size); ``KongAdmin`` only ever uses relative paths.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import httpx

from sidecar import __version__
from sidecar.kong.gate import GatedTransport, process_gate
from sidecar.settings import KongSettings

# httpx's HTTPTransport(retries=n) retries only httpx.ConnectError/ConnectTimeout, i.e. requests
# that never reached Kong, so it is safe for writes too (httpx docs/advanced/transports.md).
CONNECT_RETRIES = 2
KONNECT_DEFAULT_URL = "https://us.api.konghq.com"
USER_AGENT = f"kong-canary/{__version__}"


def is_konnect(settings: KongSettings) -> bool:
    """Konnect is chosen explicitly (flavour) or implied by its credentials/control plane id."""
    return (
        settings.flavour == "konnect"
        or settings.konnect_token is not None
        or settings.konnect_control_plane_id is not None
    )


def admin_base_url(settings: KongSettings) -> str:
    """Kong: ``admin_url[/workspace]``; Konnect: ``…/v2/control-planes/{id}/core-entities``.

    Every Admin API path of ours is relative to this, so workspaces and Konnect need no
    special cases further down.
    """
    if is_konnect(settings):
        if not settings.konnect_control_plane_id:
            raise ValueError("Konnect needs konnect_control_plane_id (the control plane UUID)")
        root = (settings.admin_url or KONNECT_DEFAULT_URL).rstrip("/")
        if not root.endswith("/v2"):
            root += "/v2"
        cp = quote(settings.konnect_control_plane_id, safe="")
        return f"{root}/control-planes/{cp}/core-entities"
    if not settings.admin_url:
        raise ValueError(
            "admin_url is required: start the embedded Kong-compatible server and pass its URL"
        )
    base = settings.admin_url.rstrip("/")
    if settings.workspace:
        base += "/" + quote(settings.workspace, safe="")
    return base


def auth_headers(settings: KongSettings) -> dict[str, str]:
    """Konnect wants a bearer token; Enterprise RBAC wants ``Kong-Admin-Token``. Never both."""
    if is_konnect(settings):
        return (
            {"Authorization": f"Bearer {settings.konnect_token}"} if settings.konnect_token else {}
        )
    return {"Kong-Admin-Token": settings.admin_token} if settings.admin_token else {}


def ssl_context(settings: KongSettings) -> ssl.SSLContext | bool:
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


def timeouts(settings: KongSettings) -> httpx.Timeout:
    """All four phases explicit: a missing one would silently mean 'wait forever'."""
    return httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.write_timeout,
        pool=settings.pool_timeout,
    )


def limits(settings: KongSettings) -> httpx.Limits:
    # keep-alive as large as the pool: threads sharing the client should reuse connections,
    # not churn through new TCP (and TLS) handshakes once more than 20 are busy.
    return httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )


class AdminClient(httpx.Client):
    """An ``httpx.Client`` that also knows the Admin API root.

    ``GET /`` is the one route Kong EE does not mount under ``/{workspace}``
    (``prepend_workspace_prefix`` skips ``"/"``), so node info must bypass the workspace part
    of ``base_url``.
    """

    def __init__(self, *, admin_root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.admin_root = httpx.URL(admin_root.rstrip("/") + "/")


def build_http_client(
    settings: KongSettings, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One per process, shared by all threads. ``transport`` is for tests (``MockTransport``)."""
    if transport is None:
        transport = httpx.HTTPTransport(
            verify=ssl_context(settings),
            limits=limits(settings),
            retries=CONNECT_RETRIES,
        )
    # Every client of the process shares one bound on requests in flight (sidecar.kong.gate).
    gate = process_gate(settings.max_concurrency, settings.pool_timeout)
    transport = GatedTransport(transport, gate)
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **auth_headers(settings)}
    base_url = admin_base_url(settings)
    root = (
        settings.admin_url.rstrip("/")
        if settings.admin_url and not is_konnect(settings)
        else base_url
    )
    return AdminClient(
        admin_root=root,
        base_url=base_url,
        headers=headers,
        timeout=timeouts(settings),
        transport=transport,
        follow_redirects=False,  # a redirect from an Admin API is a misconfiguration
    )
