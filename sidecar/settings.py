"""Settings: one frozen object, built once at start-up.

``load_settings()`` is the only place that reads the environment or a config
file; everything else receives the values it needs. Sources, later wins:
defaults < YAML file (``--config`` / ``KONG_CANARY_CONFIG``) < ``KONG_CANARY_*``
environment < command-line options. Every bad value is reported, not just the
first, so an operator fixes a broken deployment in one go.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ENV_PREFIX = "KONG_CANARY_"
ROLES = ("read", "write", "admin")


class SettingsError(ValueError):
    """All problems found in one load, one line each, naming the setting and the rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class KongSettings:
    """How to reach Kong's Admin API. ``admin_url=None`` means the embedded local server."""

    admin_url: str | None = None
    workspace: str | None = None  # Enterprise: prefix every path with /{workspace}
    admin_token: str | None = field(default=None, repr=False)  # RBAC: Kong-Admin-Token
    konnect_token: str | None = field(default=None, repr=False)  # Konnect: Bearer
    konnect_control_plane_id: str | None = None
    flavour: str | None = None  # "2.x" | "3.x" | "konnect"; None = detect from GET /
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    write_timeout: float = 5.0
    pool_timeout: float = 2.0
    max_connections: int = 64
    # Admin API requests in flight at once from this process, to every Kong node together
    # (the sidecar's own parallelism towards Kong, issue 13 item 16); the rest queue.
    max_concurrency: int = 8
    read_retries: int = 2  # idempotent reads only
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_verify: bool = True  # False only by explicit opt-out (self-signed admin endpoints)


@dataclass(frozen=True)
class ApiToken:
    """A caller of the sidecar's API. ``upstreams`` are fnmatch patterns it may touch."""

    name: str
    token: str = field(repr=False)
    role: str = "write"
    upstreams: tuple[str, ...] = ("*",)

    def allows(self, upstream: str) -> bool:
        return any(fnmatch.fnmatchcase(upstream, pattern) for pattern in self.upstreams)

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Settings:
    bind: str = "127.0.0.1:8080"
    workers: int = 2
    # Per worker: threads for Kong-bound requests, and how many more may wait for one
    # before the answer is 503 + Retry-After (/healthz and /metrics have threads of their own).
    threads: int = 4
    request_queue: int = 64
    # Open client connections per worker; at the limit the oldest one still being read (or
    # idle between requests) is closed for the new one.
    connections: int = 1000
    # Seconds a client has to send a request head (from its first byte or the accept), and
    # then its body; also how long a thread waits on a client that does not read its answer.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    public_url: str | None = None  # absolute base for links handed to Orca
    log_level: str = "info"
    max_shifted_percent: float = 50.0  # ceiling on canary + baseline
    tokens: tuple[ApiToken, ...] = ()
    kong: KongSettings = field(default_factory=KongSettings)
    # gunicorn's worker heartbeat files; None = its default (/tmp), which a read-only root
    # filesystem lacks unless a writable volume is mounted there (the chart mounts one).
    worker_tmp_dir: str | None = None
    kong_local_profile: str = "3.9"  # profile of the embedded server when no Kong is given
    lease_default: float = 3600.0  # seconds a non-stable split lives without renewal
    lease_max: float = 86400.0
    lease_check_interval: float = 15.0  # how often expired leases are looked for
    lock_ttl: float = 30.0  # seconds an upstream's lock in Kong lives unless its holder renews
    lock_wait: float = 10.0  # seconds a change waits for another one on the same upstream
    # Cohorts (issue 14): how often ACL groups are re-resolved to consumer ids (0 = only on
    # every change of the cohorts).
    cohort_refresh_seconds: float = 60.0
    ramp_secret: str | None = field(default=None, repr=False)  # signs ramp ids
    # Admin API URLs of every Kong node whose balancer ``wait`` checks (default: the one
    # at kong_admin_url; on a hybrid control plane: its data planes' config hashes instead).
    propagation_nodes: tuple[str, ...] = ()
    kong_is_embedded: bool = False  # set by ``serve`` once it started the embedded server
    # Per-variant gateway metrics: http-log on Kong's services while a canary runs.
    gateway_metrics: bool = False  # switch it on/off with the split (else only by endpoint)
    gateway_ingest_url: str | None = None  # base URL Kong's proxies reach us at (public_url)
    gateway_ingest_token: str | None = field(default=None, repr=False)  # one of ``tokens``
    gateway_max_routes: int = 50  # route label values per upstream per process; then "other"
    # Seconds a change that starts a canary waits for a new window to be live in Kong before
    # it moves traffic (sidecar.gateway.window); 503 window_not_live, nothing moved, after.
    gateway_live_wait: float = 20.0
    # Request bodies (413 beyond). JSON routes: the largest body the schemas admit (1,000
    # targets of 512 characters per variant) is ~1.6 MB. ``/v1/kong-log``: the window asks
    # Kong for batches of 200 entries (``MAX_BATCH`` 1,000); recorded entries are ~2 kB, one
    # with large headers tens of kB.
    max_body_bytes: int = 2 * 1024 * 1024
    kong_log_max_body_bytes: int = 32 * 1024 * 1024

    def ramp_key(self) -> bytes:
        """The HMAC key for ramp ids. Without an explicit secret it derives from the API
        tokens, which every replica shares; rotating tokens then invalidates running ramps."""
        if self.ramp_secret:
            return self.ramp_secret.encode()
        material = "\n".join(sorted(t.token for t in self.tokens)) or "kong-canary-embedded"
        return hashlib.sha256(("kong-canary-ramp\n" + material).encode()).digest()

    @property
    def gateway_ingest_base(self) -> str | None:
        return self.gateway_ingest_url or self.public_url

    @property
    def embedded_kong(self) -> bool:
        return self.kong.admin_url is None or self.kong_is_embedded


