"""The ``post-function`` plugin's schema for the local server, with Lua compiled by LuaJIT.

Sources (Kong/kong, tags 2.8.5, 3.4.2, 3.9.3):
- ``kong/plugins/post-function/schema.lua`` is ``pre-function/_schema.lua`` called with
  "post-function". Every phase (``certificate``, ``rewrite``, ``access``, ``header_filter``,
  ``body_filter``, ``log``) is an array of strings, ``required = true, default = {}``, so a
  plugin echoes all six, empty when unset (measured on 3.4.2, reference section 11). 2.8.5
  adds the old ``functions`` array (same validator, run in the access phase) with entity
  checks ``mutually_exclusive_sets {config.functions} / {config.access}``; all versions check
  ``at_least_one_of`` the phases, where an empty array counts as empty (``is_nonempty`` in
  ``kong/db/schema/init.lua``).
- Each string is checked with ``loadstring`` only (``validate_function``): a syntax error is
  ``"error parsing post-function: " .. err``; code that fails only when run (``require
  "os"`` in the sandbox) is accepted. The message is LuaJIT's own, so this module compiles
  with LuaJIT (lupa's ``luajit21``) to produce the same text.
- ``consumer = typedefs.no_consumer`` (``eq = null``): a serverless plugin cannot be scoped to
  a consumer; ``kong/db/schema/init.lua`` says ``value must be null``.
- ``untrusted_lua`` (``kong/templates/kong_defaults.lua``: ``sandbox`` in 2.8.5, 3.4.2 and
  3.9.3; ``on|off|sandbox`` in ``kong/conf_loader/init.lua``) is *not* consulted by the
  schema: with ``off`` Kong still accepts the plugin, and every request through it fails when
  the handler (``pre-function/_handler.lua``) calls ``kong.tools.sandbox.sandbox``, which
  raises ``loading of untrusted Lua code disabled because 'untrusted_lua' config option is
  set to 'off'``. The local server does the same (accepts it); a client must read
  ``configuration.untrusted_lua`` from ``GET /`` to know.
- Konnect supports the plugin (developer.konghq.com/plugins/post-function: "Supported Konnect
  Deployments: hybrid, cloud-gateways, serverless"), and DB-less nodes run it from declarative
  config (their Admin API refuses the write, ``kong/db/strategies/off/init.lua``). A Konnect
  control plane has no ``GET /``: its data planes' ``untrusted_lua`` cannot be read through
  it. The local Konnect profile accepts the plugin like any other; consumers and ACLs are not
  modelled there.
"""

from __future__ import annotations

import threading
from typing import Any

from sidecar.kong_local.profiles import Profile

PHASES = ("certificate", "rewrite", "access", "header_filter", "body_filter", "log")
PLUGIN_NAME = "post-function"
SANDBOX_OFF_ERROR = (
    "loading of untrusted Lua code disabled because 'untrusted_lua' config option is set to 'off'"
)

_compiler_lock = threading.Lock()
_compiler: Any = None


def _loadstring() -> Any:
    """LuaJIT's ``loadstring``, from one runtime shared by the server's threads (a Lua state
    is not thread-safe: callers hold ``_compiler_lock``)."""
    global _compiler
    if _compiler is None:
        from lupa import luajit21  # LuaJIT 2.1, as Kong's OpenResty embeds

        _compiler = luajit21.LuaRuntime(unpack_returned_tuples=True).eval("loadstring")
    return _compiler


def lua_syntax_error(code: str) -> str | None:
    """LuaJIT's message for ``code``'s syntax error (as ``loadstring`` gives it), or None."""
    with _compiler_lock:
        result = _loadstring()(code)
    if isinstance(result, tuple) and result[0] is None:
        message = result[1]
        return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return None


def function_error(code: Any) -> str | None:
    """``validate_function``'s verdict on one phase entry."""
    if not isinstance(code, str):
        return "expected a string"
    error = lua_syntax_error(code)
    return None if error is None else f"error parsing {PLUGIN_NAME}: {error}"


def phase_fields(profile: Profile) -> tuple[str, ...]:
    """The config's fields: 2.8 still has the deprecated ``functions`` (access phase)."""
    return PHASES if profile.is_3x else ("functions", *PHASES)


def entity_errors(config: dict[str, Any], profile: Profile) -> list[str]:
    """The schema's entity checks over a config with defaults filled in."""
    phases = phase_fields(profile)
    errors = []
    if not profile.is_3x and config.get("functions") and config.get("access"):
        errors.append("these sets are mutually exclusive: ('config.functions'), ('config.access')")
    if not any(config.get(phase) for phase in phases):
        names = ", ".join(f"'config.{phase}'" for phase in phases)
        errors.append(f"at least one of these fields must be non-empty: {names}")
    return errors
