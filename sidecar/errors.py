"""Errors the sidecar answers with on purpose, and how Kong failures map onto them.

One error shape everywhere: ``{"error": {"code", "message", "field"?, "kong"?}}``.

Status codes follow Orca's webhook semantics: 4xx (but 429) make the stage fail at
once, 5xx and 429 make Orca retry the create call. So bad input is 400/422, a
refused change is 403/409, and only trouble with Kong itself is 502/503.
"""

from __future__ import annotations

from typing import Any

from sidecar.core.refusals import (
    CeilingExceeded,
    ConcurrentChange,
    DuplicateTarget,
    ExpectMismatch,
    InvalidLease,
    InvalidRamp,
    InvalidTarget,
    NoRamp,
    NoTargets,
    NotReady,
    RampSuperseded,
    Refusal,
    StartInPast,
    UnequalShares,
    UnhealthyTarget,
    UnknownRamp,
    UnknownVariantTarget,
    Unsplittable,
)
from sidecar.kong.errors import (
    KongAuthError,
    KongConflict,
    KongError,
    KongNotFound,
    KongReadOnly,
    KongUnavailable,
    KongValidationError,
)

# An error names the field and the rule; a value it quotes is the caller's own, so it is
# cut: a 10 MB ``reason`` must not come back in the 422 (nor fill the audit log).
MAX_MESSAGE_CHARS = 1000
MAX_ECHO_CHARS = 100


def cut(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` in at most ``limit`` characters, cut in the middle: a message starts with the
    field and ends with the rule, and an echoed value sits between them."""
    if len(text) <= limit:
        return text
    longest = len(f"…[{len(text)} characters cut]…")
    keep = max(limit - longest, 2)
    marker = f"…[{len(text) - keep} characters cut]…"
    return text[: keep - keep // 2] + marker + text[len(text) - keep // 2 :]


def echo(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr(value)`` for a message, in at most ``limit`` characters."""
    return cut(repr(value), limit)


def echo_in(message: str, value: object) -> str:
    """``message`` (a validator's, which quotes ``repr(value)``) with that quote cut."""
    quoted = repr(value)
    if len(quoted) <= MAX_ECHO_CHARS:
        return message
    return message.replace(quoted, echo(value))


class ApiError(Exception):
    """An answer the API gives on purpose; ``field`` names the offending input. Message and
    field are cut to a bounded length (``cut``) whatever the caller put into them."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        kong: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = cut(message)
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = None if field is None else cut(field, MAX_ECHO_CHARS * 3)
        self.kong = kong
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.kong is not None:
            error["kong"] = self.kong
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def from_kong_error(exc: KongError, *, upstream: str | None = None) -> ApiError:
    """Map a Kong failure onto the status Orca should see."""
    kong = exc.to_dict()
    if isinstance(exc, KongNotFound) and upstream is not None:
        return ApiError(404, "unknown_upstream", f"Kong has no upstream {upstream!r}", kong=kong)
    if isinstance(exc, KongReadOnly):
        message = (
            "Kong refused the write: this Admin API belongs to a DB-less node or a data plane. "
            "Point the sidecar at the control plane (or Konnect)"
        )
        return ApiError(502, "kong_read_only", message, kong=kong)
    if isinstance(exc, KongAuthError):
        message = "Kong rejected the sidecar's credentials (check the admin token / RBAC role)"
        return ApiError(502, "kong_auth", message, kong=kong)
    if isinstance(exc, KongValidationError):
        return ApiError(422, "kong_validation", f"Kong refused the input: {exc.message}", kong=kong)
    if isinstance(exc, KongConflict):
        return ApiError(409, "kong_conflict", f"Kong reported a conflict: {exc.message}", kong=kong)
    if isinstance(exc, KongUnavailable):
        return ApiError(503, "kong_unavailable", f"Kong is unavailable: {exc}", kong=kong)
    return ApiError(502, "kong_error", f"Kong failed: {exc}", kong=kong)


# The one table from a refusal (``sidecar.core.refusals``) to how the API answers it. 422:
# the input breaks a rule (Orca fails the stage); 409: Kong's state forbids the change now
# (read again and decide); 404: nothing of that name. ``StartInPast`` shares the generic
# ``invalid_field`` code the API gave it before the refusals had names.
REFUSALS: dict[type[Refusal], tuple[int, str]] = {
    CeilingExceeded: (422, "ceiling_exceeded"),
    InvalidLease: (422, "invalid_lease"),
    InvalidTarget: (422, "invalid_target"),
    DuplicateTarget: (422, "duplicate_target"),
    NoTargets: (422, "no_targets"),
    Unsplittable: (422, "unsplittable"),
    InvalidRamp: (422, "invalid_ramp"),
    UnequalShares: (422, "unequal_shares"),
    StartInPast: (422, "invalid_field"),
    ExpectMismatch: (409, "expect_mismatch"),
    RampSuperseded: (409, "ramp_superseded"),
    UnknownVariantTarget: (409, "unknown_variant_target"),
    UnhealthyTarget: (409, "unhealthy_target"),
    ConcurrentChange: (409, "concurrent_change"),
    NotReady: (503, "not_ready"),
    NoRamp: (404, "no_ramp"),
    UnknownRamp: (404, "unknown_ramp"),
}


def from_refusal(exc: Refusal) -> ApiError:
    """The API's answer to a refusal (``REFUSALS``); the message is cut like any other."""
    status, code = REFUSALS[type(exc)]
    return ApiError(status, code, exc.message, field=exc.field, details=exc.details)


def answer(exc: ApiError | Refusal) -> ApiError:
    """What the API answers for either kind of error a service raises."""
    return exc if isinstance(exc, ApiError) else from_refusal(exc)
