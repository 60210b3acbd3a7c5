"""The Flask application factory: wiring only.

``create_app(settings, kong)`` is what gunicorn runs (``sidecar.app:create_app()``)
and what tests call with their own settings and Kong client. Nothing is configured
at import time; one httpx client is built per process, here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, g, request

from sidecar.api import admin, guard, hashing, health, kong_log, openapi, ramps, split
from sidecar.api.errors import register_error_handlers
from sidecar.core.lease import LeasePolicy
from sidecar.kayenta.preflight_kong import CoverageWarnings
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong.models import Flavour
from sidecar.leases import LeaseSweeper
from sidecar.metrics import HTTP_DURATION, HTTP_REQUESTS, KONG_DURATION, KONG_REQUESTS
from sidecar.propagation import Propagation
from sidecar.ramps import RampService
from sidecar.settings import Settings, load_settings
from sidecar.traffic import TrafficService

log = logging.getLogger("kong_canary")


@dataclass
class Runtime:
    """What the views need, attached as ``app.extensions["kong_canary"]``."""

    settings: Settings
    kong: KongAdmin
    service: TrafficService
    ramps: RampService
    sweeper: LeaseSweeper | None = None

    def close(self) -> None:
        """Stop the sweeper and I/O threads, close Kong connections; for a worker's exit
        and for tests that build many apps in one process."""
        if self.sweeper is not None:
            self.sweeper.stop()
        self.service.close()
        if isinstance(self.service.propagation, Propagation):
            self.service.propagation.close()
        self.kong.close()


def close_app(app: Flask) -> None:
    runtime: Runtime = app.extensions["kong_canary"]
    runtime.close()


def build_kong(settings: Settings) -> KongAdmin:
    if settings.kong.admin_url is None:
        raise ValueError("no Kong admin URL: start the embedded server first (kong-canary serve)")
    http = build_http_client(settings.kong)
    http.event_hooks["request"].append(_kong_request_started)
    http.event_hooks["response"].append(_kong_response_received)
    flavour = Flavour(settings.kong.flavour) if settings.kong.flavour else None
    return KongAdmin(http, flavour=flavour, read_retries=settings.kong.read_retries)


def _kong_request_started(req) -> None:  # type: ignore[no-untyped-def]
    req.extensions["kong_canary_started"] = time.perf_counter()


def _kong_response_received(resp) -> None:  # type: ignore[no-untyped-def]
    started = resp.request.extensions.get("kong_canary_started")
    method = resp.request.method
    if started is not None:
        KONG_DURATION.labels(method).observe(time.perf_counter() - started)
    KONG_REQUESTS.labels(method, f"{resp.status_code // 100}xx").inc()


def create_app(
    settings: Settings | None = None,
    kong: KongAdmin | None = None,
    *,
    sweep_leases: bool = True,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """``sweep_leases`` starts this process's lease sweeper (tests drive sweeps directly);
    ``clock`` is the wall clock leases and ramps are judged by."""
    settings = settings or load_settings()
    kong = kong or build_kong(settings)
    app = Flask("sidecar")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    service = TrafficService(
        kong,
        max_shifted_percent=settings.max_shifted_percent,
        lease_policy=LeasePolicy(settings.lease_default, settings.lease_max),
        wall_clock=clock,
        # real time, not ``clock``: the wait sleeps, and tests' wall clocks stand still
        propagation=Propagation(kong, settings.kong, nodes=settings.propagation_nodes),
    )
    # Kong's Prometheus plugin recording what the Kayenta configs query (cached per process).
    service.describe_warnings.append(CoverageWarnings(kong, clock=clock))
    runtime = Runtime(
        settings=settings,
        kong=kong,
        service=service,
        ramps=RampService(service, secret=settings.ramp_key(), clock=clock),
    )
    if sweep_leases:
        runtime.sweeper = LeaseSweeper(service, settings.lease_check_interval, clock).start()
    app.extensions["kong_canary"] = runtime
    register_error_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(split.bp)
    app.register_blueprint(ramps.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(hashing.bp)
    app.register_blueprint(kong_log.bp)
    app.register_blueprint(guard.bp)
    kong_log.install_window(app)  # http-log for the canary window, when configured
    _instrument(app)
    return app


def _instrument(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):  # type: ignore[no-untyped-def]
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("started")
        if started is not None:
            HTTP_DURATION.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response
