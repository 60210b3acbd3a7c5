"""Runs post-function code the way Kong's data plane does, under LuaJIT, against a PDK model.

Used by the tests (the generated cohort Lua's rules) and ``bench/cohort_lua.py`` (its cost
per request). LuaJIT comes from lupa's ``lupa.luajit21`` module (LuaJIT 2.1, the VM OpenResty
embeds; lupa's default ``lupa.LuaRuntime`` may be PUC Lua 5.4, which is not what Kong runs).

Modelled from Kong/kong (2.8.5 to 3.9.3):
- The environment: ``kong/tools/sandbox.lua`` (``untrusted_lua = sandbox``) hands the code to
  ``kong/tools/kong-lua-sandbox.lua`` (identical in 2.8.5, 3.4.2 and 3.9.3): a fresh table
  of the *safe* globals listed there (``BASE_ENV``: ``assert error
  ipairs next pairs pcall select tonumber tostring type unpack xpcall``, parts of
  ``coroutine math os string table``, those modules write-protected), ``_G`` pointing at
  itself, and the handler's env behind it (``kong``, ``ngx``) with a ``require`` that
  refuses every module not in ``untrusted_lua_sandbox_requires`` (empty by default:
  ``require '<m>' not allowed within sandbox``). No ``setmetatable``, ``rawget``,
  ``load*``, ``string.dump``, ``io``, ``debug``. (Kong's plugin docs also list
  ``string.rep`` and ``os.date`` as unavailable; the source exposes both, and the source is
  what is modelled. The template uses neither.)
- Running: ``kong/plugins/pre-function/_handler.lua`` runs the chunk once; if it returns a
  function that function is the per-request handler from then on, else the chunk itself is.
- The PDK calls (``kong/pdk/``): ``kong.client.get_consumer()`` returns the authenticated
  consumer table or nil (``client.lua``); ``kong.request.get_header(name)`` raises ``header
  name must be a string`` for a non-string, looks names up case-insensitively with ``_``
  standing for ``-`` (``ngx.req.get_headers``), and gives the first value of a repeated
  header (``request.lua`` 2.8.5; ``kong/tools/http.lua`` ``get_header`` 3.9.3);
  ``kong.service.set_upstream(host)`` raises ``host must be a string`` for a non-string and
  returns ``nil, "could not find an Upstream named '<host>'"`` when no upstream has that
  name, else ``true`` (``service.lua``); ``kong.log.err`` logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lupa import luajit21

_RUNTIME_LUA = r"""
local safe = [[
_VERSION assert error ipairs next pairs pcall select tonumber tostring type unpack xpcall
coroutine.create coroutine.resume coroutine.running coroutine.status coroutine.wrap
coroutine.yield
math.abs math.acos math.asin math.atan math.atan2 math.ceil math.cos math.cosh math.deg
math.exp math.fmod math.floor math.frexp math.huge math.ldexp math.log math.log10 math.max
math.min math.modf math.pi math.pow math.rad math.random math.sin math.sinh math.sqrt
math.tan math.tanh
os.clock os.date os.difftime os.time
string.byte string.char string.find string.format string.gmatch string.gsub string.len
string.lower string.match string.rep string.reverse string.sub string.upper
table.concat table.insert table.maxn table.remove table.sort
]]

local G = _G
local base = {}
for id in safe:gmatch("%S+") do
  local module, method = id:match("([^%.]+)%.([^%.]+)")
  if module then
    base[module] = base[module] or {}
    base[module][method] = G[module][method]
  else
    base[id] = G[id]
  end
end
for _, name in ipairs({"coroutine", "math", "os", "string", "table"}) do
  local module = base[name]
  base[name] = G.setmetatable({}, {
    __index = module,
    __newindex = function(_, attr)
      G.error("Can not modify " .. name .. "." .. attr .. ". Protected by the sandbox.")
    end,
  })
end

local state = { consumer = nil, headers = {}, upstream = nil, logged = {} }
local upstreams = {}

