"""Ramp ids that carry their own schedule, signed so no caller can forge one.

Keeping the schedule in the id means no replica needs shared storage to answer
``GET /v1/ramps/{id}``: any replica with the same secret decodes it and computes where the
ramp should be now. The signature (HMAC-SHA256, truncated to 128 bits) stops a caller from
crafting an id that drives an upstream somewhere nobody asked for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib

from sidecar.core.ramp import RampSchedule, RampStep
from sidecar.core.split import Split

VERSION = 1


class RampTokenError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(schedule: RampSchedule, secret: bytes) -> str:
    payload = {
        "v": VERSION,
        "u": schedule.upstream,
        "t": round(schedule.start_at, 3),
        "l": schedule.lease,
        "n": schedule.nonce,
        "o": None
        if schedule.origin is None
        else [schedule.origin.stable, schedule.origin.baseline, schedule.origin.canary],
        "s": [[s.offset, s.split.stable, s.split.baseline, s.split.canary] for s in schedule.steps],
    }
    body = _b64(zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 9))
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{_b64(mac)}"


def decode(token: str, secret: bytes) -> RampSchedule:
    """The schedule of exactly an id :func:`encode` issued with ``secret``.

    The signature is compared as the canonical text ``encode`` writes, not as decoded bytes:
    base64 decoding ignores padding, characters outside its alphabet and the spare bits of
    the last character, so ``id + "=="``, ``id + "~~~"`` or ``id + ".!!"`` decoded to the
    same bytes and read as the same ramp (issue 13 item 8). The body is signed as text.
    """
    body, dot, mac = token.partition(".")
    if not dot or not body or not mac:
        raise RampTokenError("not a ramp id")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest()[:16])
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise RampTokenError("unknown ramp (bad signature: another secret, or not ours)")
    try:
        payload = json.loads(zlib.decompress(_unb64(body)))
        if payload["v"] != VERSION:
            raise RampTokenError(f"ramp id version {payload['v']} is not supported")
        steps = tuple(
            RampStep(offset=float(o), split=Split(stable=s, baseline=b, canary=c))
            for o, s, b, c in payload["s"]
        )
        origin = payload.get("o")
        return RampSchedule(
            origin=None if origin is None else Split(*origin),
            upstream=payload["u"],
            start_at=float(payload["t"]),
            steps=steps,
            lease=payload["l"],
            nonce=payload["n"],
        )
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        raise RampTokenError(f"corrupt ramp id: {exc}") from None


def short_id(token: str) -> str:
    """A short fingerprint for Kong tags (tags can't hold the whole id comfortably)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]
