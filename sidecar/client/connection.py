"""The sidecar's HTTP API as the CLI calls it: one httpx client, one error type that knows
its exit code and says what went wrong in one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from sidecar.client.format import ExitCode, exit_code_for_status

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(Exception):
    """One line for a person, an exit code for a script, and the API's error body if any."""

    def __init__(self, message: str, code: ExitCode, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body


def resolve_token(token: str | None, token_file: str | None) -> str | None:
    """``--token`` / ``KONG_CANARY_TOKEN`` first, then the first non-empty line of
    ``--token-file`` / ``KONG_CANARY_TOKEN_FILE`` (a mounted Secret)."""
    if token:
        return token.strip()
    if token_file:
        try:
            lines = Path(token_file).read_text().splitlines()
        except OSError as exc:
            raise ClientError(
                f"cannot read the token file {token_file}: {exc.strerror}", ExitCode.AUTH
            ) from None
        for line in lines:
            if line.strip():
                return line.strip()
        raise ClientError(f"the token file {token_file} is empty", ExitCode.AUTH)
    return None


class SidecarClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        headers = {"User-Agent": "kong-canary-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        """The answer's JSON; a ClientError for no token, no answer, or an error answer."""
        if not self.token:
            raise ClientError(
                "no API token: pass --token, set KONG_CANARY_TOKEN, or --token-file "
                "(./scripts/serve prints a demo token)",
                ExitCode.AUTH,
            )
        try:
            response = self.http.request(method, path, json=json, params=params)
        except httpx.TimeoutException:
            raise ClientError(
                f"the sidecar at {self.url} did not answer in time", ExitCode.UNREACHABLE
            ) from None
        except httpx.HTTPError as exc:
            raise ClientError(
                f"cannot reach the sidecar at {self.url}: {exc} (is it running? --url / "
                "KONG_CANARY_URL)",
                ExitCode.UNREACHABLE,
            ) from None
        try:
            body = response.json()
        except ValueError:
            raise ClientError(
                f"{self.url} answered {response.status_code} without JSON: is it the "
                "kong-canary sidecar?",
                ExitCode.UNREACHABLE,
            ) from None
        code = exit_code_for_status(response.status_code)
        if code is not ExitCode.OK:
            raise ClientError(_error_line(response.status_code, body), code, body)
        return body


def _error_line(status: int, body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"the sidecar answered {status}"
    line = f"{status} {error.get('code', 'error')}: {error.get('message', '')}"
    if error.get("field"):
        line += f" (field {error['field']})"
    return line


def local_user() -> str | None:
    """Who ran the command, for the audit log's ``context.user``."""
    for name in ("KONG_CANARY_USER", "USER", "LOGNAME"):
        if os.environ.get(name):
            return os.environ[name][:256]
    return None
