"""The image (Dockerfile, .dockerignore) agrees with the chart and the package.

No Docker daemon is available offline, so the image is not built here; these tests pin what
the chart relies on: the uid, the entrypoint and command, the port, the multiprocess
directory, and a build context that holds exactly what `pip install .` needs.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helm.chart import REPO_ROOT, Rendered, container_env

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, args = pending.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def _one(keyword: str) -> str:
    (value,) = [a for k, a in final_stage() if k == keyword]
    return value


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def test_base_should_be_python_311_slim() -> None:
    args = dict(re.findall(r"^(\w+)=(\S+)$", a)[0] for k, a in instructions() if k == "ARG")
    froms = [a.split()[0] for k, a in instructions() if k == "FROM"]
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")


def test_user_should_match_chart_security_context(scenario_renders: dict[str, Rendered]) -> None:
    pod = scenario_renders["defaults"].one("Deployment")["spec"]["template"]["spec"]
    context = pod["securityContext"]
    # Numeric, so the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert _one("USER") == f"{context['runAsUser']}:{context['runAsGroup']}"
    assert context["runAsUser"] == 10001


def test_entrypoint_should_be_the_console_script_serving_on_the_chart_port(
    scenario_renders: dict[str, Rendered],
) -> None:
    entrypoint = json.loads(_one("ENTRYPOINT"))
    assert entrypoint == ["kong-canary"]
    assert entrypoint[0] in PYPROJECT["project"]["scripts"]
    command = json.loads(_one("CMD"))
    server = scenario_renders["defaults"].one("Deployment")["spec"]["template"]["spec"]
    (container,) = server["containers"]
    # The chart passes the same command explicitly, with its port.
    assert container["args"] == command
    assert command[-1].endswith(f":{_one('EXPOSE')}")


def test_multiproc_dir_should_match_chart_and_be_owned_by_the_user(
    scenario_renders: dict[str, Rendered],
) -> None:
    pod = scenario_renders["defaults"].one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    chart_dir = container_env(container)["PROMETHEUS_MULTIPROC_DIR"]
    assert _env()["PROMETHEUS_MULTIPROC_DIR"] == chart_dir
    runs = " ".join(a for k, a in final_stage() if k == "RUN")
    assert f"mkdir -p {chart_dir}" in runs
    assert "chown -R 10001:10001 /var/run/kong-canary" in runs


# --- build context -------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob (moby/patternmatcher): `**` spans directories, `*` does not."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def in_context(relative: str) -> bool:
    """MatchesOrParentMatches semantics: a rule matching a parent directory applies too; the
    last matching rule wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in dockerignore_rules():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return not excluded


def test_dockerignore_semantics_should_follow_docker() -> None:
    """Guards the emulation with cases whose Docker behaviour is documented."""
    rules = [(False, _pattern_regex("**/__pycache__"))]
    assert any(r.fullmatch("sidecar/api/__pycache__") for _, r in rules)
    assert _pattern_regex("*").fullmatch("tests") and not _pattern_regex("*").fullmatch("a/b")


def _repo_files() -> list[str]:
    skip = {".git", ".venv", ".pytest_cache", ".ruff_cache", ".hypothesis"}
    files: list[str] = []
    for root, dirs, names in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        base = Path(root).relative_to(REPO_ROOT)
        files.extend((base / n).as_posix() for n in names)
    return files


def test_context_should_hold_what_pip_install_needs() -> None:
    needed = ["pyproject.toml", *(_package_sources())]
    readme = PYPROJECT["project"].get("readme")
    if isinstance(readme, str):
        needed.append(readme)
    assert [f for f in needed if not in_context(f)] == []


def _package_sources() -> list[str]:
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = {p.rstrip("*").rstrip(".") for p in patterns}
    found = [
        p.relative_to(REPO_ROOT).as_posix()
        for root in roots
        for p in (REPO_ROOT / root).rglob("*")
        if p.is_file() and p.suffix in {".py", ".json", ".yaml", ".yml"}
    ]
    assert found, "no package sources found"
    return found


def test_context_should_hold_the_kayenta_library_the_image_copies() -> None:
    copies = [a.split() for k, a in final_stage() if k == "COPY" and not a.startswith("--from")]
    assert [src for src, _ in copies] == ["kayenta-configs/library.yaml", "kayenta-configs/configs"]
    configs = sorted((REPO_ROOT / "kayenta-configs" / "configs").glob("*.json"))
    assert configs
    assert all(in_context(p.relative_to(REPO_ROOT).as_posix()) for p in configs)
    assert in_context("kayenta-configs/library.yaml")
    assert not in_context("kayenta-configs/invalid/missing-name.json")


def test_image_library_should_be_where_the_package_and_the_sync_job_look(
    render_with: Callable[..., Rendered],
) -> None:
    from sidecar.kayenta.library import IMAGE_LIBRARY_DIR, LIBRARY_ENV

    copies = dict(a.split() for k, a in final_stage() if k == "COPY" and "--from" not in a)
    library = copies["kayenta-configs/library.yaml"]
    assert Path(library).parent == IMAGE_LIBRARY_DIR
    assert _env()[LIBRARY_ENV] == str(IMAGE_LIBRARY_DIR)
    job = render_with({"kayentaSync": {"enabled": True, "url": "http://kayenta:8090"}}).one("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--dir") + 1] == copies["kayenta-configs/configs"]


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/HEAD", "tests/conftest.py", "helm/kong-canary/Chart.yaml",
     "bench/run.py", "sidecar/__pycache__/cli.cpython-311.pyc", "kong_canary.egg-info/PKG-INFO",
     "Dockerfile"],
)  # fmt: skip
def test_context_should_leave_out_everything_else(path: str) -> None:
    assert not in_context(path)


def test_context_should_only_hold_package_files_in_this_checkout() -> None:
    allowed_top = {"pyproject.toml", "README.md", "LICENSE", "sidecar", "kayenta-configs"}
    stray = [f for f in _repo_files() if in_context(f) and f.split("/")[0] not in allowed_top]
    assert stray == []
    assert all(Path(f).suffix != ".pyc" for f in _repo_files() if in_context(f))
