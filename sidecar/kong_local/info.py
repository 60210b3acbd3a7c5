"""``GET /`` and ``GET /status`` bodies (``kong/api/routes/kong.lua``, ``health.lua``).

Only the keys clients read for detection are faithful: ``version``, ``edition`` (3.6+),
``configuration.database``/``role``, ``plugins.available_on_server`` (name -> true in 2.x,
name -> {version, priority} in 3.x), ``node_id``, ``hostname``, ``tagline``.
"""

from __future__ import annotations

from typing import Any

from sidecar.kong_local.configuration import NodeConfiguration
from sidecar.kong_local.profiles import Profile

# A subset of bundled plugins with their 3.x handler priorities.
_PLUGIN_PRIORITIES = {
    "correlation-id": 100001,
    "cors": 2000,
    "jwt": 1450,
    "key-auth": 1250,
    "basic-auth": 1100,
    "ip-restriction": 990,
    "acl": 950,
    "rate-limiting": 910,
    "request-transformer": 801,
    "response-transformer": 800,
    "proxy-cache": 100,
    "opentelemetry": 14,
    "prometheus": 13,
    "http-log": 12,
    "file-log": 9,
    "tcp-log": 7,
    "post-function": -1000,  # kong/plugins/post-function/handler.lua
}


def display_version(profile: Profile, enterprise: bool) -> str:
    """EE reports four parts ("3.4.3.29"); 2.x EE also appended "-enterprise-edition"."""
    if not enterprise:
        return profile.version
    if profile.is_3x:
        return f"{profile.version}.0"
    return f"{profile.version}.0-enterprise-edition"


def server_header(profile: Profile, enterprise: bool) -> str:
    suffix = ".0-enterprise-edition" if enterprise else ""
    return f"kong/{profile.version}{suffix}"


def root_body(
    profile: Profile,
    *,
    node_id: str,
    hostname: str,
    enterprise: bool,
    configuration: NodeConfiguration,
) -> dict[str, Any]:
    """``configuration`` and the available plugins follow the node's kong.conf."""
    disabled = configuration.disabled_plugins
    plugins = {n: p for n, p in _PLUGIN_PRIORITIES.items() if n not in disabled}
    if profile.is_3x:
        available: dict[str, Any] = {
            name: {"version": profile.version, "priority": prio} for name, prio in plugins.items()
        }
    else:
        available = dict.fromkeys(plugins, True)
    body: dict[str, Any] = {
        "version": display_version(profile, enterprise),
        "tagline": "Welcome to kong",
        "node_id": node_id,
        "hostname": hostname,
        "lua_version": "LuaJIT 2.1.0-20231117" if profile.is_3x else "LuaJIT 2.1.0-beta3",
        "plugins": {"available_on_server": available, "enabled_in_cluster": []},
        "configuration": configuration.shown(),
        "timers": {"running": 0, "pending": 5},
        "prng_seeds": {},
    }
    if profile.is_3x:
        body["pids"] = {"master": 1, "workers": [2]}
    if profile.has_edition:
        body["edition"] = "enterprise" if enterprise else "community"
    return body


def status_body(profile: Profile) -> dict[str, Any]:
    body: dict[str, Any] = {
        "database": {"reachable": True},
        "server": {
            "connections_accepted": 1,
            "connections_active": 1,
            "connections_handled": 1,
            "connections_reading": 0,
            "connections_waiting": 0,
            "connections_writing": 1,
            "total_requests": 1,
        },
        "memory": {"lua_shared_dicts": {}, "workers_lua_vms": []},
    }
    if profile.database == "off":
        body["configuration_hash"] = "00000000000000000000000000000000"
    return body
