"""NetflixACAJudge decision rule, checked against Kayenta's kayenta-judge unit-test vectors.

Vectors: kayenta-judge/src/test/scala/com/netflix/kayenta/judge/StatisticSuite.scala (R-7
percentiles, meanRatio, CLES) and ClassifierSuite.scala (Mann-Whitney High/Low/Pass, direction).
"""

from __future__ import annotations

import math
import random

import pytest

from sidecar.kayenta.judge import (
    HIGH,
    LOW,
    NODATA,
    NODATA_FAIL,
    PASS,
    JudgeConfigError,
    MetricSetPair,
    classify_score,
    cles,
    judge,
    mean_ratio,
    percentile,
    remove_outliers,
    stage_passes,
    summary,
)

# ClassifierSuite.scala data (30 values each)
PASS_EXP = [9.7767343120109462, 10.587071850477695, 7.8375506388901766, 9.3243326886113884,
            8.3774505409784421, 8.9359264399606282, 8.2707663324728511, 9.7484308126716925,
            11.623746715547156, 9.2753442679633942, 8.1538047749171518, 10.562020975754294,
            13.498135575451835, 11.054419256110332, 6.9538903590055092, 12.521008342195479,
            9.0216358603546443, 4.9234856699531662, 11.251360203607172, 11.598449508040337,
            8.435232204668182, 11.110228516867279, 10.70063380164755, 8.9212773652115249,
            10.086167067942661, 11.42107515483087, 9.3792347813644952, 7.7980320148552593,
            10.62339807275746, 11.909642062063739]  # fmt: skip
CONTROL = [11.1453586774086, 9.9618059885597017, 7.068574306369829, 7.3012661810483657,
           9.7944630265656727, 9.6037918603687302, 6.1867793350339388, 12.345599159550174,
           10.371891733859533, 8.6094300785016724, 9.913162673361084, 10.361375299003466,
           14.206800387518818, 10.946153754753301, 10.215876627044048, 11.739760899484603,
           10.907627468626439, 12.823353694464775, 8.1018609771732137, 8.4981616408804932,
           12.113441374697231, 13.272210809932028, 10.114579381663297, 6.9463958767978067,
           6.2105278541727778, 10.160401684903775, 8.3457712066455461, 8.383822063895833,
           7.0020205070083765, 10.755757401808442]  # fmt: skip
HIGH_EXP = [20.878412601720026, 21.78550581191622, 19.70828084717019, 15.859946903461562,
            19.510058772176841, 19.392005525270303, 22.926528314912101, 17.156530276709894,
            18.655117916226171, 23.422607911610392, 24.055817684156644, 22.62689958516501,
            21.979472967817678, 21.659318607218694, 20.067707574072426, 22.119570836305414,
            16.44037132663307, 21.559622826341268, 21.000181443489218, 17.779369411412663,
            17.806006358943584, 18.537200618386109, 20.555550300210797, 19.552928184468378,
            21.771118944087092, 21.809622806176627, 20.961762909905271, 20.977571577503021,
            19.106303205498794, 16.976918966987078]  # fmt: skip


def _config(direction="either", groups=("g",), weights=None, **canary):
    return {
        "name": "t",
        "metrics": [
            {"name": "m", "groups": list(groups),
             "analysisConfigurations": {"canary": {"direction": direction, **canary}}},
        ],
        "classifier": {"groupWeights": weights if weights is not None else {"g": 100}},
    }  # fmt: skip


def _one(config, control, experiment):
    res = judge(config, [MetricSetPair("m", tuple(control), tuple(experiment))], 95, 75)
    return res.results[0], res


@pytest.mark.parametrize(
    ("direction", "experiment", "control", "expected"),
    [
        ("either", PASS_EXP, CONTROL, PASS),
        ("either", HIGH_EXP, CONTROL, HIGH),
        ("either", CONTROL, HIGH_EXP, LOW),
        ("increase", CONTROL, HIGH_EXP, PASS),
        ("decrease", HIGH_EXP, CONTROL, PASS),
        ("increase", HIGH_EXP, CONTROL, HIGH),
        ("decrease", CONTROL, HIGH_EXP, LOW),
    ],
)
def test_classifier_suite_vectors(direction, experiment, control, expected):
    result, _ = _one(_config(direction), control, experiment)
    assert result.classification == expected


def test_statistic_suite_percentiles_are_r7():
    assert percentile([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], 5) == pytest.approx(0.175)
    assert percentile([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], 50) == 1.75
    nist = [95.1772, 95.1567, 95.1937, 95.1959, 95.1442, 95.0610,
            95.1591, 95.1195, 95.1772, 95.0925, 95.1990, 95.1682]  # fmt: skip
    assert percentile(nist, 90) == pytest.approx(95.19568)


def test_statistic_suite_summary_and_effect_sizes():
    assert summary([1.0, 1.0, 1.0, 10.0, 10.0, 10.0]).std == pytest.approx(4.9295, abs=1e-4)
    assert summary([]).count == 0
    assert mean_ratio([1.0] * 5, [10.0] * 5) == 10.0
    assert math.isnan(mean_ratio([0.0] * 5, [10.0] * 5))
    assert cles([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]) == 0.5
    assert cles([25.0, 26.0], [2.0, 3.0]) == 0.0