# name -> (section, attribute, parser). Sections: "" for Settings, "kong" for KongSettings.
def _str(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("expected a string")
    return str(value).strip()


def _opt_str(value: Any) -> str | None:
    text = _str(value)
    return text or None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError("expected a number") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _url_list(value: Any) -> tuple[str, ...]:
    """A YAML list, or a comma-separated string (environment)."""
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(u for u in (_str(item) for item in items) if u)


_FIELDS: dict[str, tuple[str, str, Any]] = {
    "bind": ("", "bind", _str),
    "workers": ("", "workers", _int),
    "threads": ("", "threads", _int),
    "request_queue": ("", "request_queue", _int),
    "connections": ("", "connections", _int),
    "header_timeout": ("", "header_timeout", _float),
    "body_timeout": ("", "body_timeout", _float),
    "public_url": ("", "public_url", _opt_str),
    "log_level": ("", "log_level", _str),
    "max_shifted_percent": ("", "max_shifted_percent", _float),
    "kong_local_profile": ("", "kong_local_profile", _str),
    "worker_tmp_dir": ("", "worker_tmp_dir", _opt_str),
    "lease_default": ("", "lease_default", _float),
    "lease_max": ("", "lease_max", _float),
    "lease_check_interval": ("", "lease_check_interval", _float),
    "lock_ttl": ("", "lock_ttl", _float),
    "lock_wait": ("", "lock_wait", _float),
    "cohort_refresh_seconds": ("", "cohort_refresh_seconds", _float),
    "ramp_secret": ("", "ramp_secret", _opt_str),
    "propagation_nodes": ("", "propagation_nodes", _url_list),
    "gateway_metrics": ("", "gateway_metrics", _bool),
    "gateway_ingest_url": ("", "gateway_ingest_url", _opt_str),
    "gateway_ingest_token": ("", "gateway_ingest_token", _opt_str),
    "gateway_max_routes": ("", "gateway_max_routes", _int),
    "gateway_live_wait": ("", "gateway_live_wait", _float),
    "max_body_bytes": ("", "max_body_bytes", _int),
    "kong_log_max_body_bytes": ("", "kong_log_max_body_bytes", _int),
    "kong_admin_url": ("kong", "admin_url", _opt_str),
    "kong_workspace": ("kong", "workspace", _opt_str),
    "kong_admin_token": ("kong", "admin_token", _opt_str),
    "konnect_token": ("kong", "konnect_token", _opt_str),
    "konnect_control_plane_id": ("kong", "konnect_control_plane_id", _opt_str),
    "kong_flavour": ("kong", "flavour", _opt_str),
    "kong_connect_timeout": ("kong", "connect_timeout", _float),
    "kong_read_timeout": ("kong", "read_timeout", _float),
    "kong_write_timeout": ("kong", "write_timeout", _float),
    "kong_read_retries": ("kong", "read_retries", _int),
    "kong_max_connections": ("kong", "max_connections", _int),
    "kong_max_concurrency": ("kong", "max_concurrency", _int),
    "kong_ca_bundle": ("kong", "ca_bundle", _opt_str),
    "kong_client_cert": ("kong", "client_cert", _opt_str),
    "kong_client_key": ("kong", "client_key", _opt_str),
    "kong_tls_verify": ("kong", "tls_verify", _bool),
}
_TOKEN_KEYS = ("tokens", "tokens_file")
LOG_LEVELS = ("debug", "info", "warning", "error")
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]", "*")  # bind hosts that listen on every address
FLAVOURS = ("2.x", "3.x", "konnect")
MIN_BODY_BYTES = 64 * 1024  # below this a valid split body with a few targets would not fit
MAX_BODY_BYTES = 1024 * 1024 * 1024  # a body is read into memory whole
LOCAL_PROFILES = ("2.8", "3.4", "3.9", "konnect", "dbless")


