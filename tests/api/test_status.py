"""``GET /v1/status`` (what the status page and ``kong-canary watch`` poll) and ``GET /``,
over real HTTP in front of the local Kong (every profile) or a real one. Every answer is
checked against the OpenAPI document by the client's hook."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser

from prometheus_client import REGISTRY

from sidecar.api.status import EXTENSION
from sidecar.core.variant_stats import GatewayReading, VariantCounters
from sidecar.gateway.metrics import BOUNDS, REQUEST_LATENCY, REQUESTS
from sidecar.status_board import HISTORY_POINTS, HISTORY_SECONDS, read_gateway_counters
from tests.api.conftest import TOKENS

SPLIT = {"stable": 90, "baseline": 5, "canary": 5}
TARGETS = {"canary": ["10.0.0.3:80"], "baseline": ["10.0.0.2:80"]}


def _set(sidecar, upstream, split=SPLIT):
    r = sidecar.client().put(
        f"/v1/upstreams/{upstream}/split", json={"split": split, "targets": TARGETS}
    )
    assert r.status_code == 200, r.text


def _start_ramp(client, upstream) -> str:
    """80/10/10 over 60 s in 3 steps; the ramp's id."""
    r = client.post(
        f"/v1/upstreams/{upstream}/ramps",
        json={"split": {"stable": 80, "baseline": 10, "canary": 10}, "duration": 60, "steps": 3,
              "targets": TARGETS},
    )  # fmt: skip
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _entry(body, upstream):
    return next(u for u in body["upstreams"] if u["upstream"] == upstream)


def test_status_lists_managed_upstreams_with_split_lease_history_and_events(sidecar, upstream):
    _set(sidecar, upstream)
    r = sidecar.client(TOKENS[1].token).get("/v1/status")  # a read token is enough
    assert r.status_code == 200
    body = r.json()
    entry = _entry(body, upstream)
    assert entry["split"] == {"stable": 90.0, "baseline": 5.0, "canary": 5.0}
    assert entry["lease"]["epoch"] == int(sidecar.clock.now) + 3600
    assert entry["ramp"] is None
    assert entry["history"][-1]["split"] == entry["split"]
    assert body["history"] == {"seconds": HISTORY_SECONDS, "points": HISTORY_POINTS}
    event = next(e for e in body["events"] if e.get("upstream") == upstream)
    assert (event["event"], event["result"], event["token"]) == (
        "set_split",
        "applied",
        "spinnaker",
    )
    assert event["after"] == entry["split"]
    assert entry["metrics"]["available"] is False
    assert "no gateway metrics" in entry["metrics"]["message"]


def test_history_records_each_change_in_order(sidecar, upstream):
    client = sidecar.client()
    _set(sidecar, upstream)
    sidecar.clock.advance(60)
    _set(sidecar, upstream, {"stable": 80, "baseline": 10, "canary": 10})
    sidecar.clock.advance(60)
    assert client.post(f"/v1/upstreams/{upstream}/rollback").status_code == 200
    history = _entry(client.get(f"/v1/status?upstream={upstream}").json(), upstream)["history"]
    canaries = [p["split"]["canary"] for p in history]
    assert canaries == [5.0, 10.0, 0.0]  # the three changes (the read adds no repeat)
    assert [p["at"] for p in history] == sorted(p["at"] for p in history)


def test_history_forgets_what_is_older_than_an_hour(sidecar, upstream):
    client = sidecar.client()
    _set(sidecar, upstream)
    sidecar.clock.advance(HISTORY_SECONDS + 1)
    history = _entry(client.get(f"/v1/status?upstream={upstream}").json(), upstream)["history"]
    assert [p["at"] for p in history] == [sidecar.clock.now]


def test_a_ramp_started_here_shows_progress_next_step_and_end(sidecar, upstream):
    client = sidecar.client()
    ramp_id = _start_ramp(client, upstream)
    sidecar.clock.advance(20)
    assert client.get(f"/v1/ramps/{ramp_id}").json()["progress"] == 33  # Orca's poll drives
    ramp = _entry(client.get(f"/v1/status?upstream={upstream}").json(), upstream)["ramp"]
    assert ramp["id"] == ramp_id and ramp["status"] == "RUNNING"
    assert ramp["progress"] == 33 and ramp["steps"] == 3
    assert ramp["ends_at"] - sidecar.clock.now == 40
    assert ramp["next_step_at"] - sidecar.clock.now == 20
    assert ramp["split"]["canary"] == 3.33


def test_the_status_read_does_not_drive_a_ramp(sidecar, upstream):
    client = sidecar.client()
    ramp_id = _start_ramp(client, upstream)
    sidecar.clock.advance(30)
    ramp = _entry(client.get(f"/v1/status?upstream={upstream}").json(), upstream)["ramp"]
    assert ramp["id"] == ramp_id
    assert ramp["split"]["canary"] == 0.0  # due, but only a ramp poll moves Kong
    assert sidecar.kong_weights(upstream)["10.0.0.1:80"] > 0


