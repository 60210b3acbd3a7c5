"""The README's runnable examples: fenced blocks marked ``bash example``, each command
followed by a comment stating its answer, run through bash and checked.

A comment ``# 200: split, status=RUNNING`` says the command's (last) curl call answers
200 and its JSON body has ``split`` and a ``status`` of ``"RUNNING"`` (dotted paths reach
inside: ``error.code=no_service``; values are JSON, else strings). ``# exit 3`` states a
command's exit status; without it every command must exit 0. A remark in parentheses may
follow either (``# exit 2 (needs --yes)``). The README lets a reader
copy a block into a shell; this module runs exactly that text, with ``curl`` wrapped only
to record each call's status and body.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BLOCK = re.compile(r"^```bash example\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ANSWER = re.compile(
    r"\s#\s*(?:(?P<status>[1-5]\d\d)|exit (?P<exit>\d+))"
    r"(?::\s*(?P<fields>[^()]+?))?(?:\s+\([^)]*\))?\s*$"
)
# curl as the reader runs it, plus the status on stderr and the body kept for the checks
CURL_RECORDER = """\
set -o pipefail
curl() {
  command curl -w '%{stderr}\\n::http %{http_code}\\n' "$@" | tee "$EXAMPLE_BODY"
  return "${PIPESTATUS[0]}"
}
"""


@dataclass(frozen=True)
class Example:
    """One command of a block (its continuation lines joined as bash joins them)."""

    command: str
    status: int | None
    exit: int
    fields: tuple[tuple[str, str | None], ...]

    @property
    def first_line(self) -> str:
        return self.command.splitlines()[0]


def blocks(markdown: str) -> list[str]:
    return BLOCK.findall(markdown)


def examples(block: str) -> list[Example]:
    """Commands of a block: a line continues while it ends in a backslash or leaves a quote
    open; the answer comment ends the command's last line."""
    found, pending = [], ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if not pending.strip() or pending.rstrip().endswith("\\") or not _complete(pending):
            continue
        found.append(_example(pending))
        pending = ""
    assert not pending, f"unfinished command in a README example: {pending!r}"
    return found


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quote still open: the command goes on on the next line
        return False
    return True


def _example(command: str) -> Example:
    answer = ANSWER.search(command.splitlines()[-1])
    if answer is None:
        return Example(command, None, 0, ())
    fields = tuple(
        (path.strip(), value.strip() if sep else None)
        for path, sep, value in (
            item.partition("=") for item in (answer["fields"] or "").split(",") if item.strip()
        )
    )
    status = int(answer["status"]) if answer["status"] else None
    return Example(command, status, int(answer["exit"] or 0), fields)


def script(block: list[Example], bodies: Path) -> str:
    """The block as one bash script: each command as written, between markers naming it."""
    lines = [CURL_RECORDER]
    for index, example in enumerate(block):
        lines += [
            f"EXAMPLE_BODY={shlex.quote(str(bodies / f'{index}.body'))}",
            f"printf '::cmd {index}\\n' >&2",
            example.command,
            f"printf '::rc {index} %s\\n' \"$?\" >&2",
        ]
    return "\n".join(lines) + "\n"


def run(block: list[Example], bodies: Path, env: dict[str, str]) -> list[str]:
    """Run a block; the list of what did not answer as its comments say (empty: all did)."""
    done = subprocess.run(
        ["bash", "-c", script(block, bodies)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,  # under pytest-timeout's 120 s per test, with room for the server start
    )
    statuses: dict[int, list[int]] = {}
    exits: dict[int, int] = {}
    current = -1
    for line in done.stderr.splitlines():
        if line.startswith("::cmd "):
            current = int(line.split()[1])
        elif line.startswith("::http "):
            statuses.setdefault(current, []).append(int(line.split()[1]))
        elif line.startswith("::rc "):
            exits[int(line.split()[1])] = int(line.split()[2])
    problems = []
    for index, example in enumerate(block):
        problems += [
            f"{example.first_line!r}: {problem}"
            for problem in _check(example, statuses.get(index, []), exits.get(index), bodies, index)
        ]
    if problems:
        problems.append(f"stderr: {done.stderr[-1500:]}")
    return problems


def _check(
    example: Example, statuses: list[int], exit: int | None, bodies: Path, index: int
) -> list[str]:
    """Every curl call of the command answers the stated status (several URLs: each)."""
    if exit is None:
        return ["never ran (an earlier command ended the script)"]
    problems = []
    if exit != example.exit:
        problems.append(f"exit status {exit}, the README expects {example.exit}")
    if example.status is not None and (not statuses or set(statuses) != {example.status}):
        problems.append(f"answered {statuses or 'nothing'}, the README says {example.status}")
    if example.fields:
        body_file = bodies / f"{index}.body"
        text = body_file.read_text() if body_file.exists() else ""
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            return [*problems, f"body is not JSON: {text[:300]!r}"]
        problems += [
            f"{path}: {problem} (body: {text[:300]})"
            for path, wanted in example.fields
            if (problem := _field_problem(body, path, wanted))
        ]
    return problems


def _field_problem(body: Any, path: str, wanted: str | None) -> str | None:
    value = body
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return "missing"
        value = value[key]
    if wanted is None:
        return None
    try:
        expected = json.loads(wanted)
    except json.JSONDecodeError:
        expected = wanted
    return None if value == expected else f"is {value!r}, the README says {expected!r}"
