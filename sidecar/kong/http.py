"""The one ``httpx.Client`` per process that talks to Kong's Admin API.

What is Kong's own about reaching it lives here (base URL, workspace, Konnect, credentials);
timeouts, TLS and pool come from ``sidecar.outbound``, the builder of every outbound client.
``KongAdmin`` only ever uses relative paths.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from sidecar.kong.gate import GatedTransport, process_gate
from sidecar.outbound import CONNECT_RETRIES, USER_AGENT, build_client, limits, ssl_context
from sidecar.settings import KongSettings

KONNECT_DEFAULT_URL = "https://us.api.konghq.com"


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


class ReturnedCookies(httpx.Cookies):
    """httpx's cookie store, which reads an answer only when it sets a cookie.

    Kong's Admin API sets none, but a load balancer in front of it may set a sticky cookie
    that must be sent back, so the client keeps a jar. httpx hands every answer to the jar
    (``Client._send_single_request``), which first wraps request and answer in urllib
    look-alikes (``Cookies._CookieCompatRequest`` copies the URL and every header) only for
    ``CookieJar.make_cookies`` to find no ``Set-Cookie``/``Set-Cookie2`` header and return
    nothing: a seventh of an Admin API call's CPU in the profile. Answers without those
    headers are skipped here; any other answer goes through the jar exactly as before.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class AdminClient(httpx.Client):
    """An ``httpx.Client`` that also knows the Admin API root.

    ``GET /`` is the one route Kong EE does not mount under ``/{workspace}``
    (``prepend_workspace_prefix`` skips ``"/"``), so node info must bypass the workspace part
    of ``base_url``. Its cookies are :class:`ReturnedCookies` (httpx reaches them only
    through the ``cookies`` property, overridden here).
    """

    def __init__(self, *, admin_root: str, **kwargs: Any) -> None:
        cookies = kwargs.pop("cookies", None)
        super().__init__(**kwargs)
        self.cookies = cookies
        self.admin_root = httpx.URL(admin_root.rstrip("/") + "/")

    @property
    def cookies(self) -> httpx.Cookies:
        return self._returned_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._returned_cookies = ReturnedCookies(cookies)


def build_http_client(
    settings: KongSettings, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One per process, shared by all threads. ``transport`` is for tests (``MockTransport``).

    The transport is built here rather than by ``build_client`` so that what only Kong's
    client wraps around it stays beside it; the parts are ``sidecar.outbound``'s."""
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
    return build_client(
        settings,
        base_url=base_url,
        headers=headers,
        transport=transport,
        client_class=AdminClient,
        admin_root=root,
    )
