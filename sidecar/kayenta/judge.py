"""Offline re-implementation of Kayenta's ``NetflixACAJudge-v1.0`` decision rule.

Sources (spinnaker/kayenta, kayenta-judge/src/main/scala/com/netflix/kayenta/judge/):
``NetflixACAJudge.scala`` (config parsing, NaN strategy, outliers), ``classifiers/metric/
MannWhitneyClassifier.scala`` (tolerance 0.25, 98 % CI, effect sizes, critical flag),
``stats/EffectSizes.scala`` (meanRatio is NaN when a mean is 0; CLES),
``detectors/IQRDetector.scala``,
``stats/DescriptiveStatistics.scala`` (R-7 percentiles), ``scorers/WeightedSumScorer.scala``
(critical rule, 50 % Nodata rule, group weights, 2-decimal rounding) and
``classifiers/score/ThresholdScoreClassifier.scala``. Used to preview a verdict without a Kayenta.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sidecar.kayenta.mannwhitney import MannWhitneyError, average_ranks, mann_whitney

TOLERANCE = 0.25
CONFIDENCE = 0.98
NODATA_THRESHOLD = 50.0

PASS, HIGH, LOW = "Pass", "High", "Low"
NODATA, NODATA_FAIL, ERROR = "Nodata", "NodataFailMetric", "Error"


class JudgeConfigError(TypeError):
    """A value of the wrong JSON type: Kayenta's casts throw and the whole judge stage fails."""


@dataclass(frozen=True)
class MetricSetPair:
    """One paired series, as in Kayenta's ``MetricSetPair`` (values may contain NaN)."""

    name: str
    control: tuple[float, ...]
    experiment: tuple[float, ...]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stats:
    min: float
    max: float
    mean: float
    std: float
    count: int


@dataclass(frozen=True)
class MetricResult:
    name: str
    tags: Mapping[str, str]
    classification: str
    reason: str | None
    groups: tuple[str, ...]
    critical: bool
    muted: bool
    ratio: float
    control_stats: Stats
    experiment_stats: Stats


@dataclass(frozen=True)
class JudgeResult:
    score: float
    classification: str
    reason: str
    group_scores: Mapping[str, float]
    results: tuple[MetricResult, ...]


@dataclass(frozen=True)
class _Settings:
    direction: str
    nan_strategy: str
    critical: bool
    must_have_data: bool
    muted: bool
    measure: str
    allowed_increase: float
    allowed_decrease: float
    critical_increase: float
    critical_decrease: float
    remove_outliers: bool
    outlier_factor: float


