"""The one way to build a ``KongAdmin`` from settings: the app, the CLIs and benches use it.

It lives beside the client (not in ``app.py``) so that a command such as ``kong-canary
preflight`` reaches Kong without importing the Flask wiring, and the wiring can import the
commands' library code without a cycle.
"""

from __future__ import annotations

import time

import httpx

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong.models import Flavour
from sidecar.metrics import KONG_DURATION_SERIES, KONG_REQUEST_SERIES, method_label
from sidecar.settings import Settings


def build_kong(settings: Settings) -> KongAdmin:
    """A client for ``settings.kong``, its calls counted and timed in the process's metrics."""
    if settings.kong.admin_url is None:
        raise ValueError("no Kong admin URL: start the embedded server first (kong-canary serve)")
    http = build_http_client(settings.kong)
    http.event_hooks["request"].append(_kong_request_started)
    http.event_hooks["response"].append(_kong_response_received)
    flavour = Flavour(settings.kong.flavour) if settings.kong.flavour else None
    return KongAdmin(http, flavour=flavour, read_retries=settings.kong.read_retries)


def _kong_request_started(req: httpx.Request) -> None:
    req.extensions["kong_canary_started"] = time.perf_counter()


def _kong_response_received(resp: httpx.Response) -> None:
    started = resp.request.extensions.get("kong_canary_started")
    method = method_label(resp.request.method)
    if started is not None:
        KONG_DURATION_SERIES(method).observe(time.perf_counter() - started)
    KONG_REQUEST_SERIES(method, f"{resp.status_code // 100}xx").inc()
