"""``kong-canary serve``: the app under gunicorn, with the embedded Kong when none is given.

Order matters here. ``PROMETHEUS_MULTIPROC_DIR`` must be in the environment before
prometheus_client is first imported (it picks its value class at import), so this
module imports the app lazily, inside the workers.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from sidecar.logs import GunicornJsonLogger, configure_logging, secrets_of
from sidecar.settings import ApiToken, Settings, replace_kong


def _wipe_metrics_dir(server: Any) -> None:
    """gunicorn ``on_starting``: the directory may be an emptyDir that survived a
    container restart; stale files from dead pids would be merged into every scrape."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for entry in path.iterdir():
            if entry.is_file():
                entry.unlink()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _worker_exit(server: Any, worker: Any) -> None:
    """Stop the worker's lease sweeper and close its kept-alive Kong connections."""
    from sidecar.app import close_app

    app = getattr(worker, "wsgi", None)
    if "kong_canary" in getattr(app, "extensions", {}):
        close_app(app)


def try_line(address: tuple[Any, ...]) -> str:
    """The banner's example call, on the address gunicorn really listens on."""
    host, port = address[0], address[1]
    host = f"[{host}]" if ":" in host else host
    return (
        f"  Try: curl -H 'Authorization: Bearer <token>' http://{host}:{port}"
        "/v1/upstreams/orders/split"
    )


def _announce_listeners(server: Any) -> None:
    """gunicorn ``when_ready``: the banner's curl line, once the sockets are bound. Taken
    from the ``bind`` setting it would say ``:0`` for ``--bind 127.0.0.1:0``: that port
    only exists once gunicorn has bound it."""
    for listener in server.LISTENERS:
        address = listener.sock.getsockname()
        if isinstance(address, tuple):  # not a unix socket
            print(try_line(address), file=sys.stderr, flush=True)


class SidecarApplication(BaseApplication):
    def __init__(self, settings: Settings, *, announce: bool = False) -> None:
        """``announce``: print the banner's curl line when the sockets are bound."""
        self.settings = settings
        self.announce = announce
        super().__init__()

    def load_config(self) -> None:
        assert self.cfg is not None
        config = {
            "bind": [self.settings.bind],
            "workers": self.settings.workers,
            # gthread's loop and threads, but threads only see complete requests, and
            # /healthz has threads of its own (sidecar/worker.py says why not gevent).
            "worker_class": "sidecar.worker.StagingWorker",
            "threads": self.settings.threads,
            "worker_connections": self.settings.connections,
            "http_protocols": "h1",  # the worker frames HTTP/1.x only
            "timeout": 60,
            "graceful_timeout": 20,
            "keepalive": 5,
            "loglevel": self.settings.log_level,
            # JSON lines on stdout through the handler ``run`` installed (sidecar.logs).
            "logger_class": GunicornJsonLogger,
            "accesslog": "-",
            "errorlog": "-",
            "worker_tmp_dir": self.settings.worker_tmp_dir,
            "on_starting": _wipe_metrics_dir,
            "child_exit": _child_exit,
            "worker_exit": _worker_exit,
            "when_ready": _announce_listeners if self.announce else None,
            # No max_requests: recycled workers leave dead-pid metric files behind.
        }
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens a management socket under $HOME by default: not wanted
            # in front of Spinnaker, and not writable on a read-only root filesystem.
            config["control_socket_disable"] = True
        for key, value in config.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        from sidecar.app import create_app

        return create_app(self.settings)


def run(settings: Settings) -> None:
    """Start the embedded Kong if needed, then gunicorn (blocks until stopped)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        if "prometheus_client" in sys.modules:
            # Too late: its value class is already the single-process one, so workers
            # would count in memory and /metrics would merge nothing.
            raise RuntimeError(
                "prometheus_client was imported before serve set PROMETHEUS_MULTIPROC_DIR; "
                "set PROMETHEUS_MULTIPROC_DIR in the environment"
            )
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kong-canary-metrics-")
    local = None
    if settings.embedded_kong:
        from sidecar.kong_local.server import DEFAULT_SEED, serve_in_thread

        local = serve_in_thread(settings.kong_local_profile, seed=DEFAULT_SEED)
        settings = dataclasses.replace(
            replace_kong(settings, admin_url=local.url), kong_is_embedded=True
        )
        banner = [
            "kong-canary: NO REAL KONG IS ATTACHED.",
            f"  Using the embedded Kong-compatible Admin API server ({local.url}, "
            f"profile {settings.kong_local_profile}), seeded with upstream 'orders'.",
            "  Set KONG_CANARY_KONG_ADMIN_URL (or --kong-admin-url) to drive a real Kong.",
        ]
        if not settings.tokens:
            token = secrets.token_urlsafe(24)
            settings = dataclasses.replace(settings, tokens=(ApiToken("demo", token, "admin"),))
            banner.append(f"  Demo API token (admin): {token}")
        print("\n".join(banner), file=sys.stderr, flush=True)
    configure_logging(settings.log_level, secrets_of(settings))
    master = os.getpid()
    try:
        SidecarApplication(settings, announce=local is not None).run()
    finally:
        # Workers unwind through here too when they exit (they are forks of this frame);
        # only the master owns the embedded server thread and the metrics directory.
        if os.getpid() == master:
            if local is not None:
                local.stop()
            directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
            if directory.startswith(tempfile.gettempdir()) and "kong-canary-metrics-" in directory:
                shutil.rmtree(directory, ignore_errors=True)
