"""The kong.conf values the local Kong models: what ``GET /`` shows under ``configuration``
and what its handlers ask (``untrusted_lua``, the plugins left out, when a plugin runs).

One node has one :class:`NodeConfiguration`, built by :meth:`NodeConfiguration.for_profile`
from Kong's defaults for the profile's version and the values a node was started with.

Sources (Kong/kong, tags 2.8.5, 3.4.2, 3.9.3):
- ``kong/templates/kong_defaults.lua``: ``database = postgres``, ``role = traditional``,
  ``db_update_frequency = 5``, ``db_update_propagation = 0``,
  ``worker_state_update_frequency = 5``, ``untrusted_lua = sandbox`` and ``plugins = bundled``
  in all three; ``worker_consistency = strict`` in 2.8.5, ``eventual`` in 3.4.2 and 3.9.3.
  ``admin_listen``/``proxy_listen`` default to ``127.0.0.1:8001 reuseport backlog=16384,
  127.0.0.1:8444 http2 ssl …`` and ``0.0.0.0:8000 …, 0.0.0.0:8443 …``; the local Kong shows
  the plain address of the first listener only, as it always has.
- ``kong/conf_loader/init.lua`` (2.8.5, 3.4.2; 3.9.3: ``conf_loader/constants.lua`` and
  ``parse.lua``): the three intervals are numbers, ``worker_state_update_frequency must be
  greater than 0``; ``worker_consistency`` is one of ``strict``, ``eventual``;
  ``untrusted_lua`` one of ``on``, ``off``, ``sandbox``.
- A bundled plugin left out of ``plugins`` is missing from ``plugins.available_on_server``
  and refused on create with ``plugin '<name>' not enabled; …``
  (``kong/db/schema/entities/plugins.lua``).
- ``kong/api/routes/kong.lua``: ``GET /`` shows ``kong.configuration.remove_sensitive()``,
  the whole of kong.conf; the local Kong shows the keys clients read, and
  ``db_update_propagation`` only when it is not Kong's 0 (the local Kong's answer has never
  carried it at its default; the sidecar reads a missing value as 0, ``core/window_live.py``).

``database`` and ``role`` are the profile's (DB-less, data plane, control plane): a node's own
values cannot change them, since the handlers follow the profile.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.kong_local.profiles import Profile

UNTRUSTED_LUA_VALUES = ("on", "off", "sandbox")
DEFAULT_UNTRUSTED_LUA = "sandbox"
WORKER_CONSISTENCY_VALUES = ("strict", "eventual")
_FROM_PROFILE = ("database", "role")


@dataclass(frozen=True)
class NodeConfiguration:
    """Field defaults are Kong 3.x's; :meth:`for_profile` applies the version's own."""

    database: str = "postgres"
    role: str = "traditional"
    admin_listen: tuple[str, ...] = ("127.0.0.1:8001",)
    proxy_listen: tuple[str, ...] = ("0.0.0.0:8000",)
    db_update_frequency: float = 5
    db_update_propagation: float = 0
    worker_consistency: str = "eventual"
    worker_state_update_frequency: float = 5
    untrusted_lua: str = DEFAULT_UNTRUSTED_LUA
    disabled_plugins: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("db_update_frequency", "db_update_propagation"):
            _require_number(name, getattr(self, name))
        _require_number("worker_state_update_frequency", self.worker_state_update_frequency)
        if self.worker_state_update_frequency <= 0:
            raise ValueError("worker_state_update_frequency must be greater than 0")
        _require_one_of("worker_consistency", self.worker_consistency, WORKER_CONSISTENCY_VALUES)
        _require_one_of("untrusted_lua", self.untrusted_lua, UNTRUSTED_LUA_VALUES)
        if isinstance(self.disabled_plugins, str):
            raise ValueError("disabled_plugins must be a collection of plugin names")
        object.__setattr__(self, "disabled_plugins", frozenset(self.disabled_plugins))

    @classmethod
    def for_profile(
        cls, profile: Profile, values: Mapping[str, Any] | None = None
    ) -> NodeConfiguration:
        """Kong's defaults for the profile's version, then ``values`` (a node's own kong.conf
        values, by field name)."""
        defaults = cls(
            database=profile.database,
            role=profile.role,
            worker_consistency="eventual" if profile.is_3x else "strict",
        )
        return defaults.with_values(**(values or {}))

    def with_values(self, **values: Any) -> NodeConfiguration:
        """This configuration with ``values`` changed; unknown names and the profile's own
        values are refused with a ValueError naming them."""
        known = {f.name for f in dataclasses.fields(self)} - set(_FROM_PROFILE)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"kong.conf value(s) {', '.join(unknown)} not modelled by the local Kong; "
                f"expected some of {', '.join(sorted(known))} (database and role come from "
                "the profile)"
            )
        return dataclasses.replace(self, **values)

    def shown(self) -> dict[str, Any]:
        """``GET /``'s ``configuration``."""
        shown: dict[str, Any] = {
            "database": self.database,
            "role": self.role,
            "admin_listen": list(self.admin_listen),
            "proxy_listen": list(self.proxy_listen),
            "db_update_frequency": self.db_update_frequency,
            "worker_consistency": self.worker_consistency,
            "worker_state_update_frequency": self.worker_state_update_frequency,
            "untrusted_lua": self.untrusted_lua,
        }
        if self.db_update_propagation != 0:
            shown["db_update_propagation"] = self.db_update_propagation
        return shown


def _require_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")


def _require_one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