def _get(tree: Mapping[str, Any] | None, *path: str) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _as_str(value: Any, default: str, where: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise JudgeConfigError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _as_bool(value: Any, default: bool, where: str) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise JudgeConfigError(f"{where}: expected a boolean, got {type(value).__name__}")
    return value


def _as_float(value: Any, default: float, where: str) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JudgeConfigError(f"{where}: expected a number, got {type(value).__name__}")
    return float(value)


def _settings(metric_config: Mapping[str, Any]) -> _Settings:
    """Read ``analysisConfigurations.canary`` the way ``MapUtils`` does (bad enums -> defaults)."""
    canary = _get(metric_config, "analysisConfigurations", "canary") or {}
    where = f"metric {metric_config.get('name')!r}"
    direction = _as_str(canary.get("direction"), "either", where)
    nan_strategy = _as_str(canary.get("nanStrategy"), "remove", where)
    effect = canary.get("effectSize") or {}
    measure = _as_str(effect.get("measure"), "meanRatio", where)
    default_effect = 0.5 if measure == "cles" else 1.0
    outliers = canary.get("outliers") or {}
    return _Settings(
        direction=direction if direction in ("increase", "decrease", "either") else "either",
        nan_strategy="replace" if nan_strategy == "replace" else "remove",
        critical=_as_bool(canary.get("critical"), False, where),
        must_have_data=_as_bool(canary.get("mustHaveData"), False, where),
        muted=_as_bool(canary.get("muted"), False, where),
        measure="cles" if measure == "cles" else "meanRatio",
        allowed_increase=_as_float(effect.get("allowedIncrease"), default_effect, where),
        allowed_decrease=_as_float(effect.get("allowedDecrease"), default_effect, where),
        critical_increase=_as_float(effect.get("criticalIncrease"), default_effect, where),
        critical_decrease=_as_float(effect.get("criticalDecrease"), default_effect, where),
        remove_outliers=_as_str(outliers.get("strategy"), "keep", where) == "remove",
        outlier_factor=_as_float(outliers.get("outlierFactor"), 3.0, where),
    )


def percentile(values: Sequence[float], p: float) -> float:
    """R-7 (linear interpolation) percentile, p in (0, 100]; commons-math ``EstimationType.R_7``."""
    data = sorted(values)
    if not data:
        return math.nan
    h = (len(data) - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (h - lo) * (data[hi] - data[lo])


def remove_outliers(values: Sequence[float], factor: float) -> list[float]:
    """``IQRDetector(factor, reduceSensitivity=true)``: fences never tighter than P1/P99."""
    if len(values) < 2:
        return list(values)
    q1, q3 = percentile(values, 25), percentile(values, 75)
    iqr = q3 - q1
    lower = min(percentile(values, 1), q1 - factor * iqr)
    upper = max(percentile(values, 99), q3 + factor * iqr)
    return [v for v in values if lower <= v <= upper]


def summary(values: Sequence[float]) -> Stats:
    if not values:
        return Stats(0.0, 0.0, 0.0, 0.0, 0)
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return Stats(min(values), max(values), mean, math.sqrt(var), len(values))


def mean_ratio(control: Sequence[float], experiment: Sequence[float]) -> float:
    """``EffectSizes.meanRatio``: NaN when either mean is exactly 0, so thresholds are skipped."""
    c = sum(control) / len(control)
    e = sum(experiment) / len(experiment)
    return math.nan if c == 0.0 or e == 0.0 else e / c


def cles(control: Sequence[float], experiment: Sequence[float]) -> float:
    """Common-language effect size P(exp > ctrl) + P(tie)/2 (``EffectSizes.cles``)."""
    m, n = len(experiment), len(control)
    ranks = average_ranks(list(experiment) + list(control))
    return (2 * sum(ranks[:m]) - m * (m + 1)) / (2 * n * m)


def _preprocess(values: Sequence[float], s: _Settings) -> list[float]:
    if s.nan_strategy == "replace":
        out = [0.0 if math.isnan(v) else v for v in values]
    else:
        out = [v for v in values if not math.isnan(v)]
    return remove_outliers(out, s.outlier_factor) if s.remove_outliers else out


def _add_noise(values: list[float], rng: random.Random) -> list[float]:
    sd = values[0] * 1e-5
    return [v + rng.gauss(0.0, sd) for v in values] if sd else values


def classify(
    control: Sequence[float], experiment: Sequence[float], s: _Settings, rng: random.Random
) -> tuple[str, str | None, float, bool]:
    """Return (classification, reason, ratio, critical) for one pair of preprocessed series."""
    if not experiment or not control:
        if s.nan_strategy == "remove":
            if s.must_have_data and not s.critical:
                return NODATA_FAIL, "Missing data", 1.0, False
            return NODATA, "Missing data", 1.0, s.critical
        return PASS, None, 1.0, False
    if sorted(experiment) == sorted(control):
        return PASS, "The Canary and Baseline data are identical", 1.0, False
    if len(set(experiment) | set(control)) == 1:
        return PASS, None, 1.0, False
    exp, ctl = list(experiment), list(control)
    if len(set(exp)) == 1 and len(set(ctl)) == 1:
        exp, ctl = _add_noise(exp, rng), _add_noise(ctl, rng)
    try:
        mw = mann_whitney(exp, ctl, CONFIDENCE)
    except MannWhitneyError as exc:
        return ERROR, f"Metric Classification Failed: {exc}", math.nan, False
    ratio = mean_ratio(ctl, exp)
    effect = cles(ctl, exp) if s.measure == "cles" else ratio
    bound = TOLERANCE * abs(mw.estimate)
    nan = math.isnan(effect)
    if (
        s.direction in ("increase", "either")
        and mw.lower > bound
        and (nan or effect >= s.allowed_increase)
    ):
        critical = s.critical and (nan or effect >= s.critical_increase)
        return (
            HIGH,
            "The metric was classified as High" + (" (Critical)" if critical else ""),
            ratio,
            critical,
        )
    if (
        s.direction in ("decrease", "either")
        and mw.upper < -bound
        and (nan or effect <= s.allowed_decrease)
    ):
        critical = s.critical and (nan or effect <= s.critical_decrease)
        return (
            LOW,
            "The metric was classified as Low" + (" (Critical)" if critical else ""),
            ratio,
            critical,
        )
    return PASS, None, ratio, False


def classify_pair(
    metric_config: Mapping[str, Any], pair: MetricSetPair, rng: random.Random | None = None
) -> MetricResult:
    s = _settings(metric_config)
    ctl = _preprocess(pair.control, s)
    exp = _preprocess(pair.experiment, s)
    label, reason, ratio, critical = classify(ctl, exp, s, rng or random.Random(0))
    if reason and label in (HIGH, LOW, NODATA, NODATA_FAIL):
        reason = f"{pair.name}: {reason}"
    return MetricResult(
        name=pair.name,
        tags=dict(pair.tags),
        classification=label,
        reason=reason,
        groups=tuple(metric_config.get("groups") or ()),
        critical=critical,
        muted=s.muted,
        ratio=ratio,
        control_stats=summary(ctl),
        experiment_stats=summary(exp),
    )


def _round2(value: float) -> float:
    """commons-math ``MathUtils.round(x, 2)``: half-up on the decimal string of the double."""
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def score(
    results: Sequence[MetricResult], group_weights: Mapping[str, float]
) -> tuple[float, str, dict[str, float]]:
    """``WeightedSumScorer.score``: (summary score, reason, group scores)."""
    scored = [r for r in results if not r.muted]
    labels: dict[str, list[str]] = {}
    for r in scored:
        for g in r.groups:
            labels.setdefault(g, []).append(r.classification)
    groups: dict[str, float] = {}
    no_data: set[str] = set()
    for g, ls in labels.items():
        total = sum(ls.count(k) for k in (PASS, HIGH, LOW, NODATA_FAIL))
        if total == 0:
            no_data.add(g)
            groups[g] = 0.0
        else:
            groups[g] = ls.count(PASS) / total * 100
    failures = [r for r in scored if r.critical and r.classification != PASS]
    if failures:
        return 0.0, f"Canary Failed: {failures[0].reason}", groups
    if (
        scored
        and sum(r.classification == NODATA for r in scored) / len(scored) * 100 >= NODATA_THRESHOLD
    ):
        return 0.0, "Canary Failed: 50% or more metrics returned NODATA", groups
    unweighted = set(groups) - set(group_weights)
    spare = (100 - sum(group_weights.values())) / len(unweighted) if unweighted else 0.0
    total = 0.0
    for g, value in groups.items():
        effective = 100.0 if g in no_data else value
        total += effective * (group_weights.get(g, spare) / 100)
    return _round2(total), "", groups


def classify_score(value: float, pass_threshold: float, marginal_threshold: float) -> str:
    """``ThresholdScoreClassifier``."""
    if value >= pass_threshold:
        return "Pass"
    if value >= marginal_threshold:
        return "Marginal"
    return "Fail"


def stage_passes(value: float, pass_threshold: float, marginal_threshold: float) -> bool:
    """Orca/standalone verdict on the last interval: a score equal to marginal already fails."""
    return value > marginal_threshold and value >= pass_threshold


def judge(
    config: Mapping[str, Any],
    pairs: Sequence[MetricSetPair],
    pass_threshold: float,
    marginal_threshold: float,
    rng: random.Random | None = None,
) -> JudgeResult:
    """Judge a list of pairs against a canary config (the config's scoreThresholds are ignored)."""
    by_name: dict[str, Mapping[str, Any]] = {}
    for m in config.get("metrics") or []:
        by_name.setdefault(m["name"], m)
    rng = rng or random.Random(0)
    results = []
    for pair in pairs:
        if pair.name not in by_name:
            raise ValueError(f"Could not find metric config for {pair.name}")
        results.append(classify_pair(by_name[pair.name], pair, rng))
    weights_raw = _get(config, "classifier", "groupWeights") or {}
    weights = {k: _as_float(v, 0.0, f"groupWeights.{k}") for k, v in weights_raw.items()}
    value, reason, groups = score(results, weights)
    return JudgeResult(
        score=value,
        classification=classify_score(value, pass_threshold, marginal_threshold),
        reason=reason,
        group_scores=groups,
        results=tuple(results),
    )
