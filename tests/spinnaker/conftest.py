from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from flask import Flask
from werkzeug.serving import make_server

from sidecar.app import close_app, create_app
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings
from sidecar.spinnaker.generate import DEFAULT_DIR, load_source, render_all
from tests.spinnaker.fakehttp import FakeServer

TOKEN = "sim-token-0123456789abcdef"
SEED = {
    "upstreams": [
        {
            "name": "orders",
            "targets": [{"target": "10.0.0.1:80", "weight": 100, "tags": ["variant=stable"]}],
        }
    ]
}


def told_url(app: Flask, port: int) -> str:
    """The URL Orca is told (``localhost``: its URL restrictions allow it), made the app's
    ``public_url``: links never come from the request's Host (issue 13 item 12)."""
    url = f"http://localhost:{port}"
    runtime = app.extensions["kong_canary"]
    runtime.settings = dataclasses.replace(runtime.settings, public_url=url)
    return url


@contextlib.contextmanager
def serve_sidecar(clock: Callable[[], float] = time.time) -> Iterator[tuple[str, Flask]]:
    """The real sidecar app over HTTP on loopback, backed by the local Kong seeded with
    upstream ``orders``; yields its URL (``localhost``, as Orca would be told) and app."""
    kong = serve_in_thread("3.9", seed=SEED)
    settings = Settings(
        tokens=(ApiToken("spinnaker", TOKEN, "write"),), kong=KongSettings(admin_url=kong.url)
    )
    app = create_app(settings, sweep_leases=False, clock=clock)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    url = told_url(app, server.port)
    try:
        yield url, app
    finally:
        server.shutdown()
        thread.join(timeout=5)
        close_app(app)
        kong.stop()


@pytest.fixture(scope="session")
def source() -> dict[str, Any]:
    return load_source(DEFAULT_DIR)


@pytest.fixture(scope="session")
def committed() -> dict[str, Any]:
    """The committed, rendered files, parsed."""
    out: dict[str, Any] = {}
    for path in sorted(DEFAULT_DIR.rglob("*")):
        rel = path.relative_to(DEFAULT_DIR).as_posix()
        if path.suffix == ".json":
            out[rel] = json.loads(path.read_text())
        elif path.name.startswith("orca-local"):
            out[rel] = yaml.safe_load(path.read_text())
    return out


@pytest.fixture(scope="session")
def webhooks(committed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["type"]: i for i in committed["orca-local.yml"]["webhook"]["preconfigured"]}


def rendered_for(source: dict[str, Any], base_url: str) -> dict[str, Any]:
    files = render_all(source, base_url)
    return {
        rel: (json.loads(text) if rel.endswith(".json") else yaml.safe_load(text))
        for rel, text in files.items()
    }


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def template_ids() -> list[str]:
    return sorted(p.stem for p in (DEFAULT_DIR / "templates").glob("*.json"))


def invalid_cases() -> list[Path]:
    return sorted((Path(__file__).parent / "invalid").glob("*.yaml"))
