"""Why the sidecar refuses a change, in the domain's words (issue 17 item 2).

The services (``sidecar.traffic``, ``sidecar.ramps``) and the pure core raise these; they say
which rule was broken, the input ``field`` it concerns and any ``details`` a caller needs to
decide again (e.g. the split Kong shows). They carry no HTTP status and no error code: the
one table from refusal to status and code is ``sidecar.errors.REFUSALS``, used by the API's
error handler, so a rule can be named and tested without knowing how it is answered.
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """A change or request refused on purpose; nothing was written to Kong because of it."""

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


# ---- the request itself breaks a rule ----------------------------------------------------
class CeilingExceeded(Refusal):
    """canary + baseline above ``max_shifted_percent`` (the split, or a ramp's step)."""


class InvalidLease(Refusal):
    """A lease outside ``LeasePolicy``'s bounds, or too short for a ramp's waits."""


class InvalidTarget(Refusal):
    """A target that is no ``host[:port]`` Kong would accept."""


class DuplicateTarget(Refusal):
    """One target listed under two variants (or twice)."""


class NoTargets(Refusal):
    """A variant given a share but having no target to carry it."""


class Unsplittable(Refusal):
    """No integer weights within Kong's bounds give the split (``core.weights``)."""


class InvalidRamp(Refusal):
    """A ramp schedule ``core.ramp.RampSchedule`` refuses."""


class UnequalShares(Refusal):
    """A ramp step giving canary and baseline different shares (Kayenta compares them)."""


class StartInPast(Refusal):
    """A ramp whose ``start_at`` lies in the past (it would jump to a late step)."""


# ---- Kong's state forbids it now ---------------------------------------------------------
class ExpectMismatch(Refusal):
    """The caller's ``expect`` is not the split Kong shows."""


class RampSuperseded(Refusal):
    """The ramp making the change no longer owns the upstream."""


class UnknownVariantTarget(Refusal):
    """A target tagged with a variant we do not know carries traffic."""


class UnhealthyTarget(Refusal):
    """The change would raise the share of a target Kong reports unhealthy (not forced)."""


class ConcurrentChange(Refusal):
    """Something else changed the upstream while this change ran (renamed, or read back
    different from what was written)."""


class NotReady(Refusal):
    """A precondition of the change kept deferring it (nothing was written)."""


class NoRamp(Refusal):
    """No ramp (of that execution) runs on the upstream."""


class UnknownRamp(Refusal):
    """A ramp id this deployment did not sign."""