def parse_tokens(text: str, *, source: str) -> list[ApiToken]:
    """Parse ``name[:role][@pattern|pattern]=token`` items separated by commas or newlines.

    Roles: ``read`` (alias ``ro``), ``write`` (default), ``admin``. Patterns limit the
    upstreams a token may touch (fnmatch, ``|``-separated).
    """
    tokens: list[ApiToken] = []
    for number, raw in enumerate(text.replace("\n", ",").split(","), start=1):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        if "=" not in item:
            raise ValueError(f"{source}: item {number} is not of the form name=token")
        head, token = item.split("=", 1)
        head, token = head.strip(), token.strip()
        patterns: tuple[str, ...] = ("*",)
        if "@" in head:
            head, scope = head.split("@", 1)
            patterns = tuple(p.strip() for p in scope.split("|") if p.strip()) or ("*",)
        name, _, role = head.partition(":")
        role = {"ro": "read", "rw": "write", "": "write"}.get(role.strip(), role.strip())
        if not name.strip():
            raise ValueError(f"{source}: item {number} has an empty name")
        if role not in ROLES:
            raise ValueError(
                f"{source}: token {name!r} has role {role!r}; use read, write or admin"
            )
        if len(token) < 16:
            raise ValueError(f"{source}: token {name!r} is shorter than 16 characters")
        tokens.append(ApiToken(name.strip(), token, role, patterns))
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: token names must be unique")
    return tokens


