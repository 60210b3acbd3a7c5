"""Test-only fault injection: make the Nth matching Admin API call fail in a chosen way.

Modes are failures our client must survive in production: Kong's database error (500), a
dropped connection, a hang, a proxy's HTML error page, and a body cut short.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

MODES = ("500", "reset", "timeout", "html", "truncated")
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


@dataclass
class FaultRule:
    nth: int
    mode: str
    methods: tuple[str, ...]
    after_apply: bool
    path_contains: str | None
    seen: int = 0


class Faults:
    """Thread-safe queue of one-shot rules; each call advances every matching rule's count.

    ``delay`` is how long a "timeout" fault holds the request (seconds). Holding stops early
    when the server stops, so a test never waits for it.
    """

    def __init__(self) -> None:
        self.delay: float = 30.0
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def fail(
        self,
        nth: int = 1,
        mode: str = "500",
        methods: tuple[str, ...] | list[str] = WRITE_METHODS,
        *,
        after_apply: bool = False,
        path_contains: str | None = None,
    ) -> None:
        """The ``nth`` matching call from now (1 = the next one) fails with ``mode``.

        ``after_apply=False`` (default): Kong is left unchanged. ``after_apply=True``: the
        write is applied, then the answer is lost/garbled, the ambiguous case for a client.
        """
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {MODES}")
        if nth < 1:
            raise ValueError("nth counts from 1")
        rule = FaultRule(
            nth=nth,
            mode=mode,
            methods=tuple(m.upper() for m in methods),
            after_apply=after_apply,
            path_contains=path_contains,
        )
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._rules)

    def take(self, method: str, path: str) -> FaultRule | None:
        """Count this call against every rule; return (and drop) the first that fires."""
        fired: FaultRule | None = None
        with self._lock:
            for rule in list(self._rules):
                if method not in rule.methods:
                    continue
                if rule.path_contains and rule.path_contains not in path:
                    continue
                rule.seen += 1
                if rule.seen == rule.nth and fired is None:
                    fired = rule
                    self._rules.remove(rule)
        return fired
