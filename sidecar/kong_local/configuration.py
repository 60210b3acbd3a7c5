"""Node settings the local server is started with (``kong.conf``'s, as ``GET /`` shows them).

Sources (Kong/kong): ``kong/templates/kong_defaults.lua`` (``untrusted_lua = sandbox`` in
2.8.5, 3.4.2 and 3.9.3; ``plugins = bundled``), ``kong/conf_loader/init.lua``
(``untrusted_lua`` is one of ``on``, ``off``, ``sandbox``). A bundled plugin left out of
``plugins`` is missing from ``plugins.available_on_server`` and refused on create with
``plugin '<name>' not enabled; …`` (``kong/db/schema/entities/plugins.lua``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sidecar.kong_local.serverless import DEFAULT_UNTRUSTED_LUA, UNTRUSTED_LUA_VALUES


@dataclass(frozen=True)
class NodeConfiguration:
    untrusted_lua: str = DEFAULT_UNTRUSTED_LUA
    disabled_plugins: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.untrusted_lua not in UNTRUSTED_LUA_VALUES:
            raise ValueError(
                f"untrusted_lua must be one of {', '.join(UNTRUSTED_LUA_VALUES)}, "
                f"got {self.untrusted_lua!r}"
            )


def node_configuration(
    untrusted_lua: str = DEFAULT_UNTRUSTED_LUA, disabled_plugins: Iterable[str] = ()
) -> NodeConfiguration:
    return NodeConfiguration(untrusted_lua, frozenset(disabled_plugins))