def test_a_ramp_unknown_to_this_process_is_named_not_guessed(sidecar, upstream):
    client = sidecar.client()
    _start_ramp(client, upstream)
    board = sidecar.app.extensions[EXTENSION]
    board._ramps.clear()  # as if another worker had started it
    ramp = _entry(client.get(f"/v1/status?upstream={upstream}").json(), upstream)["ramp"]
    assert ramp["id"] is None and ramp["status"] is None
    assert re.fullmatch(r"[0-9a-f]{16}", ramp["fingerprint"])
    assert "another worker or replica" in ramp["message"]


def test_status_needs_a_token_and_keeps_to_its_upstreams(sidecar, upstream):
    assert sidecar.client(None).get("/v1/status").status_code == 401
    other = f"payments-{uuid.uuid4().hex[:8]}"
    kong = sidecar.kong_client()
    kong.post("/upstreams", json={"name": other}).raise_for_status()
    kong.post(f"/upstreams/{other}/targets", json={"target": "10.0.1.1:80", "weight": 100})
    try:
        _set(sidecar, upstream)
        _set(sidecar, other)
        orders_only = sidecar.client(TOKENS[2].token)
        body = orders_only.get("/v1/status").json()
        names = {u["upstream"] for u in body["upstreams"]}
        assert upstream in names and other not in names
        assert all(e.get("upstream") != other for e in body["events"])
        r = orders_only.get(f"/v1/status?upstream={other}")
        assert r.status_code == 403 and r.json()["error"]["field"] == "upstream"
    finally:
        kong.delete(f"/upstreams/{other}")


def test_status_of_a_missing_or_badly_named_upstream(sidecar):
    client = sidecar.client()
    assert client.get("/v1/status?upstream=nope-404-x").status_code == 404
    r = client.get("/v1/status?upstream=bad%20name")
    assert r.status_code == 422 and r.json()["error"]["field"] == "upstream"


def test_gateway_metrics_become_rates_5xx_and_p99_per_variant(sidecar, upstream):
    """The board's counter reader is its I/O edge: fed two readings ten seconds apart."""
    _set(sidecar, upstream)
    board = sidecar.app.extensions[EXTENSION]
    cumulative = [0.0] * (len(BOUNDS) - 3) + [50.0, 100.0, 100.0]
    before = VariantCounters({"2xx": 0}, (0.0,) * len(BOUNDS))
    after = VariantCounters({"2xx": 90, "5xx": 10}, tuple(cumulative))
    readings = iter(
        [
            GatewayReading(sidecar.clock.now, {"canary": before}),
            GatewayReading(sidecar.clock.now + 10, {"canary": after}),
        ]
    )
    board.read_gateway = lambda: {upstream: next(readings)}
    client = sidecar.client()
    client.get(f"/v1/status?upstream={upstream}")
    sidecar.clock.advance(10)
    metrics = _entry(client.get(f"/v1/status?upstream={upstream}").json(), upstream)["metrics"]
    assert metrics["available"] is True
    canary = metrics["now"]["canary"]
    assert canary["rps"] == 10.0 and canary["error_ratio"] == 0.1
    assert BOUNDS[-4] < canary["p99_ms"] <= BOUNDS[-2]
    assert metrics["series"][-1]["variants"]["canary"] == canary


def test_the_counter_reader_sums_the_gateway_series_of_an_upstream():
    name = f"reader-{uuid.uuid4().hex[:8]}"
    REQUESTS.labels(name, "canary", "refunds", "5xx").inc(3)  # summed over the route label
    REQUESTS.labels(name, "canary", "orders", "2xx").inc(5)
    REQUESTS.labels(name, "canary", "refunds", "2xx").inc(2)
    REQUEST_LATENCY.labels(name, "canary", "orders").observe(12)
    reading = read_gateway_counters(5.0)[name]
    assert reading.at == 5.0
    canary = reading.variants["canary"]
    assert canary.codes == {"5xx": 3.0, "2xx": 7.0}
    assert canary.buckets[BOUNDS.index(10.0)] == 0 and canary.buckets[BOUNDS.index(15.0)] == 1
    assert REGISTRY is not None


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.tags and self.tags[-1][0] in ("script", "style"):
            self.data.append(data.strip())


def test_the_page_is_static_with_strict_headers_and_no_inline_code(sidecar):
    client = sidecar.client(None)  # the page itself needs no token: it holds no data
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    parsed = _Tags()
    parsed.feed(page.text)
    assert not any(parsed.data), "inline script or style"
    assert all("style" not in attrs and not any(k.startswith("on") for k in attrs)
               for _, attrs in parsed.tags)  # fmt: skip
    scripts = [attrs["src"] for tag, attrs in parsed.tags if tag == "script"]
    assert scripts == ["/status/status.js"]
    script = client.get("/status/status.js")
    assert script.status_code == 200 and "sessionStorage" in script.text
    assert "localStorage" not in script.text and "innerHTML" not in script.text
    assert script.headers["content-security-policy"] == csp
    assert client.get("/status/index.py").status_code == 404
