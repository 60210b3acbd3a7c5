"""Kayenta's canary-config REST API, as ``kayenta-web``'s ``CanaryConfigController`` serves it.

- ``GET /canaryConfig?application=A&application=B`` lists *summaries* (``id``, ``name``,
  ``updatedTimestamp(Iso)``, ``applications``; the storage services' config index), not configs.
- ``GET /canaryConfig/{id}`` one config; ``POST /canaryConfig`` answers ``{canaryConfigId}`` and
  refuses an existing id; ``PUT /canaryConfig/{id}`` refuses a missing one.
- Every call takes ``configurationAccountName`` (none = the first CONFIGURATION_STORE account).
  ``storageAccountName`` belongs to the canary-run endpoints, not to these.
- Refusals are ``IllegalArgumentException``s, which kork's ``GenericExceptionHandlers`` turn into
  400 with Spring's error body (``{"status", "error", "message", "path"}``); ``NotFoundException``
  is 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from sidecar.outbound import Outbound, build_client

CONFIG_PATH = "/canaryConfig"
# Kayenta answers a sync's calls from its config store: 10 s per phase, as before the builder.
DEFAULT_OUTBOUND = Outbound.every_phase(10.0)


class KayentaError(Exception):
    """A refused or failed call; ``status`` is None when no answer came back."""

    def __init__(
        self, message: str, *, status: int | None = None, method: str = "", path: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path

    def __str__(self) -> str:
        status = f" answered {self.status}" if self.status is not None else ""
        return f"{self.method} {self.path}{status}: {self.message}"


class KayentaClient:
    def __init__(self, http: httpx.Client, *, configuration_account: str | None = None) -> None:
        self._http = http
        self._account = configuration_account

    @classmethod
    def connect(
        cls,
        url: str,
        outbound: Outbound = DEFAULT_OUTBOUND,
        *,
        configuration_account: str | None = None,
    ) -> KayentaClient:
        """A client built like every other outbound one (``sidecar.outbound``): explicit
        timeouts, the TLS options given, our User-Agent, redirects not followed."""
        http = build_client(outbound, base_url=url.rstrip("/"))
        return cls(http, configuration_account=configuration_account)

    def close(self) -> None:
        self._http.close()

    def list_configs(self, applications: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Summaries of the configs scoped to any of ``applications`` (all when empty)."""
        params: dict[str, Any] = {"application": list(applications)} if applications else {}
        body = self._call("GET", CONFIG_PATH, params=params)
        if not isinstance(body, list) or not all(isinstance(s, dict) for s in body):
            raise KayentaError("expected a list of summaries", method="GET", path=CONFIG_PATH)
        return body

    def get_config(self, config_id: str) -> dict[str, Any]:
        path = f"{CONFIG_PATH}/{quote(config_id, safe='')}"
        body = self._call("GET", path)
        if not isinstance(body, dict):
            raise KayentaError("expected a canary config object", method="GET", path=path)
        return body

    def create_config(self, config: dict[str, Any]) -> str:
        return self._config_id(self._call("POST", CONFIG_PATH, body=config), "POST", CONFIG_PATH)

    def update_config(self, config_id: str, config: dict[str, Any]) -> str:
        path = f"{CONFIG_PATH}/{quote(config_id, safe='')}"
        return self._config_id(self._call("PUT", path, body=config), "PUT", path)

    @staticmethod
    def _config_id(body: Any, method: str, path: str) -> str:
        if not isinstance(body, dict) or not isinstance(body.get("canaryConfigId"), str):
            raise KayentaError("expected {canaryConfigId}", method=method, path=path)
        return body["canaryConfigId"]

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        query = dict(params or {})
        if self._account:
            query["configurationAccountName"] = self._account
        try:
            response = self._http.request(method, path, params=query, json=body)
        except httpx.HTTPError as exc:
            raise KayentaError(f"cannot reach Kayenta: {exc}", method=method, path=path) from exc
        if response.status_code >= 400:
            raise KayentaError(_message(response), status=response.status_code, method=method,
                               path=path)  # fmt: skip
        try:
            return response.json()
        except ValueError:
            raise KayentaError(
                "answer is not JSON", status=response.status_code, method=method, path=path
            ) from None


def _message(response: httpx.Response) -> str:
    """Spring's error body names the cause in ``message`` (``error`` is the reason phrase)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key]
    return str(body)[:300]
