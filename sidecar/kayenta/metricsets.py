"""Turn Prometheus ``query_range`` answers into Kayenta metric-set pairs.

Sources: kayenta-prometheus ``config/PrometheusResponseConverter.java`` (tags = labels minus
``__name__``; gaps are not filled; an empty answer becomes one tag-less, value-less placeholder)
and kayenta-core ``metrics/MetricSetMixerService.java`` (pairing by exact tag map, a missing side
becomes NaNs, tag key sets that differ on both sides are an error).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar.kayenta.judge import MetricSetPair


@dataclass(frozen=True)
class MetricSet:
    tags: Mapping[str, str] = field(default_factory=dict)
    values: tuple[float, ...] = ()


class PairingError(ValueError):
    """Canary and baseline return differently-labelled series: the Kayenta run fails."""


def from_query_range(response: Mapping[str, Any]) -> list[MetricSet]:
    """Series of a ``/api/v1/query_range`` JSON body (``float('NaN')`` parses ``"NaN"``)."""
    result = response["data"]["result"]
    if not result:
        return [MetricSet()]
    return [
        MetricSet(
            tags={k: v for k, v in series["metric"].items() if k != "__name__"},
            values=tuple(float(v) for _, v in series["values"]),
        )
        for series in result
    ]


def _key(tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(tags.items()))


def pair(
    name: str, control: Sequence[MetricSet], experiment: Sequence[MetricSet], expected_len: int
) -> list[MetricSetPair]:
    """Pair series by tag map, NaN-padding absent or short sides to a common length."""
    ctl_keys = {frozenset(ms.tags) for ms in control if ms.tags}
    exp_keys = {frozenset(ms.tags) for ms in experiment if ms.tags}
    if ctl_keys and exp_keys and ctl_keys != exp_keys:
        raise PairingError(f"{name}: control tag keys {ctl_keys} differ from experiment {exp_keys}")
    by_ctl = {_key(ms.tags): ms for ms in control}
    by_exp = {_key(ms.tags): ms for ms in experiment}
    pairs = []
    for key in sorted(set(by_ctl) | set(by_exp)):
        c = by_ctl.get(key, MetricSet()).values
        e = by_exp.get(key, MetricSet()).values
        length = max(len(c), len(e), expected_len if not (c and e) else 0)
        pad_c = c + (math.nan,) * (length - len(c))
        pad_e = e + (math.nan,) * (length - len(e))
        pairs.append(MetricSetPair(name=name, control=pad_c, experiment=pad_e, tags=dict(key)))
    return pairs


def pairs_from_json(doc: Sequence[Mapping[str, Any]]) -> list[MetricSetPair]:
    """Kayenta's ``MetricSetPair`` JSON (``values.control``/``.experiment``, "NaN" strings)."""
    return [
        MetricSetPair(
            name=item["name"],
            control=tuple(float(v) for v in item["values"]["control"]),
            experiment=tuple(float(v) for v in item["values"]["experiment"]),
            tags=dict(item.get("tags") or {}),
        )
        for item in doc
    ]
