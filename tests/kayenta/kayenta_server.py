"""A local Kayenta canary-config API that refuses what the real one refuses.

Behaviour, from spinnaker/kayenta (``kayenta-web/.../controllers/CanaryConfigController.java``,
the indexed storage services, e.g. ``kayenta-s3/.../S3StorageService.java``, and
``kayenta-core/.../index/CanaryConfigIndex.java``):

- POST and PUT run ``validateNameAndApplicationAttributes``: a name is required and must match
  ``[A-Z,a-z,0-9,\\-,\\_]*`` (so no spaces; commas are literal), and at least one application.
- POST gives a config without ``id`` a random UUID, sets ``createdTimestamp`` (and
  ``updatedTimestamp`` to it) unless sent, and refuses an id that exists. PUT sets
  ``updatedTimestamp`` to now, refuses an id that does not exist, and stores the body as sent.
- ``checkForDuplicateCanaryConfig``: a name already used by *another* id in any of the
  config's applications is refused (names are unique per application, not globally).
- ``GET /canaryConfig`` returns index summaries ``{id, name, updatedTimestamp,
  updatedTimestampIso, applications}`` for the configs sharing one of the ``application``
  params (all without). Unknown ``configurationAccountName``: "Unable to resolve account X.".
- Refusals (IllegalArgumentException) are 400, a missing config on GET is 404, both with
  Spring's error body; POST/PUT are ``consumes = application/json`` (else 415).
- Configs come back the way Jackson writes a ``CanaryConfig``: unknown keys dropped,
  ``serviceType`` added to every query.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

REASONS = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           415: "Unsupported Media Type"}  # fmt: skip
NAME_PATTERN = re.compile(r"[A-Z,a-z,0-9,\-,_]*")
CANARY_CONFIG_FIELDS = (
    "id", "createdTimestamp", "updatedTimestamp", "createdTimestampIso", "updatedTimestampIso",
    "name", "description", "configVersion", "applications", "judge", "metrics", "templates",
    "classifier",
)  # fmt: skip


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass
class LocalKayenta:
    accounts: tuple[str, ...] = ("in-memory-store",)
    clock: Callable[[], int] = lambda: 1_700_000_000_000
    stores: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    user_agents: list[str | None] = field(default_factory=list)
    # Test fault: POST/PUT of these names fail as a storage error does (IllegalArgumentException).
    refuse_names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name in self.accounts:
            self.stores.setdefault(name, {})
        self._lock = threading.Lock()

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in ("POST", "PUT", "DELETE")]

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        self.calls.append((request.method, request.full_path.rstrip("?")))
        self.user_agents.append(request.headers.get("User-Agent"))
        try:
            with self._lock:
                status, body = self._handle(request)
        except Refused as exc:
            status, body = (
                exc.status,
                {
                    "timestamp": _iso(self.clock()),
                    "status": exc.status,
                    "error": REASONS.get(exc.status, "Error"),
                    "message": exc.message,
                    "path": request.path,
                },
            )
        if status == 204:
            return Response(status=204)(environ, start_response)
        return Response(json.dumps(body), status=status, mimetype="application/json")(
            environ, start_response
        )

    def _handle(self, request: Request) -> tuple[int, Any]:
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] != "canaryConfig" or len(parts) > 2:
            raise Refused(404, "No static resource")
        store = self._store(request.args.get("configurationAccountName"))
        method = request.method
        if len(parts) == 1 and method == "GET":
            return 200, self._list(store, request.args.getlist("application"))
        if len(parts) == 1 and method == "POST":
            return 200, {"canaryConfigId": self._create(store, self._json(request))}
        if len(parts) == 2:
            config_id = parts[1]
            if method == "GET":
                if config_id not in store:
                    raise Refused(404, f"No file at path canary_config/{config_id}.")
                return 200, store[config_id]
            if method == "PUT":
                body = self._json(request)
                return 200, {"canaryConfigId": self._update(store, config_id, body)}
            if method == "DELETE":
                if store.pop(config_id, None) is None:
                    raise Refused(404, f"No file at path canary_config/{config_id}.")
                return 204, None
        raise Refused(405, f"Request method '{method}' is not supported")

    def _store(self, account: str | None) -> dict[str, dict[str, Any]]:
        if not account:
            return self.stores[self.accounts[0]]
        if account not in self.stores:
            raise Refused(400, f"Unable to resolve account {account}.")
        return self.stores[account]

    @staticmethod
    def _json(request: Request) -> dict[str, Any]:
        if request.mimetype != "application/json":
            raise Refused(415, f"Content-Type '{request.mimetype}' is not supported")
        try:
            body = json.loads(request.get_data())
        except ValueError:
            raise Refused(400, "JSON parse error") from None
        if not isinstance(body, dict):
            raise Refused(400, "JSON parse error: expected a CanaryConfig object")
        return body

    # ------------------------------------------------------------------ controller

    def _validate(self, config: dict[str, Any]) -> None:
        name = config.get("name")
        if name in self.refuse_names:
            raise Refused(400, f"Unable to store canary config {name}: storage refused it")
        if not name:
            raise Refused(400, "Canary config must specify a name.")
        if not config.get("applications"):
            raise Refused(400, "Canary config must specify at least one application.")
        if not NAME_PATTERN.fullmatch(name):
            raise Refused(
                400,
                f"Canary config cannot be named '{name}'. Names must contain only letters, "
                "numbers, dashes (-) and underscores (_).",
            )

    def _create(self, store: dict[str, dict[str, Any]], config: dict[str, Any]) -> str:
        created = config.get("createdTimestamp") or self.clock()
        config = {**config, "createdTimestamp": created}
        config.setdefault("updatedTimestamp", created)
        config["createdTimestampIso"] = _iso(config["createdTimestamp"])
        config["updatedTimestampIso"] = _iso(config["updatedTimestamp"])
        config.setdefault("id", None)
        config["id"] = config["id"] or str(uuid.uuid4())
        self._validate(config)
        if config["id"] in store:
            raise Refused(400, f"Canary config '{config['id']}' already exists.")
        self._check_duplicate(store, config)
        store[config["id"]] = self._as_jackson_writes(config)
        return config["id"]

    def _update(
        self, store: dict[str, dict[str, Any]], config_id: str, config: dict[str, Any]
    ) -> str:
        now = self.clock()
        config = {**config, "updatedTimestamp": now, "updatedTimestampIso": _iso(now)}
        self._validate(config)
        if config_id not in store:
            raise Refused(400, f"Canary config '{config_id}' does not exist.")
        config["id"] = config.get("id") or config_id
        self._check_duplicate(store, {**config, "id": config_id})
        store[config_id] = self._as_jackson_writes(config)
        return config_id

    def _check_duplicate(self, store: dict[str, dict[str, Any]], config: dict[str, Any]) -> None:
        for summary in self._list(store, config["applications"]):
            if summary["name"] == config["name"] and summary["id"] != config["id"]:
                raise Refused(
                    400,
                    f"Canary config with name '{config['name']}' already exists in the scope "
                    f"of applications {config['applications']}.",
                )

    @staticmethod
    def _list(store: dict[str, dict[str, Any]], applications: list[str]) -> list[dict[str, Any]]:
        wanted = set(applications)
        return [
            {
                "id": c["id"],
                "name": c["name"],
                "updatedTimestamp": c["updatedTimestamp"],
                "updatedTimestampIso": c["updatedTimestampIso"],
                "applications": c["applications"],
            }
            for c in store.values()
            if not wanted or wanted & set(c["applications"])
        ]

    @staticmethod
    def _as_jackson_writes(config: dict[str, Any]) -> dict[str, Any]:
        """FAIL_ON_UNKNOWN_PROPERTIES off drops unknown keys; queries gain ``serviceType``."""
        out = {k: config[k] for k in CANARY_CONFIG_FIELDS if config.get(k) is not None}
        out["metrics"] = [
            {**m, "query": {**m["query"], "serviceType": m["query"].get("type")}}
            if isinstance(m, dict) and isinstance(m.get("query"), dict)
            else m
            for m in out.get("metrics") or []
        ]
        return json.loads(json.dumps(out))


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Tests read ``LocalKayenta.calls``; an access log would only be noise."""


@contextmanager
def serve_kayenta(
    kayenta: LocalKayenta | None = None, *, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, LocalKayenta]]:
    """(base URL, state) of a server on 127.0.0.1 and a free port, stopped on exit;
    https with ``tls`` (a server context)."""
    app = kayenta or LocalKayenta()
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_Quiet, ssl_context=tls
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
