"""Upsert a folder of canary configs into a Kayenta, by name: POST new, PUT changed, skip equal.

Kayenta has no upsert and no lookup by name: ids are UUIDs it makes up, and names are only
unique *within an application* (the storage services' ``checkForDuplicateCanaryConfig``). So a
local config is matched to the stored config with the same name that shares one of its
applications, and the stored config is fetched and compared before anything is written. A
second run against an unchanged Kayenta therefore writes nothing.

"Equal" ignores what Kayenta itself adds on the way through Jackson: ``id`` and the
``created``/``updated`` timestamps, ``serviceType`` on queries, and empty defaults (``[]``,
``{}``, null) for keys the local file leaves out. Anything else a person changed in Deck is a
difference, and the library wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar.kayenta.rest import KayentaClient, KayentaError
from sidecar.kayenta.validate import validate_config

# CanaryConfigController.canaryConfigNamePattern, "[A-Z,a-z,0-9,\-,\_]*" (commas are literal).
KAYENTA_NAME = re.compile(r"[A-Z,a-z,0-9,\-,_]*")
SERVER_FIELDS = frozenset(
    {"id", "createdTimestamp", "createdTimestampIso", "updatedTimestamp", "updatedTimestampIso"}
)
DERIVED_FIELDS = frozenset({"serviceType"})  # CanaryMetricSetQueryConfig.getServiceType()


class SyncError(Exception):
    """The local configs cannot be synced as they are; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class LocalConfig:
    name: str
    path: Path
    body: dict[str, Any]

    @property
    def applications(self) -> list[str]:
        return list(self.body.get("applications") or [])


@dataclass
class SyncResult:
    name: str
    action: str  # "create" | "update" | "unchanged" | "failed"
    id: str | None = None
    changes: list[str] = field(default_factory=list)  # JSON paths that differ (update)
    error: str | None = None
    done: bool = False  # the write was made (False in a dry run)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "id": self.id,
            "changes": self.changes,
            "error": self.error,
            "done": self.done,
        }


def load_configs(directory: Path, application: str | None = None) -> list[LocalConfig]:
    """Every ``*.json`` in ``directory``, validated; ``application`` replaces their
    ``applications``. SyncError lists every problem, so nothing is half-synced."""
    problems: list[str] = []
    configs: list[LocalConfig] = []
    paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not paths:
        raise SyncError([f"{directory}: no *.json canary configs"])
    if application is not None and not application.strip():
        raise SyncError(["--application must not be empty"])
    for path in paths:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: cannot read JSON: {exc}")
            continue
        if application is not None and isinstance(body, dict):
            body = {**body, "applications": [application]}
        problems += [f"{path}: {e}" for e in validate_config(body)]
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            continue
        name = body["name"]
        if not KAYENTA_NAME.fullmatch(name):
            problems.append(f"{path}: $.name: Kayenta refuses {name!r} (letters, digits, - and _)")
        if not body.get("applications"):
            problems.append(f"{path}: $.applications: Kayenta needs at least one application")
        configs.append(LocalConfig(name, path, body))
    seen: dict[str, Path] = {}
    for config in configs:
        if config.name in seen:
            other = seen[config.name]
            problems.append(f"{config.path}: name {config.name!r} is also used by {other}")
        seen.setdefault(config.name, config.path)
    if problems:
        raise SyncError(problems)
    return configs


def differences(local: Any, remote: Any, path: str = "$") -> list[str]:
    """JSON paths where ``remote`` does not hold ``local`` (Kayenta's own additions ignored)."""
    if isinstance(local, Mapping) and isinstance(remote, Mapping):
        out: list[str] = []
        for key, value in local.items():
            if path == "$" and key in SERVER_FIELDS:
                continue
            if key not in remote:
                if not _empty(value):
                    out.append(f"{path}.{key}")
                continue
            out += differences(value, remote[key], f"{path}.{key}")
        for key, value in remote.items():
            extra = key not in local and not _empty(value)
            if extra and key not in DERIVED_FIELDS and not (path == "$" and key in SERVER_FIELDS):
                out.append(f"{path}.{key}")
        return out
    if isinstance(local, list) and isinstance(remote, list):
        if len(local) != len(remote):
            return [path]
        return [d for i, (a, b) in enumerate(zip(local, remote, strict=True))
                for d in differences(a, b, f"{path}[{i}]")]  # fmt: skip
    if isinstance(local, bool) or isinstance(remote, bool):
        return [] if local is remote else [path]
    return [] if local == remote else [path]  # 60 == 60.0: Jackson writes Doubles


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _match(config: LocalConfig, summaries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    apps = set(config.applications)
    return [
        s
        for s in summaries
        if s.get("name") == config.name and apps & set(s.get("applications") or ())
    ]


def _summaries(client: KayentaClient, applications: Sequence[str]) -> list[dict[str, Any]]:
    """The index, with names filled in where a store's listing leaves them out."""
    out = []
    for summary in client.list_configs(applications):
        if not isinstance(summary.get("id"), str):
            continue
        if "name" not in summary or "applications" not in summary:
            stored = client.get_config(summary["id"])
            summary = {**summary, "name": stored.get("name"),
                       "applications": stored.get("applications") or []}  # fmt: skip
        out.append(summary)
    return out


def sync(
    client: KayentaClient, configs: Sequence[LocalConfig], *, dry_run: bool = False
) -> list[SyncResult]:
    """One result per config, in name order. KayentaError when the index cannot be listed;
    a refused write is that config's ``failed`` result and the others still go ahead."""
    applications = sorted({app for c in configs for app in c.applications})
    summaries = _summaries(client, applications)
    results = []
    for config in sorted(configs, key=lambda c: c.name):
        result = _one(client, config, _match(config, summaries), dry_run)
        results.append(result)
    return results


def _one(
    client: KayentaClient,
    config: LocalConfig,
    matches: Sequence[Mapping[str, Any]],
    dry_run: bool,
) -> SyncResult:
    if len(matches) > 1:
        ids = ", ".join(str(m["id"]) for m in matches)
        return SyncResult(config.name, "failed", error=f"several stored configs match: {ids}")
    try:
        if not matches:
            if dry_run:
                return SyncResult(config.name, "create")
            return SyncResult(config.name, "create", client.create_config(config.body), done=True)
        config_id = str(matches[0]["id"])
        stored = client.get_config(config_id)
        changes = differences(config.body, stored)
        if not changes:
            return SyncResult(config.name, "unchanged", config_id)
        if dry_run:
            return SyncResult(config.name, "update", config_id, changes)
        # PUT stores the body as sent: keep the creation time Kayenta gave it.
        kept = {k: stored[k] for k in ("createdTimestamp", "createdTimestampIso") if k in stored}
        client.update_config(config_id, {**config.body, **kept, "id": config_id})
        return SyncResult(config.name, "update", config_id, changes, done=True)
    except KayentaError as exc:
        return SyncResult(config.name, "failed", error=str(exc))