def _validate(settings: Settings, problems: list[str]) -> None:
    kong = settings.kong
    host, _, port = settings.bind.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        problems.append(f"bind: {settings.bind!r} must be HOST:PORT")
    if settings.workers < 1:
        problems.append("workers: must be at least 1")
    if not 1 <= settings.threads <= 64:
        problems.append("threads: must be between 1 and 64")
    if not 0 <= settings.request_queue <= 1000:
        problems.append("request_queue: must be between 0 and 1000")
    if not 16 <= settings.connections <= 100000:
        problems.append("connections: must be between 16 and 100000")
    for name in ("header_timeout", "body_timeout"):
        if not 1 <= getattr(settings, name) <= 600:
            problems.append(f"{name}: must be between 1 and 600 seconds")
    if settings.log_level not in LOG_LEVELS:
        problems.append(f"log_level: must be one of {', '.join(LOG_LEVELS)}")
    if not 0 <= settings.max_shifted_percent <= 100:
        problems.append("max_shifted_percent: must be between 0 and 100")
    if settings.lease_default <= 0 or settings.lease_max <= 0:
        problems.append("lease_default and lease_max: must be positive numbers of seconds")
    elif settings.lease_default > settings.lease_max:
        problems.append("lease_default: must not exceed lease_max")
    if not 1 <= settings.lease_check_interval <= 300:
        problems.append("lease_check_interval: must be between 1 and 300 seconds")
    if settings.cohort_refresh_seconds != 0 and not 5 <= settings.cohort_refresh_seconds <= 3600:
        problems.append("cohort_refresh_seconds: must be 0 (off) or between 5 and 3600 seconds")
    if settings.public_url is None and not settings.embedded_kong and host in WILDCARD_HOSTS:
        # Links handed to Orca (ramp statusUrl/cancelUrl/Location) never come from the
        # request's Host; without public_url they name the listening socket (api/ramps.py).
        problems.append(
            f"public_url: required when bind listens on every address ({settings.bind!r}): "
            "the ramp status and cancel URLs handed to Orca are built from it, never from "
            "the request's Host header (KONG_CANARY_PUBLIC_URL or --public-url)"
        )
    if not 5 <= settings.lock_ttl <= 600:
        problems.append("lock_ttl: must be between 5 and 600 seconds")
    if not 0 <= settings.lock_wait <= 60:
        problems.append("lock_wait: must be between 0 and 60 seconds")
    if settings.ramp_secret is not None and len(settings.ramp_secret) < 16:
        problems.append("ramp_secret: must be at least 16 characters")
    for url in settings.propagation_nodes:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"propagation_nodes: {url!r} must be an absolute http(s) URL")
    for name in ("max_body_bytes", "kong_log_max_body_bytes"):
        if not MIN_BODY_BYTES <= getattr(settings, name) <= MAX_BODY_BYTES:
            problems.append(f"{name}: must be between {MIN_BODY_BYTES} and {MAX_BODY_BYTES} bytes")
    if settings.kong_local_profile not in LOCAL_PROFILES:
        problems.append(f"kong_local_profile: must be one of {', '.join(LOCAL_PROFILES)}")
    _validate_gateway(settings, problems)
    for name, url in (
        ("public_url", settings.public_url),
        ("kong_admin_url", kong.admin_url),
        ("gateway_ingest_url", settings.gateway_ingest_url),
    ):
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append(f"{name}: {url!r} must be an absolute http(s) URL")
    if kong.flavour is not None and kong.flavour not in FLAVOURS:
        problems.append(f"kong_flavour: must be one of {', '.join(FLAVOURS)}")
    if kong.flavour == "konnect" and not (kong.konnect_token and kong.konnect_control_plane_id):
        problems.append("konnect_token and konnect_control_plane_id: both are required for Konnect")
    for name in ("connect_timeout", "read_timeout", "write_timeout"):
        if getattr(kong, name) <= 0:
            problems.append(f"kong_{name}: must be greater than 0 seconds")
    if not 0 <= kong.read_retries <= 10:
        problems.append("kong_read_retries: must be between 0 and 10")
    if kong.max_connections < 1:
        problems.append("kong_max_connections: must be at least 1")
    if not 1 <= kong.max_concurrency <= 256:
        problems.append("kong_max_concurrency: must be between 1 and 256")
    if (kong.client_cert is None) != (kong.client_key is None):
        problems.append("kong_client_cert and kong_client_key: give both for mTLS, or neither")
    for name in ("ca_bundle", "client_cert", "client_key"):
        path = getattr(kong, name)
        if path is not None and not Path(path).is_file():
            problems.append(f"kong_{name}: file {path!r} does not exist")
    if settings.worker_tmp_dir is not None and not Path(settings.worker_tmp_dir).is_dir():
        problems.append(f"worker_tmp_dir: directory {settings.worker_tmp_dir!r} does not exist")
    if not settings.tokens and not settings.embedded_kong:
        # The embedded demo mode generates a token and prints it; a real Kong never runs open.
        problems.append(
            "tokens: no API token configured; set KONG_CANARY_TOKENS or KONG_CANARY_TOKENS_FILE"
        )


