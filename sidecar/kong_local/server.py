"""The Kong-compatible Admin API server: a WSGI app holding the state, and a threaded runner.

Not a mock: every answer is one a real Kong (or Konnect) gives, per the recordings in
``tests/fixtures/kong`` and the Kong sources cited in each module. Test-only controls live
under ``/_kong_local/``, outside Kong's path space, and only when ``test_controls`` is on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from sidecar.kong_local.addresses import format_target
from sidecar.kong_local.admin_api import AdminApi, NodeIdentity, Reply
from sidecar.kong_local.configuration import NodeConfiguration
from sidecar.kong_local.errors import UNEXPECTED, ApiError, cannot_parse_json
from sidecar.kong_local.faults import FaultRule, Faults
from sidecar.kong_local.info import server_header
from sidecar.kong_local.keepalive import KeepAliveHandler, close_open_connections
from sidecar.kong_local.konnect import KonnectApi, problem
from sidecar.kong_local.profiles import PROFILES, Profile, get_profile
from sidecar.kong_local.propagation import History, LagView, data_planes_body, lagging_nodes
from sidecar.kong_local.proxy import ProxyModel
from sidecar.kong_local.schemas import Body
from sidecar.kong_local.seed import DEFAULT_SEED
from sidecar.kong_local.store import Store, Workspace

__all__ = [
    "DEFAULT_SEED",
    "PROFILES",
    "LocalKong",
    "RunningServer",
    "create_wsgi_app",
    "serve_in_thread",
]

JSON_UTF8 = "application/json; charset=utf-8"
RBAC_MISSING = "Invalid credentials. Token or User credentials required"  # EE 3.x, seen live
RBAC_WRONG = "Invalid RBAC credentials"  # EE rbac.lua / developer.konghq.com RBAC how-to
ROOT_ROUTES = {"upstreams", "targets", "status", "services", "routes", "plugins", "tags"}
ROOT_ROUTES |= {"consumers", "acls"}
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _nest_form(flat: dict[str, Any]) -> Body:
    """Kong's ``normalize_nested_params``: ``a.b=1`` -> ``{"a": {"b": "1"}}``."""
    out: Body = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def read_body(request: Request) -> tuple[Body, bool]:
    """(fields, from_form). JSON, form-urlencoded and multipart are accepted like Kong."""
    mimetype = request.mimetype
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        flat: dict[str, Any] = {}
        for key in request.form:
            values = request.form.getlist(key)
            name = key[:-2] if key.endswith("[]") else key
            flat[name] = values if key.endswith("[]") or len(values) > 1 else values[0]
        return _nest_form(flat), True
    data = request.get_data(cache=True)
    if not data.strip():
        return {}, False
    if mimetype == "application/json" or data.lstrip().startswith(b"{"):
        try:
            value = json.loads(data)
        except ValueError:
            raise cannot_parse_json() from None
        if not isinstance(value, dict):
            raise cannot_parse_json()
        return value, False
    return {}, False


