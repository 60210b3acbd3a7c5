"""Hypothesis strategies shared by the core tests: layouts of targets and valid splits."""

from __future__ import annotations

from hypothesis import strategies as st

from sidecar.core.split import TOTAL, VARIANTS, Split

PREFIX = {"stable": "s", "baseline": "b", "canary": "c"}


def names(variant: str, count: int) -> list[str]:
    return [f"{PREFIX[variant]}{i}.svc:8000" for i in range(count)]


@st.composite
def layouts(draw: st.DrawFn, *, max_per_variant: int = 5, stable_min: int = 1):
    """Targets per variant: stable always present, baseline/canary sometimes absent."""
    counts = {
        "stable": draw(st.integers(stable_min, max_per_variant)),
        "baseline": draw(st.integers(0, max_per_variant)),
        "canary": draw(st.integers(0, max_per_variant)),
    }
    return {v: names(v, n) for v, n in counts.items() if n}


@st.composite
def splits_for(draw: st.DrawFn, layout: dict[str, list[str]]) -> Split:
    """A valid split giving a share only to variants that have targets; zeros are common."""
    live = [v for v in VARIANTS if layout.get(v)]
    cuts = sorted(
        draw(
            st.lists(
                st.one_of(st.integers(0, TOTAL), st.sampled_from([0, 1, 250, 500, TOTAL - 1])),
                min_size=len(live) - 1,
                max_size=len(live) - 1,
            )
        )
    )
    edges = [0, *cuts, TOTAL]
    shares = dict.fromkeys(VARIANTS, 0)
    for variant, low, high in zip(live, edges[:-1], edges[1:], strict=True):
        shares[variant] = high - low
    return Split(**shares)


def variant_of(layout: dict[str, list[str]]) -> dict[str, str]:
    return {t: v for v, ts in layout.items() for t in ts}