def _validate_gateway(settings: Settings, problems: list[str]) -> None:
    """The ingest token goes into Kong's plugin config and comes back on every batch: it
    must be a token we accept for writes, or every batch would be refused (never echoed)."""
    token = settings.gateway_ingest_token
    if token is not None:
        match = next((t for t in settings.tokens if t.token == token), None)
        if match is None:
            problems.append(
                "gateway_ingest_token: must be one of the configured API tokens "
                "(KONG_CANARY_TOKENS / TOKENS_FILE)"
            )
        elif not match.can("write"):
            problems.append(f"gateway_ingest_token: token {match.name!r} needs role write")
    if not 1 <= settings.gateway_max_routes <= 1000:
        problems.append("gateway_max_routes: must be between 1 and 1000")
    if not 0 <= settings.gateway_live_wait <= 120:
        problems.append("gateway_live_wait: must be between 0 and 120 seconds")
    if settings.gateway_metrics:
        if token is None:
            problems.append("gateway_ingest_token: required when gateway_metrics is on")
        if settings.gateway_ingest_base is None:
            problems.append(
                "gateway_ingest_url: required when gateway_metrics is on (or set public_url)"
            )


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from file, environment and explicit overrides; raise SettingsError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []

    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError([f"config: cannot read {path}: {exc}"]) from None
        if not isinstance(loaded, dict):
            raise SettingsError([f"config: {path} must hold a mapping of settings"])
        for key, value in loaded.items():
            if key in _FIELDS or key in _TOKEN_KEYS:
                values[key] = value
            else:
                problems.append(f"{key}: unknown setting (in {path})")

    for key in (*_FIELDS, *_TOKEN_KEYS):
        env_key = ENV_PREFIX + key.upper()
        if env_key in env:
            values[key] = env[env_key]
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value

    top: dict[str, Any] = {}
    kong: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in _FIELDS:
            continue
        section, attribute, parse = _FIELDS[key]
        try:
            parsed = parse(raw)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        (kong if section == "kong" else top)[attribute] = parsed

    tokens: list[ApiToken] = []
    try:
        if "tokens" in values:
            raw = values["tokens"]
            tokens += (
                _tokens_from_yaml(raw)
                if isinstance(raw, list)
                else parse_tokens(str(raw), source="tokens")
            )
        if values.get("tokens_file"):
            file = Path(str(values["tokens_file"]))
            try:
                text = file.read_text()
            except OSError as exc:
                raise ValueError(f"tokens_file: cannot read {file}: {exc.strerror}") from None
            tokens += parse_tokens(text, source="tokens_file")
    except ValueError as exc:
        problems.append(str(exc))
    if len({t.name for t in tokens}) != len(tokens):
        problems.append("tokens: the same token name is configured twice")
    problems.extend(_shared_token_values(tokens))

    settings = Settings(
        **top,
        tokens=tuple(tokens),
        kong=KongSettings(**kong),
    )
    _validate(settings, problems)
    if problems:
        raise SettingsError(problems)
    return settings


def _shared_token_values(tokens: Sequence[ApiToken]) -> list[str]:
    """One token value under two names is refused (issue 13 item 13): authentication would
    pick one of the names, so audit lines, role and upstream scope could be the other's.
    The problem names the tokens, never the value."""
    names_by_value: dict[str, list[str]] = {}
    for token in tokens:
        names_by_value.setdefault(token.token, []).append(token.name)
    return [
        "tokens: the same token value is configured under the names "
        f"{', '.join(repr(n) for n in names)}; give every name its own token"
        for names in names_by_value.values()
        if len(names) > 1
    ]


def _tokens_from_yaml(items: list[Any]) -> list[ApiToken]:
    tokens = []
    for index, item in enumerate(items):
        where = f"tokens[{index}]"
        if not isinstance(item, dict) or not {"name", "token"} <= item.keys():
            raise ValueError(f"{where}: needs name and token")
        unknown = set(item) - {"name", "token", "role", "upstreams"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        spec = f"{item['name']}:{item.get('role', 'write')}"
        if item.get("upstreams"):
            spec += "@" + "|".join(str(p) for p in item["upstreams"])
        tokens += parse_tokens(f"{spec}={item['token']}", source=where)
    return tokens


def cli_log_level(environ: Mapping[str, str] | None = None) -> str:
    """The log level for CLI commands that do not load the full settings (a broken token
    setting must not stop ``kong-canary spinnaker render``); unknown values mean info."""
    env = os.environ if environ is None else environ
    level = env.get(ENV_PREFIX + "LOG_LEVEL", "").strip().lower()
    return level if level in LOG_LEVELS else "info"


def replace_kong(settings: Settings, **changes: Any) -> Settings:
    """A copy with some Kong settings changed (the embedded server fills in admin_url)."""
    return dataclasses.replace(settings, kong=dataclasses.replace(settings.kong, **changes))
