"""Typed errors for everything that can go wrong talking to Kong's Admin API.

Every failure the client sees becomes one of these, carrying what Kong said
(status, numeric code, error name, message, per-field messages), so the HTTP
layer can map it to a status Spinnaker understands without parsing strings.
"""

from __future__ import annotations

from typing import Any


class KongError(Exception):
    """Base class. ``status`` is Kong's HTTP status (None when no response came back)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        name: str | None = None,
        fields: dict[str, Any] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.name = name
        self.fields = fields or {}
        self.method = method
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        """The shape the sidecar puts under ``error.kong`` in its responses."""
        out: dict[str, Any] = {"message": self.message}
        for key in ("status", "code", "name", "method", "path"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.fields:
            out["fields"] = self.fields
        return out

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        status = f"Kong answered {self.status}: " if self.status is not None else ""
        return f"{where}{status}{self.message}"


class KongNotFound(KongError):
    """404: the upstream or target does not exist."""


class KongConflict(KongError):
    """409: unique constraint violation (e.g. POSTing an existing target on 3.x)."""


class KongValidationError(KongError):
    """400: schema violation, bad size/offset, unparsable body."""


class KongAuthError(KongError):
    """401/403: missing or rejected credentials (RBAC token, Konnect bearer token)."""


class KongReadOnly(KongError):
    """405 on a write: DB-less node or hybrid data plane. Writes must go to the control plane."""


class KongUnavailable(KongError):
    """No usable answer: connection refused/reset, timeout, or a 5xx from Kong."""


class KongProtocolError(KongError):
    """Kong (or something in front of it) answered with a body we cannot trust:
    an HTML error page, truncated JSON, or JSON of an unexpected shape."""