def test_outlier_removal_uses_wide_fences():
    values = [10.0] * 20 + [11.0] * 20 + [1000.0]
    assert 1000.0 not in remove_outliers(values, 3.0)
    assert remove_outliers([1.0, 2.0, 3.0, 4.0], 3.0) == [1.0, 2.0, 3.0, 4.0]


def test_nan_strategies_and_nodata_rules():
    nan = [math.nan] * 10
    r, _ = _one(_config(nanStrategy="replace"), nan, nan)
    assert r.classification == PASS  # zeros on both sides are identical
    r, res = _one(_config(nanStrategy="remove"), nan, nan)
    assert (r.classification, res.score) == (NODATA, 0.0)  # 1 of 1 Nodata >= 50 %
    r, res = _one(_config(nanStrategy="remove", mustHaveData=True), nan, nan)
    assert (r.classification, res.score) == (NODATA_FAIL, 0.0)
    r, res = _one(_config(nanStrategy="remove", mustHaveData=True, critical=True), nan, nan)
    assert (r.classification, r.critical, res.score) == (NODATA, True, 0.0)


def test_sparse_errors_against_zero_baseline_pass_as_in_spinnaker_5622():
    r, _ = _one(_config("increase"), [0.0] * 10, [0.1, 0, 0.2, 0, 0.1, 0, 0.3, 0, 0.1, 0])
    assert r.classification == PASS


def test_effect_size_gates_high_and_critical():
    base = [100.0 + i % 5 for i in range(60)]
    plus3 = [v * 1.03 for v in base]
    plus15 = [v * 1.15 for v in base]
    assert (
        _one(_config("increase", effectSize={"allowedIncrease": 1.1}), base, plus3)[
            0
        ].classification
        == PASS
    )
    high, res = _one(_config("increase", effectSize={"allowedIncrease": 1.1}), base, plus15)
    assert (high.classification, high.critical, res.score) == (HIGH, False, 0.0)
    cfg = _config(
        "increase", critical=True, effectSize={"allowedIncrease": 1.1, "criticalIncrease": 1.5}
    )
    r, res = _one(cfg, base, plus15)
    assert (r.classification, r.critical) == (HIGH, False)  # below criticalIncrease
    r, res = _one(cfg, base, [v * 2 for v in base])
    assert (r.classification, r.critical, res.score) == (HIGH, True, 0.0)
    assert res.reason.startswith("Canary Failed: m:")


def test_constant_vs_constant_gets_noise_and_zero_baseline_skips_effect_threshold():
    cfg = _config("increase", effectSize={"allowedIncrease": 5.0})
    r, _ = _one(cfg, [0.0] * 20, [0.05] * 20)
    assert r.classification == HIGH and math.isnan(r.ratio)


def test_group_weights_unweighted_share_and_rounding():
    cfg = {
        "metrics": [
            {"name": "a", "groups": ["errors"], "analysisConfigurations": {"canary": {}}},
            {"name": "b", "groups": ["latency"], "analysisConfigurations": {"canary": {}}},
            {"name": "c", "groups": ["other"], "analysisConfigurations": {"canary": {}}},
        ],
        "classifier": {"groupWeights": {"errors": 60}},
    }
    same = (1.0, 2.0, 3.0)
    pairs = [MetricSetPair("a", same, same), MetricSetPair("b", CONTROL, HIGH_EXP),
             MetricSetPair("c", same, same)]  # fmt: skip
    res = judge(cfg, pairs, 95, 75)
    assert res.score == 80.0  # 60 + 0 * 20 + 100 * 20
    assert res.group_scores == {"errors": 100.0, "latency": 0.0, "other": 100.0}
    assert res.classification == "Marginal"


def test_muted_metric_is_reported_but_its_group_loses_its_weight():
    cfg = _config(muted=True, weights={"g": 40, "other": 60})
    cfg["metrics"].append({"name": "n", "groups": ["other"], "analysisConfigurations": {}})
    same = (1.0, 2.0, 3.0)
    pairs = [MetricSetPair("m", tuple(CONTROL), tuple(HIGH_EXP)), MetricSetPair("n", same, same)]
    res = judge(cfg, pairs, 95, 75)
    assert res.results[0].classification == HIGH
    assert res.score == 60.0  # the muted group's 40 points are unreachable


def test_string_typed_boolean_fails_the_whole_judgement():
    with pytest.raises(JudgeConfigError):
        _one(_config(critical="true"), CONTROL, HIGH_EXP)


def test_misspelt_enum_silently_becomes_default_like_kayenta():
    r, _ = _one(_config("Increase"), HIGH_EXP, CONTROL)
    assert r.classification == LOW  # "Increase" -> either


def test_thresholds_and_stage_boundary():
    assert classify_score(95, 95, 75) == "Pass"
    assert classify_score(75, 95, 75) == "Marginal"
    assert classify_score(74.99, 95, 75) == "Fail"
    assert stage_passes(95, 95, 75) and not stage_passes(75, 95, 75)


def test_unknown_metric_name_is_rejected():
    with pytest.raises(ValueError, match="Could not find metric config"):
        judge(_config(), [MetricSetPair("zzz", (1.0,), (2.0,))], 95, 75, random.Random(0))
