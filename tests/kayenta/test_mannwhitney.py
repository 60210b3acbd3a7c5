"""The rank-sum interval against Kayenta's own test vectors (which Kayenta took from R)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from statistics import NormalDist

import pytest

from sidecar.kayenta.mannwhitney import (
    MannWhitneyError,
    average_ranks,
    brent_direct,
    mann_whitney,
    wilcoxon_diff,
)

DATA = json.loads((Path(__file__).parent / "data" / "mannwhitney_tie_out.json").read_text())
E = 1e-6  # MannWhitneySuite's tolerance


def test_tie_out_intermediate_variables_match_kayenta_suite():
    """MannWhitneySuite "tie out intermediate variables" (x = experiment, y = control)."""
    x, y, r = DATA["experiment"], DATA["control"], DATA["r"]
    mu_min, mu_max = min(x) - max(y), max(x) - min(y)
    zq = -NormalDist().inv_cdf((1 - DATA["confidence"]) / 2)
    assert mu_min == pytest.approx(r["mumin"], abs=E)
    assert mu_max == pytest.approx(r["mumax"], abs=E)
    assert zq == pytest.approx(r["zq_lower"], abs=E)
    f_lower1, f_upper1 = wilcoxon_diff(mu_min, zq, x, y), wilcoxon_diff(mu_max, zq, x, y)
    f_lower2, f_upper2 = wilcoxon_diff(mu_min, -zq, x, y), wilcoxon_diff(mu_max, -zq, x, y)
    assert (f_lower1, f_upper1) == pytest.approx((r["f_lower1"], r["f_upper1"]), abs=E)
    assert (f_lower2, f_upper2) == pytest.approx((r["f_lower2"], r["f_upper2"]), abs=E)

    def solve(q: float, fl: float, fu: float) -> float:
        return brent_direct(mu_min, mu_max, fl, fu, lambda m: wilcoxon_diff(m, q, x, y))

    assert solve(zq, f_lower1, f_upper1) == pytest.approx(r["ci_lower"], abs=E)
    assert solve(-zq, f_lower2, f_upper2) == pytest.approx(r["ci_upper"], abs=E)
    f0l, f0u = wilcoxon_diff(mu_min, 0, x, y), wilcoxon_diff(mu_max, 0, x, y)
    assert solve(0, f0l, f0u) == pytest.approx(r["est"], abs=E)
    assert mann_whitney(x, y, 0.95).estimate == pytest.approx(r["est"], abs=E)


def test_average_ranks_share_ties():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


def test_all_tied_raises_like_kayenta():
    with pytest.raises(MannWhitneyError):
        mann_whitney([1.0, 1.0], [1.0, 1.0])


def test_separated_samples_give_interval_clear_of_zero():
    res = mann_whitney([10.0, 11.0, 12.0, 13.0, 14.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert 0 < res.lower <= res.estimate <= res.upper
    assert res.estimate == pytest.approx(9.0, abs=1e-3)


RSCRIPT = shutil.which("Rscript")


@pytest.mark.skipif(
    RSCRIPT is None, reason="Rscript not installed: R wilcox.test cross-check skipped"
)
def test_matches_r_wilcox_test():
    x = [20.88, 21.79, 19.71, 15.86, 19.51, 19.39, 22.93, 17.16, 18.66, 23.42, 20.0, 20.0]
    y = [11.15, 9.96, 7.07, 7.30, 9.79, 9.60, 6.19, 12.35, 10.37, 8.61, 20.0, 9.6]
    script = (
        f"r <- wilcox.test(c({','.join(map(str, x))}), c({','.join(map(str, y))}), "
        "conf.int=TRUE, conf.level=0.98, exact=FALSE, correct=TRUE); "
        "cat(r$conf.int[1], r$conf.int[2], r$estimate)"
    )
    out = subprocess.run([RSCRIPT, "-e", script], capture_output=True, text=True, check=True)
    lo, hi, est = map(float, out.stdout.split())
    res = mann_whitney(x, y, 0.98)
    assert (res.lower, res.upper, res.estimate) == pytest.approx((lo, hi, est), abs=1e-3)
