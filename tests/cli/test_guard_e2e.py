"""The guard with real processes: ``kong-canary serve`` (gunicorn, two workers sharing the
guard through Kong) on the embedded Kong, the http-log batches Kong 2.8.5 and 3.9.3 really
posted replayed to ``/v1/kong-log`` (each on a new connection, so the workers share them),
a regression injected mid-ramp, and the alert received by a local HTTP server."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_serve import TOKEN, free_port, process, sidecar_env, wait_until
from tests.unit import test_guard_shell

pytestmark = pytest.mark.slow
alert_inbox = test_guard_shell.inbox  # the fixture: a local Slack-compatible alert endpoint
FIXTURES = Path(__file__).parent.parent / "fixtures" / "kong"
CANARY_PORT = 9113  # the recordings' layout: stable 9111, baseline 9112, canary 9113


def recorded_entries(version: str) -> list[dict[str, Any]]:
    batches = json.loads((FIXTURES / f"kong-{version}-http-log-batches.json").read_text())
    return [e for b in batches["first_batches"] for e in b["body"]]


def batch(entries: list[dict[str, Any]], *, broken: bool) -> list[dict[str, Any]]:
    """The recorded entries; the canary's given the stable entries' answers when healthy (the
    recording's canary was slow on purpose), 503 when broken."""
    stable = [e for e in entries if e["tries"][-1]["port"] == 9111]
    out = copy.deepcopy(entries)
    for index, entry in enumerate(out):
        if entry["tries"][-1]["port"] == CANARY_PORT:
            model = stable[index % len(stable)]
            entry["latencies"] = copy.deepcopy(model["latencies"])
            entry["response"]["status"] = 503 if broken else model["response"]["status"]
    return out


@pytest.mark.parametrize("version", ["2.8.5", "3.9.3"])
def test_a_regression_mid_ramp_is_rolled_back_and_alerted(version: str, alert_inbox) -> None:  # type: ignore[no-untyped-def]
    alert_url, handler = alert_inbox
    received = handler.received
    entries = recorded_entries(version)
    port = free_port()
    with process(["serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"], sidecar_env()):
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
            # a new connection per request: gunicorn hands each to either worker
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        wait_until(lambda: client.get("/readyz").status_code == 200, 30, "readiness")
        targets = {"canary": ["127.0.0.1:9113"], "baseline": ["127.0.0.1:9112"]}
        ramp = client.post(
            "/v1/upstreams/orders/ramps",
            json={
                "split": {"stable": 90, "baseline": 5, "canary": 5},
                "duration": 600,
                "steps": 10,
                "targets": targets,
                "guard": {"min_requests": 5, "window_seconds": 0.1, "alert_url": alert_url},
            },
        )
        assert ramp.status_code == 202, ramp.text
        status_url = ramp.json()["statusUrl"]

        def post(body: list[dict[str, Any]]) -> None:
            response = client.post("/v1/kong-log", json=body)
            assert response.status_code == 200, response.text

        for _ in range(10):  # healthy for a second
            post(batch(entries, broken=False))
            time.sleep(0.1)
        views = [client.get("/v1/upstreams/orders/guard").json() for _ in range(20)]
        assert all(v["armed"] and v["status"] != "tripped" for v in views), views
        assert any(v["variants"]["canary"]["requests"] > 0 for v in views)

        def tripped() -> bool:
            post(batch(entries, broken=True))
            time.sleep(0.1)
            return client.get("/v1/upstreams/orders/guard").json()["status"] == "tripped"

        wait_until(tripped, 30, "the guard to trip")
        split = client.get("/v1/upstreams/orders/split").json()
        assert split["split"] == {"stable": 100, "baseline": 0, "canary": 0}
        time.sleep(2.5)  # past the workers' cached read of Kong's guard (2 s)
        workers: set[str] = set()

        def both_workers_answered() -> bool:
            view = client.get("/v1/upstreams/orders/guard").json()
            assert view["status"] == "tripped" and view["metric"] == "5xx", view
            assert view["rolled_back"] and view["trip"]["metric"] == "5xx", view
            workers.add(view["replica"])
            ramp_status = client.get(status_url).json()  # on either worker
            assert ramp_status["status"] == "FAILED", ramp_status
            assert "guard tripped on 5xx" in ramp_status["message"]
            # the run of windows that carried the evidence: under load a window may still
            # hold a healthy batch beside the first broken one, so the share is not always 100 %
            ratio = re.search(
                r"5xx ratio canary (\d+\.\d+)% \((\d+)/\d+\) vs baseline\+stable 0\.00% ",
                ramp_status["message"],
            )
            assert ratio and float(ratio[1]) >= 50 and int(ratio[2]) > 0, ramp_status["message"]
            return len(workers) >= 2

        wait_until(both_workers_answered, 20, "both workers to answer")
        wait_until(lambda: received, 15, "the alert")
        time.sleep(0.5)  # a second alert would have arrived by now
        assert len(received) == 1 and "5xx" in received[0]["text"], received
        client.close()
