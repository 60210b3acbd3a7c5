"""The Flask application factory: wiring only.

``create_app(settings, kong)`` is what gunicorn runs (``sidecar.app:create_app()``)
and what tests call with their own settings and Kong client. Nothing is configured
at import time; one Kong client is built per process, here (with ``sidecar.kong.build``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, g

from sidecar.api import cohorts, guard, kong_log
from sidecar.api.context import this_request
from sidecar.api.errors import register_error_handlers
from sidecar.api.routes import flask_app, register_blueprints
from sidecar.api.status import install as install_status
from sidecar.cohorts import CohortRefresher, CohortService
from sidecar.core.lease import LeasePolicy
from sidecar.kayenta.preflight_kong import CoverageWarnings
from sidecar.kong.build import build_kong
from sidecar.kong.client import KongAdmin
from sidecar.leases import LeaseSweeper
from sidecar.metrics import HTTP_DURATION_SERIES, HTTP_REQUEST_SERIES, method_label
from sidecar.propagation import Propagation
from sidecar.ramps import RampService
from sidecar.served import ServedCheck
from sidecar.settings import Settings, load_settings
from sidecar.traffic import TrafficService
from sidecar.upstream_locks import KongLocks

log = logging.getLogger("kong_canary")


@dataclass
class Runtime:
    """What the views need, attached as ``app.extensions["kong_canary"]``."""

    settings: Settings
    kong: KongAdmin
    service: TrafficService
    ramps: RampService
    sweeper: LeaseSweeper | None = None
    cohort_refresher: CohortRefresher | None = None

    def close(self) -> None:
        """Stop the sweeper and I/O threads, close Kong connections; for a worker's exit
        and for tests that build many apps in one process."""
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.cohort_refresher is not None:
            self.cohort_refresher.stop()
        self.service.close()
        if isinstance(self.service.propagation, Propagation):
            self.service.propagation.close()
        self.kong.close()


def close_app(app: Flask) -> None:
    guardian = app.extensions.get(guard.EXTENSION)
    if guardian is not None:  # its timer looks at the canary and may roll back: stop it first
        guardian.stop()
    runtime: Runtime = app.extensions["kong_canary"]
    runtime.close()


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
    app = flask_app()
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes  # 413 beyond (api/errors.py)
    service = TrafficService(
        kong,
        max_shifted_percent=settings.max_shifted_percent,
        lease_policy=LeasePolicy(settings.lease_default, settings.lease_max),
        wall_clock=clock,
        # real time, not ``clock``: the wait sleeps, and tests' wall clocks stand still
        propagation=Propagation(kong, settings.kong, nodes=settings.propagation_nodes),
        kong_locks=KongLocks(kong, ttl=settings.lock_ttl, wait=settings.lock_wait),
    )
    # Kong's Prometheus plugin recording what the Kayenta configs query (cached per process).
    service.describe_warnings.append(CoverageWarnings(kong, clock=clock))
    runtime = Runtime(
        settings=settings,
        kong=kong,
        service=service,
        ramps=RampService(
            service,
            secret=settings.ramp_key(),
            clock=clock,
            served=ServedCheck(service, clock),
        ),
    )
    if sweep_leases:
        runtime.sweeper = LeaseSweeper(service, settings.lease_check_interval, clock).start()
    install_cohorts(app, runtime, clock)
    app.extensions["kong_canary"] = runtime
    guard.install_disarm(app)  # every end of a canary disarms its guard in Kong
    register_error_handlers(app)
    register_blueprints(app)  # every route, each with its OpenAPI operation
    kong_log.install_window(app)  # http-log for the canary window, when configured
    install_status(app)  # the board behind GET /v1/status
    _instrument(app)
    return app


def install_cohorts(app: Flask, runtime: Runtime, clock: Callable[[], float]) -> None:
    """Cohorts follow every split change: the preparer switches the post-functions off the
    canary before it loses its weight (and removes them before a rollback or promote), the
    observer keeps the shadow upstreams in step (and removes them after)."""
    service = CohortService(runtime.service, clock=clock)
    runtime.service.preparers.append(service.prepare)
    runtime.service.observers.append(service.observe)
    app.extensions[cohorts.EXTENSION] = service
    interval = runtime.settings.cohort_refresh_seconds
    if interval > 0 and runtime.sweeper is not None:  # tests without a sweeper drive it
        runtime.cohort_refresher = CohortRefresher(service, interval).start()


def _instrument(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):  # type: ignore[no-untyped-def]
        request = this_request()
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = method_label(request.method)  # a client may send any token as a method
        HTTP_REQUEST_SERIES(method, endpoint, str(response.status_code)).inc()
        started = g.get("started")
        if started is not None:
            HTTP_DURATION_SERIES(method, endpoint).observe(time.perf_counter() - started)
        return response
