"""Pure pieces of the CLI: argument parsing, bars, countdowns, ETAs and exit codes."""

from __future__ import annotations

import math
import re
from enum import IntEnum

from sidecar.core.split import VARIANTS

TERMINAL_RAMP_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})


class ExitCode(IntEnum):
    """What scripts can rely on (also in ``kong-canary --help`` and the README)."""

    OK = 0
    FAILED = 1  # the sidecar refused or failed the change, or the ramp ended FAILED/CANCELED
    USAGE = 2  # bad options or arguments (click's own code for usage errors)
    UNREACHABLE = 3  # no answer from the sidecar (refused, timed out, not the sidecar)
    AUTH = 4  # no token, or the sidecar refused it (401/403)


EXIT_CODES_HELP = (
    "Exit status: 0 done; 1 refused or failed (or the ramp ended FAILED/CANCELED); "
    "2 bad usage; 3 sidecar unreachable; 4 token missing or refused."
)


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code of an HTTP answer from the sidecar."""
    if status < 400:
        return ExitCode.OK
    if status in (401, 403):
        return ExitCode.AUTH
    return ExitCode.FAILED


def exit_code_for_ramp(status: str) -> ExitCode:
    return ExitCode.OK if status == "SUCCEEDED" else ExitCode.FAILED


class ArgumentError(ValueError):
    pass


_SPLIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")


def parse_split(text: str) -> dict[str, float]:
    """``95/2.5/2.5`` -> stable/baseline/canary. The sidecar checks the rules (sum,
    decimals, ceiling); this only reads the shape."""
    match = _SPLIT.match(text)
    if not match:
        raise ArgumentError(
            f"{text!r} is not a split: give stable/baseline/canary percentages, e.g. 95/2.5/2.5"
        )
    values = [float(v) for v in match.groups()]
    return {v: int(x) if x.is_integer() else x for v, x in zip(VARIANTS, values, strict=True)}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h30m`` -> seconds."""
    stripped = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return float(stripped)
    if not stripped or _DURATION.sub("", stripped):
        raise ArgumentError(f"{text!r} is not a duration: use e.g. 90s, 30m, 1h30m")
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(stripped))


def countdown(seconds: float | None) -> str:
    """``1h 05m``, ``4m 09s``, ``12s``; ``now`` when due or past; ``–`` when unknown."""
    if seconds is None:
        return "–"
    if seconds <= 0:
        return "now"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def bar(percent: float, width: int) -> str:
    """A bar of ``width`` cells for 0..100 %, in eighths of a cell, so 2.5 % of 40 cells
    still shows; any non-zero share shows at least one eighth."""
    percent = min(100.0, max(0.0, percent))
    eighths = round(percent / 100 * width * 8)
    if percent > 0 and eighths == 0:
        eighths = 1
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width)


def ramp_eta(ramp: dict, now: float) -> float | None:
    """Seconds until the ramp's last step is due (None when it is not running)."""
    if ramp.get("status") != "RUNNING" or ramp.get("ends_at") is None:
        return None
    return max(0.0, ramp["ends_at"] - now)


def split_text(split: dict | None) -> str:
    if split is None:
        return "no targets"
    return "/".join(f"{split[v]:g}" for v in VARIANTS)


def percent(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"
