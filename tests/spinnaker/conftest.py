from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sidecar.spinnaker.generate import DEFAULT_DIR, load_source, render_all
from tests.spinnaker.fakehttp import FakeServer

TOKEN = "sim-token-0123456789abcdef"


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
