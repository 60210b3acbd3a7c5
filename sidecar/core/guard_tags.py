"""The armed guard kept in Kong, as one upstream tag, so every replica guards the canary.

``kong-canary-guard=<base64url(JSON)>``: the config as given and the short id of the ramp
that armed it. Kong tags allow printable ASCII except ``,`` and ``/`` (``validate_tag`` in
``kong/db/schema/typedefs.lua``); the base64url alphabet (``A-Z a-z 0-9 - _``) stays inside
it. Like the lease marks (``sidecar.core.lease``), other tags are kept untouched, and
``write_marks`` keeps ours. The ``alert_url`` travels too: whoever reads Kong's Admin API
can see it (they can also change every route, so it tells them nothing new). Pure.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from sidecar.core.guard_config import GuardConfig
from sidecar.core.split import SplitError
from sidecar.core.tags import GUARD_TAG


def guard_tag(config: GuardConfig, ramp: str | None) -> str:
    document = {"guard": config.as_json(), "ramp": ramp}
    raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return GUARD_TAG + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_guard(tags: Sequence[str]) -> tuple[GuardConfig, str | None] | None:
    """The guard an upstream's tags carry; None without one or with one we cannot read
    (a newer version's fields, a hand-edited tag): never guess a guard."""
    for tag in tags:
        if tag.startswith(GUARD_TAG):
            payload = tag[len(GUARD_TAG) :]
            try:
                raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
                document = json.loads(raw)
                ramp = document.get("ramp")
                config = GuardConfig.from_json(document["guard"])
            except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, SplitError):
                return None
            return config, ramp if isinstance(ramp, str) else None
    return None


def with_guard(tags: Sequence[str], tag: str | None) -> tuple[str, ...]:
    """The tags with our guard tag replaced by ``tag`` (removed when None)."""
    kept = [t for t in tags if not t.startswith(GUARD_TAG)]
    return (*kept, tag) if tag is not None else tuple(kept)
