"""The status URL's ``split=`` value, kept per split, is the text it was always built as."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.api.served import _plain, split_param
from sidecar.core.split import TOTAL, VARIANTS, Split


def old_split_param(split: Split) -> str:
    """``status_url``'s shares before they were kept: the oracle."""
    return ",".join(_plain(f"{split.percent(v):f}") for v in VARIANTS)


@st.composite
def splits(draw: st.DrawFn) -> Split:
    stable = draw(st.integers(0, TOTAL) | st.sampled_from([0, TOTAL, 9500, 9000, 5000]))
    baseline = draw(st.integers(0, TOTAL - stable))
    return Split(stable, baseline, TOTAL - stable - baseline)


@given(st.lists(splits(), min_size=1, max_size=30))
def test_a_split_param_is_the_text_it_was_built_as(steps: list[Split]) -> None:
    """In any order, repeated or not (equal splits hit what an earlier one kept)."""
    for split in steps + steps[::-1]:
        assert split_param(split) == old_split_param(split)


def test_every_share_of_one_variant_reads_as_before() -> None:
    """All 10,001 shares a variant can take, each beside the two others' remainder."""
    for hundredths in range(TOTAL + 1):
        split = Split(TOTAL - hundredths, 0, hundredths)
        assert split_param(split) == old_split_param(split)
