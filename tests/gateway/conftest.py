"""Fixtures for the gateway tests: recorded Kong payloads served over httpx.MockTransport,
a settable clock, and scrapes read back through Prometheus's own text parser."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.kong.client import KongAdmin
from sidecar.kong.models import Flavour

VERSIONS = ("2.8.5", "3.4.2", "3.9.3")
KONG_DIR = Path(__file__).parent.parent / "fixtures" / "kong"
Sample = tuple[str, frozenset[tuple[str, str]]]


def load(version: str, kind: str) -> Any:
    return json.loads((KONG_DIR / f"kong-{version}-{kind}.json").read_text())


def health_body(version: str) -> dict[str, Any]:
    return load(version, "upstream-health")


def entries_of(version: str) -> list[dict[str, Any]]:
    return [
        e for batch in load(version, "http-log-batches")["first_batches"] for e in batch["body"]
    ]


def variant_by_port(version: str) -> dict[int, str]:
    """Straight from the recorded health JSON, independent of the code under test."""
    out = {}
    for target in health_body(version)["data"]:
        variant = next(t.split("=", 1)[1] for t in target["tags"] if t.startswith("variant="))
        for address in target["data"]["addresses"]:
            out[address["port"]] = variant
    return out


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


UUID_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def upstream_id(name: str, body: dict[str, Any]) -> str:
    """The id the recorded health names (``data[].upstream.id``), else a stable one."""
    for target in body.get("data", []):
        return str(target["upstream"]["id"])
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


@dataclass
class FakeKong:
    """Kong's Admin API as recorded: ``/upstreams/{u}`` and ``/upstreams/{u}/health`` answer
    from ``bodies``, anything else is Kong's 404. ``down`` makes every call a 503.

    ``{u}`` is resolved as Kong does (``kong/api/endpoints.lua``): a UUID-shaped key, in any
    case (``is_valid_uuid`` matches with the ``i`` flag), is an id; anything else an exact name.
    """

    bodies: dict[str, dict[str, Any]]
    calls: list[str] = field(default_factory=list)
    down: bool = False

    def find(self, key: str) -> str | None:
        if UUID_KEY.match(key):
            return next(
                (n for n, b in self.bodies.items() if upstream_id(n, b) == key.lower()), None
            )
        return key if key in self.bodies else None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if self.down:
            return httpx.Response(503, json={"message": "An unexpected error occurred"})
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and len(parts) in (2, 3) and parts[0] == "upstreams":
            name = self.find(unquote(parts[1]))
            if name is not None and len(parts) == 2:
                entity = {"id": upstream_id(name, self.bodies[name]), "name": name, "slots": 10000}
                return httpx.Response(200, json=entity)
            if name is not None and parts[2] == "health":
                return httpx.Response(200, json=self.bodies[name])
        return httpx.Response(404, json={"message": "Not found"})

    def admin(self, flavour: Flavour = Flavour.KONG_3) -> KongAdmin:
        http = httpx.Client(
            base_url="http://kong.test:8001", transport=httpx.MockTransport(self.handler)
        )
        return KongAdmin(http, flavour=flavour, read_retries=0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_kong() -> Callable[..., FakeKong]:
    def make(bodies: dict[str, dict[str, Any]]) -> FakeKong:
        return FakeKong(bodies)

    return make


def parse_exposition(text: str) -> dict[Sample, float]:
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(values: dict[Sample, float], name: str, **labels: str) -> float:
    """The sum over every series of ``name`` carrying ``labels`` (any others, e.g. ``route``,
    summed away as a service-level ``sum by (...)`` query does)."""
    wanted = frozenset(labels.items())
    return sum(v for (n, have), v in values.items() if n == name and wanted <= have)


@pytest.fixture
def scrape_delta() -> Iterator[Callable[..., Any]]:
    """``start(read)`` then ``delta()``: metric changes between two scrapes, so tests can
    share the process-wide registry without caring what ran before."""

    class Delta:
        def __init__(self) -> None:
            self.read: Callable[[], str] | None = None
            self.before: dict[Sample, float] = {}

        def start(self, read: Callable[[], str]) -> None:
            self.read = read
            self.before = parse_exposition(read())

        def delta(self) -> dict[Sample, float]:
            assert self.read is not None
            after = parse_exposition(self.read())
            return {
                k: v - self.before.get(k, 0.0)
                for k, v in after.items()
                if v != self.before.get(k, 0.0) and not k[0].endswith("_created")
            }

    yield Delta()
