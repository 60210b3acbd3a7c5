"""The CLI against the real sidecar app over HTTP on loopback, in front of the local Kong
(profile 3.9), on the real clock: ramps move while the commands follow them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from click.testing import CliRunner, Result

from sidecar.app import close_app, create_app
from sidecar.cli import main
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import KongSettings, Settings
from tests.api.conftest import TOKENS, _serve

WRITE_TOKEN, READ_TOKEN, ORDERS_ONLY_TOKEN, ADMIN_TOKEN = (t.token for t in TOKENS)


@dataclass
class LiveSidecar:
    url: str
    kong_url: str
    app: object

    def run(self, *args: str, token: str | None = WRITE_TOKEN, env=None) -> Result:
        """``kong-canary ARGS`` in-process, as a person would type it."""
        environment = {"KONG_CANARY_URL": self.url, "KONG_CANARY_TOKEN": token, "COLUMNS": "100"}
        environment.update(env or {})
        return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)

    def kong(self) -> httpx.Client:
        return httpx.Client(base_url=self.kong_url, timeout=10)

    def weights(self, upstream: str) -> dict[str, int]:
        with self.kong() as kong:
            data = kong.get(f"/upstreams/{upstream}/targets").json()["data"]
        return {t["target"]: t["weight"] for t in data}


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveSidecar]:
    # The sidecar runs in this process, so the JSON log handler each CLI invocation installs
    # (on the captured stderr) would print the sidecar's audit lines into the command's
    # output; a user's CLI and sidecar are separate processes.
    monkeypatch.setattr("sidecar.cli.configure_logging", lambda *args, **kwargs: None)
    kong = serve_in_thread("3.9")
    settings = Settings(tokens=TOKENS, kong=KongSettings(admin_url=kong.url, read_timeout=2.0))
    app = create_app(settings, sweep_leases=False)
    url, stop = _serve(app)
    try:
        yield LiveSidecar(url, kong.url, app)
    finally:
        stop()
        close_app(app)
        kong.stop()


@pytest.fixture
def upstream(live) -> str:
    """A fresh upstream with one stable target, made through Kong's own API."""
    name = f"orders-{uuid.uuid4().hex[:8]}"
    with live.kong() as kong:
        kong.post("/upstreams", json={"name": name}).raise_for_status()
        kong.post(
            f"/upstreams/{name}/targets",
            json={"target": "10.0.0.1:80", "weight": 100, "tags": ["variant=stable"]},
        ).raise_for_status()
    return name