class LocalKong:
    """WSGI callable with the whole state of one simulated Kong node (or Konnect CP)."""

    def __init__(
        self,
        profile: Profile,
        *,
        seed: dict[str, Any] | None,
        rbac_token: str | None,
        workspaces: Iterable[str],
        konnect_token: str | None,
        control_plane_id: str,
        dns: Mapping[str, Sequence[str]] | None,
        test_controls: bool,
        clock: Callable[[], float],
        nodes: int = 1,
        lag: float | Sequence[float] = 0.0,
        configuration: Mapping[str, Any] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        self.profile = profile
        self.store = Store(profile, clock, NodeConfiguration.for_profile(profile, configuration))
        self.faults = Faults()
        self.calls: list[tuple[str, str]] = []
        self.rbac_token = rbac_token
        self.workspaces = set(workspaces)
        self.konnect_token = konnect_token
        self.control_plane_id = control_plane_id
        self.test_controls = test_controls
        self.dns: dict[str, list[str]] = {k: list(v) for k, v in (dns or {}).items()}
        self.enterprise = bool(self.workspaces) or rbac_token is not None
        self.node_id = str(uuid.uuid4())
        self._seed = seed
        self._proxy: ProxyModel | None = None
        self._calls_lock = threading.Lock()
        self._stopping = threading.Event()
        for name in self.workspaces:
            self.store.workspace(name)
        if seed:
            self.store.load_seed(seed)
        # Who sees writes late: Konnect's nodes and a hybrid CP's data planes (all of them),
        # or a traditional cluster's other nodes (all but this one).
        behind = nodes if profile.role == "control_plane" else nodes - 1
        prefix = "kong-local-node" if profile.role != "control_plane" else "kong-local-dp"
        lagging = lagging_nodes(behind, lag if behind else (), prefix)
        if profile.konnect and lagging:  # keep the one node's old identity
            lagging[0] = dataclasses.replace(
                lagging[0], node_id=self.node_id, hostname="kong-local-dp"
            )
        self.history = History(self.store, clock, keep=max((n.lag for n in lagging), default=0))
        views = [LagView(self.history, n) for n in lagging]
        node = NodeIdentity(self.node_id, socket.gethostname(), self.enterprise)
        data_planes = None
        if profile.role == "control_plane" and not profile.konnect:

            def data_planes() -> dict[str, Any]:
                return data_planes_body(views, profile.version, self.store.clock())

        self.admin = AdminApi(self.store, self.dns, node, data_planes=data_planes)
        self.konnect = KonnectApi(self.store, control_plane_id, views)
        self.node_apps: list[NodeApp] = []
        if profile.role != "control_plane":
            for view in views:
                identity = NodeIdentity(view.node.node_id, view.node.hostname, self.enterprise)
                admin = AdminApi(self.store, self.dns, identity, lag=view)
                self.node_apps.append(NodeApp(self, admin))

    # ------------------------------------------------------------ public helpers

    def _ws_upstream(self, upstream: str, workspace: str) -> tuple[Workspace, Body]:
        ws = self.store.workspace(workspace)
        rec = self.store.find_upstream(ws, upstream)
        if rec is None:
            raise KeyError(f"no upstream {upstream!r} in workspace {workspace!r}")
        return ws, rec

    def mark_balancer_ready(self, upstream: str, workspace: str = "default") -> None:
        """As if traffic had flowed: 3.x builds an upstream's balancer on the first request."""
        with self.store.lock:
            ws, rec = self._ws_upstream(upstream, workspace)
            ws.ready.add(rec["id"])

    def set_health(
        self, upstream: str, target: str, health: str, workspace: str = "default"
    ) -> None:
        """Force a target's health (what active/passive checks would conclude)."""
        if health not in ("HEALTHY", "UNHEALTHY"):
            raise ValueError("health must be HEALTHY or UNHEALTHY")
        with self.store.lock:
            ws, rec = self._ws_upstream(upstream, workspace)
            found = self.store.find_target(ws, rec, target) or self.store.find_target(
                ws, rec, format_target(target) or target
            )
            if found is None:
                raise KeyError(f"no target {target!r} in upstream {upstream!r}")
            ws.overrides[(found["id"], None)] = health
            ws.ready.add(rec["id"])

    def wheels(self, upstream: str, workspace: str = "default") -> list[dict[str, int]]:
        """Where each node (this one first) sends traffic: its round-robin wheel, target ->
        points. Kong's round-robin balancer gives each address weight/gcd points on a wheel
        that requests walk in turn (``kong/runloop/balancer/round_robin.lua``
        ``afterHostUpdate``), so one full turn is one request per point, and a target
        without points gets none. Lagging nodes use the balancer they hold now."""
        with self.store.lock:
            ws, rec = self._ws_upstream(upstream, workspace)
            balancers = [{t["target"]: t["weight"] for t in self.store.targets_of(ws, rec)}]
            balancers += [
                {target: weight for target, weight in node.admin.lag.balancer(rec["id"]).values()}
                for node in self.node_apps
                if node.admin.lag is not None
            ]
        wheels = []
        for weights in balancers:
            weighted = {t: w for t, w in weights.items() if w > 0}
            divisor = math.gcd(*weighted.values()) if weighted else 1
            wheels.append({t: w // divisor for t, w in weighted.items()})
        return wheels

    def proxy_upstream(
        self,
        service: str,
        consumer: str | None = None,
        headers: Mapping[str, str | Sequence[str]] | None = None,
        workspace: str = "default",
        route: str | None = None,
    ) -> str:
        """Which upstream a request to ``service`` (name or id) from ``consumer`` (id or
        username, None = anonymous) with ``headers``, matched by ``route`` (one of the
        service's, id or name), is balanced on, after the post-function Kong picks for it
        (see ``proxy.py``). Raises ``ServerlessError`` where Kong answers 500
        (``untrusted_lua = off``, code failing at run time)."""
        with self.store.lock:
            if self._proxy is None:
                self._proxy = ProxyModel(self.store)
            ws = self.store.workspace(workspace)
            return self._proxy.upstream(ws, service, consumer, headers, route)

    def reset(self) -> None:
        """Back to the start state: seed reloaded, calls and faults cleared."""
        with self.store.lock:
            self.store.reset()
            if self._seed:
                self.store.load_seed(self._seed)
            self.history.record()
        with self._calls_lock:
            self.calls.clear()
        self.faults.clear()

    def close(self) -> None:
        """Release requests held by a "timeout" fault."""
        self._stopping.set()

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        started = time.monotonic()
        if request.path.startswith("/_kong_local/") and self.test_controls:
            return self._control(request)(environ, start_response)
        method = request.method.upper()
        query = request.query_string.decode("latin-1")
        with self._calls_lock:
            self.calls.append((method, request.path + (f"?{query}" if query else "")))
        rule = self.faults.take(method, request.path)
        if rule is not None and not rule.after_apply:
            return self._fault(rule, None, environ, started)(environ, start_response)
        reply = self._dispatch(request)
        if rule is not None:
            return self._fault(rule, reply, environ, started)(environ, start_response)
        return self._to_response(reply, started)(environ, start_response)

    def _dispatch(self, request: Request, admin: AdminApi | None = None) -> Reply:
        reply = self._route(request, admin or self.admin)
        if request.method.upper() not in ("GET", "HEAD") and reply.status < 400:
            with self.store.lock:  # a write: lagging nodes see this version `lag` s later
                self.history.record()
        return reply

    def _route(self, request: Request, admin: AdminApi) -> Reply:
        method = request.method.upper()
        args = {k: request.args.get(k, "") for k in request.args}
        segments = [s for s in request.path.split("/") if s]

        def reader() -> tuple[Body, bool]:
            return read_body(request)

        if self.profile.konnect:
            return self._dispatch_konnect(request, method, segments, args, reader)
        try:
            self._check_rbac(request)
            ws_name, segments = self._split_workspace(segments)
            with self.store.lock:
                return admin.handle(ws_name, method, segments, args, reader)
        except ApiError as err:
            return Reply(err.status, err.body)

    def _dispatch_konnect(
        self,
        request: Request,
        method: str,
        segments: list[str],
        args: dict[str, str],
        reader: Callable[[], tuple[Body, bool]],
    ) -> Reply:
        if self.konnect_token is not None:
            auth = request.headers.get("Authorization", "")
            if auth != f"Bearer {self.konnect_token}":
                return problem(401, "Invalid credentials")
        if segments[:2] != ["v2", "control-planes"] or len(segments) < 4:
            return problem(404, "Not found")
        if segments[2] != self.control_plane_id:
            return problem(404, f"control plane {segments[2]} not found")
        with self.store.lock:
            return self.konnect.handle(method, segments[3:], args, reader)

    def _check_rbac(self, request: Request) -> None:
        if self.rbac_token is None:
            return
        token = request.headers.get("Kong-Admin-Token")
        if not token:
            raise ApiError(401, {"message": RBAC_MISSING})
        if token != self.rbac_token:
            raise ApiError(401, {"message": RBAC_WRONG})

    def _split_workspace(self, segments: list[str]) -> tuple[str, list[str]]:
        """EE: ``/{workspace}/upstreams/…``; no prefix = "default" (Kong/docs.konghq.com
        ``app/_includes/md/gateway/admin-api-workspaces.md``)."""
        if not self.enterprise or not segments or segments[0] in ROOT_ROUTES:
            return "default", segments
        if len(segments) >= 2 and segments[1] in ROOT_ROUTES:
            name = segments[0]
            if name != "default" and name not in self.workspaces:
                # EE answer seen by decK users (Kong/deck#158, 2.8.0.0-enterprise-edition).
                raise ApiError(404, {"message": f"Workspace '{name}' not found"})
            return name, segments[1:]
        return "default", segments

    # ------------------------------------------------------------ responses

    def _to_response(self, reply: Reply, started: float) -> Response:
        headers = dict(reply.headers)
        content_type = headers.pop("Content-Type", JSON_UTF8)
        if reply.status == 204 or reply.body is None:
            resp = Response(b"", status=reply.status)
            resp.headers.pop("Content-Type", None)
        else:
            payload = json.dumps(reply.body, ensure_ascii=False, separators=(",", ":"))
            resp = Response(payload.encode("utf-8"), status=reply.status)
            resp.headers["Content-Type"] = content_type
        if not self.profile.konnect:
            resp.headers["Server"] = server_header(self.profile, self.enterprise)
            latency = int((time.monotonic() - started) * 1000)
            resp.headers["X-Kong-Admin-Latency"] = str(latency)
        for key, value in headers.items():
            resp.headers[key] = value
        return resp

    def _fault(
        self, rule: FaultRule, reply: Reply | None, environ: dict[str, Any], started: float
    ) -> Response:
        if rule.mode == "reset":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            # werkzeug treats ConnectionError as "client went away" and writes nothing.
            raise ConnectionResetError("kong-local fault: connection reset")
        if rule.mode == "timeout":
            self._stopping.wait(self.faults.delay)
            return self._to_response(reply or Reply(500, dict(UNEXPECTED)), started)
        if rule.mode == "html":
            resp = Response(HTML_502, status=502, content_type="text/html")
            resp.headers["Server"] = "nginx"
            return resp
        if rule.mode == "truncated":
            full = json.dumps(
                reply.body
                if reply and reply.body is not None
                else {
                    "data": [{"id": str(uuid.uuid4()), "target": "0.0.0.0:8000", "weight": 100}],
                    "next": None,
                }
            )
            cut = full[: max(1, len(full) // 2)].encode()
            resp = Response(cut, status=200)
            resp.headers["Content-Type"] = JSON_UTF8
            return resp
        return self._to_response(Reply(500, dict(UNEXPECTED)), started)  # "500"

    # ------------------------------------------------------------ test controls

    def _control(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p][1:]
        method = request.method.upper()
        body: Any = None
        status = 204
        try:
            if parts == ["faults"] and method == "POST":
                spec = request.get_json(force=True, silent=True) or {}
                if "delay" in spec:
                    self.faults.delay = float(spec["delay"])
                self.faults.fail(
                    int(spec.get("nth", 1)),
                    str(spec.get("mode", "500")),
                    tuple(spec.get("methods", ("POST", "PATCH", "PUT", "DELETE"))),
                    after_apply=bool(spec.get("after_apply", False)),
                    path_contains=spec.get("path_contains"),
                )
                status, body = 201, {"pending": self.faults.pending}
            elif parts == ["faults"] and method == "DELETE":
                self.faults.clear()
            elif parts == ["calls"] and method == "GET":
                with self._calls_lock:
                    status, body = 200, {"calls": [list(c) for c in self.calls]}
            elif parts == ["calls"] and method == "DELETE":
                with self._calls_lock:
                    self.calls.clear()
            elif parts == ["reset"] and method == "POST":
                self.reset()
            elif len(parts) == 2 and parts[0] == "balancer-ready" and method == "POST":
                self.mark_balancer_ready(parts[1])
            elif parts == ["health"] and method == "POST":
                spec = request.get_json(force=True, silent=True) or {}
                self.set_health(spec["upstream"], spec["target"], spec["health"])
            else:
                status, body = 404, {"message": "Not found"}
        except (KeyError, ValueError, TypeError) as err:
            status, body = 400, {"message": str(err)}
        if body is None:
            resp = Response(b"", status=status)
            resp.headers.pop("Content-Type", None)
            return resp
        return Response(json.dumps(body), status=status, content_type="application/json")


class NodeApp:
    """Another node of the same cluster: same database (the store), its own ``node_id`` and
    balancers that trail writes by its lag. Faults and test controls stay with the main node."""

    def __init__(self, local: LocalKong, admin: AdminApi) -> None:
        self.local = local
        self.admin = admin
        self.calls: list[tuple[str, str]] = []

    @property
    def node_id(self) -> str:
        return self.admin.node.node_id

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        started = time.monotonic()
        query = request.query_string.decode("latin-1")
        self.calls.append((request.method.upper(), request.path + (f"?{query}" if query else "")))
        reply = self.local._dispatch(request, self.admin)
        return self.local._to_response(reply, started)(environ, start_response)


def create_wsgi_app(
    profile: str = "3.9",
    *,
    seed: dict[str, Any] | None = None,
    rbac_token: str | None = None,
    workspaces: Iterable[str] = (),
    konnect_token: str | None = None,
    control_plane_id: str = "cp-local",
    dns: Mapping[str, Sequence[str]] | None = None,
    test_controls: bool = False,
    clock: Callable[[], float] = time.time,
    nodes: int = 1,
    lag: float | Sequence[float] = 0.0,
    configuration: Mapping[str, Any] | None = None,
) -> LocalKong:
    """``nodes``: the cluster's size (traditional: extra Admin APIs served by serve_in_thread;
    hybrid: data planes at ``/clustering/data-planes``; Konnect: ``…/nodes``). ``lag``:
    seconds each of the others sees a write late (one value, or one per lagging node).
    ``configuration``: the node's own kong.conf values over the profile's defaults, by
    ``NodeConfiguration`` field (``sidecar.kong_local.configuration``): e.g. ``untrusted_lua``
    (on/off/sandbox), ``disabled_plugins`` (bundled plugins left out of ``plugins``), a short
    ``worker_state_update_frequency`` (``sidecar.kong_local.worker_state``); ``GET /`` shows
    them. An unknown name is a ValueError."""
    return LocalKong(
        get_profile(profile),
        seed=seed,
        rbac_token=rbac_token,
        workspaces=workspaces,
        konnect_token=konnect_token,
        control_plane_id=control_plane_id,
        dns=dns,
        test_controls=test_controls,
        clock=clock,
        nodes=nodes,
        lag=lag,
        configuration=configuration,
    )


class _KongHandler(KeepAliveHandler):
    """Keeps connections alive as Kong does, and leaves ``Server`` to the app
    (``kong/<version>``) instead of "Werkzeug/…"."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())


class _QuietHandler(_KongHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class RunningServer:
    """Threaded werkzeug servers in daemon threads (the node, then any other nodes of its
    cluster); a context manager, ``stop()`` idempotent."""

    def __init__(
        self,
        app: LocalKong,
        server: BaseWSGIServer,
        host: str,
        nodes: Sequence[BaseWSGIServer] = (),
    ) -> None:
        self.app = app
        self._servers = [server, *nodes]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{server.port}"
        self.node_urls = [f"http://{shown}:{s.port}" for s in self._servers]
        self._threads = [
            threading.Thread(
                target=s.serve_forever,
                kwargs={"poll_interval": 0.05},  # so stop() returns quickly
                name=f"kong-local:{s.port}",
                daemon=True,
            )
            for s in self._servers
        ]
        self._stopped = False
        for thread in self._threads:
            thread.start()

    @property
    def admin_url(self) -> str:
        """Where a client points its base URL (Konnect: the control plane's prefix)."""
        if self.app.profile.konnect:
            return f"{self.url}/v2/control-planes/{self.app.control_plane_id}"
        return self.url

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.app.close()
        for server in self._servers:
            server.shutdown()
            close_open_connections(server)
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(
    profile: str = "3.9",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    quiet: bool = True,
    idle_timeout: float | None = None,
    **kwargs: Any,
) -> RunningServer:
    """``nodes=N, lag=…`` (see create_wsgi_app) also serves a traditional cluster's other
    N-1 nodes on their own ports: ``.node_urls`` lists every node, this one first.
    ``idle_timeout``: seconds a kept-alive connection may sit idle before the server closes
    it (default 60, as a load balancer in front of Kong may have less)."""
    app = create_wsgi_app(profile, **kwargs)
    handler: type[_KongHandler] = _QuietHandler if quiet else _KongHandler
    if idle_timeout is not None:
        handler = type("_Handler", (handler,), {"timeout": idle_timeout})
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    others = [
        make_server(host, 0, node, threaded=True, request_handler=handler) for node in app.node_apps
    ]
    return RunningServer(app, server, host, others)


def serve_forever(
    profile: str,
    *,
    host: str,
    port: int,
    on_ready: Callable[[str], None] = lambda url: None,
    on_nodes: Callable[[list[str]], None] = lambda urls: None,
    quiet: bool = False,
    **kwargs: Any,
) -> None:
    """Blocking variant for the CLI: logs requests, returns on KeyboardInterrupt. Other nodes
    of the cluster (``nodes``) listen on the following ports (any free port when ``port`` 0)."""
    app = create_wsgi_app(profile, **kwargs)
    handler = _QuietHandler if quiet else _KongHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    others = [
        make_server(host, port and port + i, node, threaded=True, request_handler=handler)
        for i, node in enumerate(app.node_apps, start=1)
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in others]
    for thread in threads:
        thread.start()
    shown = f"[{host}]" if ":" in host else host
    on_ready(f"http://{shown}:{server.port}")
    if others:
        on_nodes([f"http://{shown}:{s.port}" for s in others])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
        for other in others:
            other.shutdown()
            close_open_connections(other)
            other.server_close()
        close_open_connections(server)
        server.server_close()
