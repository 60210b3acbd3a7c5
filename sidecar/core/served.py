"""Is a traffic change *served*: the verdict a monitored Spinnaker stage polls for.

A weight in Kong's database is not yet traffic moved (``sidecar.propagation``): a stage that
moves traffic (set split, rollback, promote, cancel) must not succeed while some Kong node
still routes by the old weights, or the pipeline deletes the canary's pods, or starts
Kayenta's analysis, too early (issue 12 §2). One call cannot always wait that long (Orca's
webhook client has a read timeout, ``WebhookConfiguration.webhookRequestFactory``), so the
stage polls a status URL (``MonitorWebhookTask``) whose answer this module decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.core.split import Split

RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str


def judge(
    expected: Split,
    current: Split | None,
    propagation: Mapping[str, Any] | None,
    *,
    now: float,
    until: float,
) -> Verdict:
    """SUCCEEDED once every checkable node serves Kong's weights and they are still the
    expected split; FAILED when another change replaced the split (it will never be served)
    or ``until`` passed; else RUNNING. ``propagation`` None: nothing can be checked (no
    propagation checker), so what Kong holds is all there is to know."""
    if current != expected:
        shown = current if current is not None else "no traffic at all"
        return Verdict(
            FAILED,
            f"Kong's split is now {shown}, not {expected}: another change took the upstream over",
        )
    if propagation is None or propagation.get("confirmed"):
        detail = propagation["message"] if propagation else "no Kong node to check"
        return Verdict(SUCCEEDED, f"{expected} is served: {detail}")
    if now >= until:
        return Verdict(FAILED, f"{expected} still not served: {propagation['message']}")
    waiting = f"waiting until Kong's nodes serve {expected}"
    return Verdict(RUNNING, f"{waiting}: {propagation['message']}")


def expected_weights(targets: Mapping[str, int]) -> dict[str, int]:
    """What every node's balancer must hold: the database's weights, all of them (a target
    of an unknown variant with weight is traffic too; weight 0 and absent are the same)."""
    return {target: weight for target, weight in targets.items() if weight}
