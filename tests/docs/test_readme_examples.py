"""The README's examples work as written: every ``bash example`` block runs against a live
``kong-canary serve`` on the embedded Kong (the README's first command, on a free port), and
every command answers as the comment after it says; the endpoint table names every operation
of the OpenAPI document."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sidecar.api.openapi import document
from tests.cli.sidecar_process import process, sidecar_env, wait_until
from tests.docs.readme_examples import Example, blocks, examples, run

README = Path(__file__).parents[2] / "README.md"
TOKEN = "readme-demo-token-0123456789"
METHODS = ("get", "put", "post", "delete", "patch")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sidecar_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``kong-canary serve --bind 127.0.0.1:0``; its banner names the port it bound."""
    output = tmp_path_factory.mktemp("serve") / "serve.out"
    env = sidecar_env(KONG_CANARY_TOKENS=f"demo:admin={TOKEN}")
    with (
        output.open("w") as sink,
        process(["serve", "--bind", "127.0.0.1:0", "--workers", "1"], env, stdout=sink),
    ):
        port = wait_until(
            lambda: re.search(r"Try: curl .*http://127\.0\.0\.1:(\d+)/", output.read_text()),
            30,
            "the banner's curl line",
        ).group(1)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 30, "readiness")
        yield url


def _shell_env(url: str) -> dict[str, str]:
    """A reader's shell after the README's exports, with this venv's ``kong-canary``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "KONG_CANARY_URL": url, "KONG_CANARY_TOKEN": TOKEN}


def readme_blocks() -> list[list[Example]]:
    return [examples(block) for block in blocks(README.read_text(encoding="utf-8"))]


def test_the_readme_has_examples_and_every_curl_states_its_answer():
    found = readme_blocks()
    assert found, "no ```bash example block in the README"
    silent = [
        e.first_line for block in found for e in block if "curl " in e.command and e.status is None
    ]
    assert not silent, f"curl examples without their answer (# 200: …): {silent}"


def test_every_readme_example_answers_as_written(sidecar_url, tmp_path):
    for number, block in enumerate(readme_blocks()):
        bodies = tmp_path / f"block{number}"
        bodies.mkdir()
        problems = run(block, bodies, _shell_env(sidecar_url))
        assert not problems, "README example(s) not as written:\n" + "\n".join(problems)


def test_a_stale_example_is_reported(sidecar_url, tmp_path):
    """The check can fail: a wrong status, a missing field, a wrong value, a failing command."""
    stale = examples(
        'curl -s -H "Authorization: Bearer $KONG_CANARY_TOKEN" '
        "$KONG_CANARY_URL/v1/upstreams/no-such/split  # 200: split\n"
        "curl -s $KONG_CANARY_URL/healthz  # 200: status=down, uptime\n"
        "kong-canary get orders --url http://127.0.0.1:9\n"
    )
    problems = run(stale, tmp_path, _shell_env(sidecar_url))
    assert any("answered [404], the README says 200" in p for p in problems), problems
    assert any("split: missing" in p for p in problems), problems
    assert any("status: is 'ok', the README says 'down'" in p for p in problems), problems
    assert any("uptime: missing" in p for p in problems), problems
    assert any("exit status 3, the README expects 0" in p for p in problems), problems


def test_the_endpoint_table_names_every_operation_of_the_openapi_document():
    section = README.read_text(encoding="utf-8").split("\n## Endpoints\n", 1)[1].split("\n### ")[0]
    described = set()
    for row in re.findall(r"^\| (`[^|]*) \|", section, re.MULTILINE):
        for methods, path in re.findall(r"`([A-Z/]+) (/[^`]*)`", row):
            described |= {(m.lower(), _shape(path)) for m in methods.split("/")}
    served = _operations()
    assert sorted(served - described) == [], "operations the README's endpoint table lacks"
    assert sorted(described - served) == [], "rows for operations the app does not serve"


# Called with a URL the API handed out, not a path written in the README.
CALLED_BY_URL = {("get", "/v1/upstreams/{}/propagation")}  # the tour's "$STATUS_URL"


def test_the_curl_tour_calls_every_operation_of_the_openapi_document():
    """'Every endpoint once, with curl' stays true when an endpoint is added."""
    called = set(CALLED_BY_URL)
    for block in readme_blocks():
        for example in block:
            for call in re.findall(r"curl\b[^|;)]*", example.command):
                method = re.search(r"-X (\w+)", call)
                for path in re.findall(r"\$URL(/[^\s\"'?]*)", call):
                    called.add(((method[1] if method else "GET").lower(), _shape(_template(path))))
    served = _operations()
    assert sorted(served - called) == [], "operations no README example calls"


def _operations() -> set[tuple[str, str]]:
    """(method, path shape) of every operation of the OpenAPI document."""
    return {
        (method, _shape(path))
        for path, operations in document()["paths"].items()
        for method in operations
        if method in METHODS
    }


def _template(path: str) -> str:
    """The example's upstream and shell variables as path parameters."""
    return "/".join("{}" if s == "orders" or s.startswith("$") else s for s in path.split("/"))


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


def test_every_link_to_a_section_of_a_readme_names_a_heading_there():
    """Sections get moved and renamed; GitHub then silently drops the reader at the top."""
    root = README.parent
    broken = []
    for source in (README, *root.glob("*/README.md")):
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", source.read_text()):
            linked = (source.parent / target).resolve() if target else source
            if anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{source.relative_to(root)} → {target or '(itself)'}#{anchor}")
    assert not broken, "links to no heading:\n" + "\n".join(broken)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(
        r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M
    )
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
