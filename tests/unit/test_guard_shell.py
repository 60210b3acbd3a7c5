"""The guard's shell (sidecar.guard): tallies in, one look per window, rollback/audit/metric/
alert on a trip. Clock injected; the alert goes to a real local HTTP server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY

from sidecar.core.guard_config import GuardConfig
from sidecar.gateway.entries import Series, Tally
from sidecar.gateway.metrics import BOUNDS
from sidecar.guard import AlertSender, Guardian


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(upstream: str, per_variant: dict[str, tuple[int, int]]) -> Tally:
    """A tally as the ingest makes it: (requests, 5xx) per variant, all in the 20 ms bucket."""
    out = Tally()
    for variant, (requests, errors) in per_variant.items():
        series = Series.empty(len(BOUNDS))
        series.codes = {"2xx": requests - errors, "5xx": errors} if errors else {"2xx": requests}
        series.request[BOUNDS.index(20.0)] = requests
        out.series[(upstream, variant)] = series
    return out


def trips(upstream: str, metric: str) -> float:
    value = REGISTRY.get_sample_value(
        "kong_canary_guard_trips_total", {"upstream": upstream, "metric": metric}
    )
    return value or 0.0


class Rollbacks:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failures = failures

    def __call__(self, upstream: str, reason: str) -> None:
        self.calls.append((upstream, reason))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Kong unreachable")


def run_windows(guardian: Guardian, clock: Clock, upstream: str, canary_errors: int, n: int):  # type: ignore[no-untyped-def]
    tripped = []
    for _ in range(n):
        clock.now += 1.0
        tally = batch(
            upstream, {"stable": (190, 1), "baseline": (5, 0), "canary": (5, canary_errors)}
        )
        tripped += guardian.record(tally)
    return tripped


def test_a_broken_canary_is_rolled_back_once_with_audit_and_metric(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, rollback = Clock(), Rollbacks()
    guardian = Guardian(clock=clock, rollback=rollback, bounds=BOUNDS, replica="pod-a")
    guardian.arm("shop", GuardConfig(min_requests=20))
    assert run_windows(guardian, clock, "shop", 0, 30) == []
    before = trips("shop", "5xx")
    with caplog.at_level(logging.INFO, logger="kong_canary.audit"):
        tripped = run_windows(guardian, clock, "shop", 3, 20)
    assert tripped == ["shop"]
    assert len(rollback.calls) == 1 and "5xx" in rollback.calls[0][1]
    assert trips("shop", "5xx") == before + 1
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kong_canary.audit"]
    assert [(e["event"], e["replica"], e["metric"]) for e in lines] == [
        ("guard_trip", "pod-a", "5xx")
    ]
    view = guardian.view("shop")
    assert view is not None and view["status"] == "tripped" and view["rolled_back"]


def test_batches_within_one_window_make_one_look() -> None:
    clock, rollback = Clock(), Rollbacks()
    guardian = Guardian(clock=clock, rollback=rollback, bounds=BOUNDS, replica="r")
    guardian.arm("shop", GuardConfig(window_seconds=5.0))
    clock.now += 1.0
    for _ in range(4):
        guardian.record(batch("shop", {"stable": (50, 0), "canary": (2, 0)}))
    assert guardian.view("shop")["variants"]["canary"]["requests"] == 0  # type: ignore[index]
    clock.now += 5.0
    guardian.record(batch("other", {"canary": (2, 0)}))  # unarmed upstream: ignored
    assert guardian.view("shop")["variants"]["canary"]["requests"] == 8  # type: ignore[index]
    assert guardian.view("other") is None


def test_a_failed_rollback_is_retried_at_the_next_look() -> None:
    clock, rollback = Clock(), Rollbacks(failures=1)
    guardian = Guardian(clock=clock, rollback=rollback, bounds=BOUNDS, replica="r")
    guardian.arm("shop", GuardConfig(min_requests=10))
    run_windows(guardian, clock, "shop", 5, 10)
    assert len(rollback.calls) == 2  # failed once, then done, then never again
    run_windows(guardian, clock, "shop", 5, 3)
    assert len(rollback.calls) == 2


class _Inbox(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def inbox() -> Iterator[tuple[str, type[_Inbox]]]:
    handler = type("Inbox", (_Inbox,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_alert_reaches_the_guards_slack_compatible_url(inbox) -> None:  # type: ignore[no-untyped-def]
    url, handler = inbox
    threads: list[threading.Thread] = []

    class Recording(AlertSender):
        def send(self, document):  # type: ignore[no-untyped-def]
            threads.append(super().send(document))
            return threads[-1]

    clock, rollback = Clock(), Rollbacks()
    guardian = Guardian(
        clock=clock, rollback=rollback, bounds=BOUNDS, replica="r", alert_sender=Recording
    )
    guardian.arm("shop", GuardConfig(min_requests=10, alert_url=url))
    guardian.arm("quiet", GuardConfig(min_requests=10))  # no alert_url: no alert
    run_windows(guardian, clock, "shop", 5, 10)
    run_windows(guardian, clock, "quiet", 5, 10)
    for thread in threads:
        thread.join(10)
    assert len(handler.received) == 1
    assert "shop" in handler.received[0]["text"] and handler.received[0]["metric"] == "5xx"
    view = guardian.view("shop")
    assert view is not None and view["config"]["alert_url"].endswith("/…")
    assert "/hook" not in view["config"]["alert_url"]


def test_alert_retries_are_bounded(inbox) -> None:  # type: ignore[no-untyped-def]
    url, handler = inbox
    handler.status = 500
    pauses: list[float] = []
    alert = AlertSender(url, attempts=3, backoff=0.5, sleep=pauses.append)
    alert.send({"text": "x"}).join(10)
    assert len(handler.received) == 3 and pauses == [0.5, 1.0]


def test_the_timer_judges_a_canary_that_gets_no_batches() -> None:
    clock, rollback = Clock(), Rollbacks()
    guardian = Guardian(clock=clock, rollback=rollback, bounds=BOUNDS, replica="r")
    guardian.arm("shop", GuardConfig(no_traffic_seconds=5, trip_on_no_traffic=True))
    clock.now += 10.0  # no batch at all since arming
    guardian.start(interval=0.01)
    try:
        for _ in range(500):  # up to 5 s on a loaded machine; usually the first tick
            if rollback.calls:
                break
            threading.Event().wait(0.01)
    finally:
        guardian.stop()
    assert [u for u, _ in rollback.calls] == ["shop"] and "traffic" in rollback.calls[0][1]


def test_a_look_during_a_slow_rollback_does_not_roll_back_twice() -> None:
    """The timer's look can come while the ingest's trip is still writing to Kong."""
    clock = Clock()
    calls: list[str] = []

    def slow_rollback(upstream: str, reason: str) -> None:
        calls.append(upstream)
        clock.now += 1.0  # the next window ends while this rollback runs
        guardian.evaluate()

    guardian = Guardian(clock=clock, rollback=slow_rollback, bounds=BOUNDS, replica="r")
    guardian.arm("shop", GuardConfig(min_requests=10))
    run_windows(guardian, clock, "shop", 5, 10)
    assert calls == ["shop"]