local pdk = {
  client = {
    get_consumer = function() return state.consumer end,
  },
  request = {
    get_header = function(name)
      if G.type(name) ~= "string" then G.error("header name must be a string", 2) end
      local key = G.string.gsub(G.string.lower(name), "_", "-")
      local value = state.headers[key]
      if G.type(value) == "table" then return value[1] end
      return value
    end,
  },
  service = {
    set_upstream = function(host)
      if G.type(host) ~= "string" then G.error("host must be a string", 2) end
      if not upstreams[host] then
        return nil, "could not find an Upstream named '" .. host .. "'"
      end
      state.upstream = host
      return true
    end,
  },
  log = {
    err = function(...)
      local parts = {}
      for i = 1, G.select("#", ...) do parts[i] = G.tostring((G.select(i, ...))) end
      state.logged[#state.logged + 1] = G.table.concat(parts)
    end,
  },
}

local function open_env()
  -- untrusted_lua = on: kong/tools/sandbox.lua loads with an env whose __index is _G
  return G.setmetatable({ kong = pdk, ngx = {} }, { __index = G })
end

local function sandbox_env()
  local handler_env = G.setmetatable({ kong = pdk, ngx = {} }, {
    __index = {
      require = function(m)
        G.error(G.string.format("require '%s' not allowed within sandbox", m))
      end,
    },
  })
  local env = {}
  for k, v in G.pairs(base) do env[k] = v end
  G.setmetatable(env, { __index = handler_env })
  env._G = env
  return env
end

local runtime = {}

function runtime.add_upstream(name) upstreams[name] = true end

function runtime.clear_upstreams() upstreams = {} end

function runtime.load(code, sandboxed)
  local chunk, err = G.loadstring(code)
  if not chunk then G.error(err, 0) end
  G.setfenv(chunk, sandboxed and sandbox_env() or open_env())
  local result = chunk()
  if G.type(result) == "function" then return result end
  return chunk
end

function runtime.request(handler, consumer, headers)
  state.consumer = consumer
  state.headers = headers
  state.upstream = nil
  handler()
  return state.upstream
end

function runtime.repeat_request(handler, consumer, headers, n)
  state.consumer = consumer
  state.headers = headers
  for _ = 1, n do
    state.upstream = nil
    handler()
  end
  return state.upstream
end

function runtime.logged()
  local out = state.logged
  state.logged = {}
  return out
end

return runtime
"""

Headers = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True)
class Consumer:
    """What ``kong.client.get_consumer()`` returns (the fields the cohort Lua may read)."""

    id: str
    username: str | None = None
    custom_id: str | None = None


class ServerlessRuntime:
    """One LuaJIT state with the sandbox and PDK models; not thread-safe (one per test)."""

    def __init__(self, upstreams: Iterable[str] = ()) -> None:
        self.lua = luajit21.LuaRuntime(unpack_returned_tuples=True)
        assert str(self.lua.eval("jit and jit.version")).startswith("LuaJIT 2.1")
        self._rt = self.lua.execute(_RUNTIME_LUA)
        self._lock = threading.RLock()
        for name in upstreams:
            self.add_upstream(name)

    def add_upstream(self, name: str) -> None:
        """An upstream ``kong.service.set_upstream`` can find by name."""
        with self._lock:
            self._rt.add_upstream(name)

    def set_upstreams(self, names: Iterable[str]) -> None:
        """Exactly these upstreams exist (what the balancer knows now)."""
        with self._lock:
            self._rt.clear_upstreams()
            for name in names:
                self._rt.add_upstream(name)

    def load(self, code: str, *, sandboxed: bool = True) -> Any:
        """The per-request handler of a post-function phase entry (LuaError on bad code).
        ``sandboxed=False`` is ``untrusted_lua = on``: the code sees every global."""
        with self._lock:
            return self._rt.load(code, sandboxed)

    def _consumer(self, consumer: Consumer | None) -> Any:
        if consumer is None:
            return None
        fields = {k: v for k, v in vars(consumer).items() if v is not None}
        return self.lua.table_from(fields)

    def _headers(self, headers: Headers) -> Any:
        """``ngx.req.get_headers()``: lower-case names, a list for a repeated header."""
        table: dict[str, Any] = {}
        for name, value in headers.items():
            key = name.lower()
            table[key] = value if isinstance(value, str) else self.lua.table_from(list(value))
        return self.lua.table_from(table)

    def request(
        self, handler: Any, consumer: Consumer | None, headers: Headers | None = None
    ) -> str | None:
        """Runs one request through ``handler``: the upstream it set, or None (untouched)."""
        with self._lock:
            return self._rt.request(handler, self._consumer(consumer), self._headers(headers or {}))

    def seconds_per_request(
        self, handler: Any, consumer: Consumer | None, headers: Headers | None, count: int
    ) -> float:
        """Mean wall time of ``count`` calls of ``handler`` in one Lua loop (for benches)."""
        with self._lock:
            lua_consumer = self._consumer(consumer)
            lua_headers = self._headers(headers or {})
            started = time.perf_counter()
            self._rt.repeat_request(handler, lua_consumer, lua_headers, count)
            return (time.perf_counter() - started) / count

    def logged(self) -> list[str]:
        """Lines ``kong.log.err`` logged since the last call."""
        with self._lock:
            return list(self._rt.logged().values())
