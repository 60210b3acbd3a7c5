"""The guard's settings as users write them (``"guard": {...}``), validated field by field.

Every field has a default so ``"guard": {}`` is a useful guard; each error names the field
(``guard.<name>``) and the rule, through :class:`~sidecar.core.split.SplitError` like every
other input rule of the API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from sidecar.core.split import SplitError

REFERENCES = ("baseline", "baseline+stable")


@dataclass(frozen=True)
class GuardConfig:
    """What counts as "clearly broken", and how sure the guard must be.

    - ``errors_ratio``: the 5xx odds ratio canary/reference the test must prove exceeded
      (1.5: half as many 5xx again). Tested sequentially (:mod:`sidecar.core.guard`).
    - ``errors_increase``: and the observed 5xx ratio must exceed the reference's by at
      least this many percentage points (a floor on the effect, not tested: it keeps a
      0.01 % -> 0.03 % change from tripping).
    - ``p99_ratio``: the canary's P99 latency the test must prove above this many times the
      reference's P99. The histogram buckets round the test upward (it trips for a true
      ratio between ``p99_ratio`` and ~1.8 times it, never below), hence a low default.
    - ``min_requests``: canary and reference requests counted before any verdict.
    - ``window_seconds``: one look per window (the ingest's batches are summed per window).
    - ``confidence``: 1 - the false-trip probability the tests are built for.
    - ``reference``: what the canary is compared with. ``baseline+stable`` (default) pools
      the two variants running the old version: at a 2.5 % baseline the baseline alone is
      too small to bound a 0.5 % error rate in seconds (see ``sidecar.core.guard``).
    - ``no_traffic_seconds``/``trip_on_no_traffic``: a canary with a share but no requests
      for that long is reported, and tripped only if asked.
    - ``routes``: Kong routes (name, else id: the gateway metrics' ``route`` label) the
      guard also judges one by one, each canary route against the same route of the
      reference, so a regression confined to a low-traffic critical route is not drowned
      in the upstream's other routes. None by default (the upstream as a whole only).
    - ``alert_url``: where a trip is announced (a POST of ``{"text": ...}``, as a Slack
      incoming webhook takes it); none by default. It is a secret for Slack, so views show
      only its scheme and host (:func:`redacted`).
    """

    errors_ratio: float = 1.5
    errors_increase: float = 1.0
    p99_ratio: float = 1.25
    min_requests: int = 20
    window_seconds: float = 1.0
    confidence: float = 0.99
    reference: str = "baseline+stable"
    no_traffic_seconds: float = 60.0
    trip_on_no_traffic: bool = False
    alert_url: str | None = None
    routes: tuple[str, ...] = ()

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "routes": list(self.routes)}

    @classmethod
    def from_json(cls, raw: object, *, field: str = "guard") -> GuardConfig:
        if not isinstance(raw, Mapping):
            raise SplitError(field, "must be an object (use {} for the defaults)")
        unknown = sorted(str(key) for key in raw if key not in _RULES)
        if unknown:
            raise SplitError(
                f"{field}.{unknown[0]}", f"unknown field; expected one of {', '.join(_RULES)}"
            )
        values = {name: _RULES[name](raw[name], f"{field}.{name}") for name in raw}
        return cls(**values)


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SplitError(field, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise SplitError(field, "must be a finite number")
    return number


def _between(low: float, high: float, *, open_low: bool = False, open_high: bool = False):  # type: ignore[no-untyped-def]
    def check(value: object, field: str) -> float:
        number = _number(value, field)
        if number < low or (open_low and number == low):
            raise SplitError(field, f"must be {'above' if open_low else 'at least'} {low:g}")
        if number > high or (open_high and number == high):
            raise SplitError(field, f"must be {'below' if open_high else 'at most'} {high:g}")
        return number

    return check


def _integer(low: int, high: int):  # type: ignore[no-untyped-def]
    def check(value: object, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SplitError(field, "must be an integer")
        if not low <= value <= high:
            raise SplitError(field, f"must be between {low} and {high}")
        return value

    return check


def _reference(value: object, field: str) -> str:
    if value not in REFERENCES:
        raise SplitError(field, f"must be one of {', '.join(REFERENCES)}")
    return str(value)


def _alert_url(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise SplitError(field, "must be a URL string of at most 2048 characters, or null")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SplitError(field, "must be an absolute http(s) URL")
    return value


def redacted(url: str | None) -> str | None:
    """``https://hooks.slack.com/…``: enough to recognise, not enough to post."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


MAX_ROUTES = 50  # the gateway metrics' default route cap (GATEWAY_MAX_ROUTES)


def _routes(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SplitError(field, "must be a list of route names or ids")
    if len(value) > MAX_ROUTES:
        raise SplitError(field, f"must list at most {MAX_ROUTES} routes")
    for index, route in enumerate(value):
        if not isinstance(route, str) or not 1 <= len(route) <= 255:
            raise SplitError(f"{field}[{index}]", "must be a route name or id (1-255 characters)")
    if len(set(value)) != len(value):
        raise SplitError(field, "must not list a route twice")
    return tuple(value)


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise SplitError(field, "must be true or false")
    return value


_RULES = {
    "errors_ratio": _between(1.0, 1000.0, open_low=True),
    "errors_increase": _between(0.0, 100.0),
    "p99_ratio": _between(1.0, 100.0, open_low=True),
    "min_requests": _integer(1, 1_000_000),
    "window_seconds": _between(0.1, 60.0),
    "confidence": _between(0.9, 0.999999, open_high=False),
    "reference": _reference,
    "no_traffic_seconds": _between(1.0, 86400.0),
    "trip_on_no_traffic": _flag,
    "alert_url": _alert_url,
    "routes": _routes,
}
