"""Replays every recorded Kong Admin API session against a fresh local server over HTTP.

The recordings (``tests/fixtures/kong/kong-*-admin-targets.json``) are real Kong answers; any
recording added later is picked up by the glob. Success bodies must match value for value
(ids and timestamps through their placeholders), error bodies exactly.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.kong_local.profiles import PROFILE_TABLE
from sidecar.kong_local.server import serve_in_thread

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kong"
RECORDINGS = sorted(FIXTURES.glob("kong-*-admin-targets.json"))
PLACEHOLDER = re.compile(r"<(id\d+|node)>")


def profile_for(version: str) -> str:
    major_minor = ".".join(version.split(".")[:2])
    traditional = [
        k
        for k, p in PROFILE_TABLE.items()
        if p.role == "traditional" and p.database != "off" and not p.konnect
    ]
    if major_minor not in traditional:
        pytest.fail(f"recording of Kong {version}: no profile {major_minor!r} in {traditional}")
    return major_minor


class Bindings:
    """Placeholder <-> real value, both ways, so one placeholder is always one id."""

    def __init__(self) -> None:
        self.forward: dict[str, str] = {}
        self.backward: dict[str, str] = {}

    def bind(self, placeholder: str, value: str, where: str) -> None:
        known = self.forward.get(placeholder)
        assert known is None or known == value, f"{where}: {placeholder} was {known}, now {value}"
        owner = self.backward.get(value)
        assert owner is None or owner == placeholder, (
            f"{where}: {value} is {owner} and {placeholder}"
        )
        self.forward[placeholder] = value
        self.backward[value] = placeholder


def _type_name(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value) if value is None else "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def match(expected: Any, actual: Any, b: Bindings, where: str) -> None:
    if isinstance(expected, str) and expected == "<ts>":
        assert _type_name(actual) == "number", f"{where}: timestamp {actual!r}"
        return
    if isinstance(expected, str) and PLACEHOLDER.search(expected):
        assert isinstance(actual, str), f"{where}: expected a string for {expected!r}"
        pattern, names, last = "", [], 0
        for m in PLACEHOLDER.finditer(expected):
            pattern += re.escape(expected[last : m.start()]) + r"([0-9a-f\-]{36})"
            names.append(m.group(0))
            last = m.end()
        pattern += re.escape(expected[last:])
        found = re.fullmatch(pattern, actual)
        assert found, f"{where}: {actual!r} does not fit {expected!r}"
        for name, value in zip(names, found.groups(), strict=True):
            b.bind(name, value, where)
        return
    assert _type_name(actual) == _type_name(expected), f"{where}: {actual!r} vs {expected!r}"
    if isinstance(expected, dict):
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} vs {sorted(expected)}"
        for key in expected:
            match(expected[key], actual[key], b, f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: {len(actual)} items vs {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            match(e, a, b, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def substitute(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return value.replace("{u}", name)
    if isinstance(value, list):
        return [substitute(v, name) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, name) for k, v in value.items()}
    return value


def _by_target(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "data": sorted(body["data"], key=lambda t: t["target"])}


@pytest.mark.parametrize("recording", RECORDINGS, ids=[p.name for p in RECORDINGS])
def test_replay_recording(recording: Path) -> None:
    """Every step of a real Kong session, in order: status, Deprecation/Allow/Location and
    Content-Type headers, and the body (error bodies' name/code/fields/message exactly)."""
    session = json.loads(recording.read_text())
    profile = profile_for(session["kong_version"])
    name = f"replay-{uuid.uuid4().hex[:10]}"
    bindings = Bindings()
    with serve_in_thread(profile) as server, httpx.Client(base_url=server.url) as client:
        for index, step in enumerate(session["steps"]):
            where = f"step {index} ({step['step']})"
            path = substitute(step["path"], name)
            if step["raw_body"] is not None:
                response = client.request(
                    step["method"],
                    path,
                    content=step["raw_body"].encode(),
                    headers=step["request_headers"] or {},
                )
            elif step["body"] is not None:
                response = client.request(step["method"], path, json=substitute(step["body"], name))
            else:
                response = client.request(step["method"], path)
            assert response.status_code == step["status"], f"{where}: {response.text}"
            for header in ("Content-Type", "Deprecation", "Allow", "Location"):
                assert response.headers.get(header) == step["headers"].get(header), (
                    f"{where}: header {header}"
                )
            expected = substitute(step["response"], name)
            if expected is None:
                assert response.content == b"", where
                continue
            actual = response.json()
            if path.endswith("/targets/all") and profile != "2.8":
                # 3.x pages /targets/all by primary key: random UUID order in real Kong too.
                expected, actual = _by_target(expected), _by_target(actual)
            match(expected, actual, bindings, where)
