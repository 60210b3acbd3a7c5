"""``core.lease``'s cached reading of the upstream's tags and its ``Marks.but`` give exactly
what the plain loop and ``dataclasses.replace`` gave."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.lease import Marks, read_marks, write_marks
from sidecar.core.tags import (
    LEASE_TAG,
    MANAGED_TAG,
    RAMP_CANCELED_TAG,
    RAMP_EXECUTION_TAG,
    RAMP_TAG,
)


def read_marks_uncached(tags: Sequence[str]) -> Marks:
    """The oracle: the module's own loop, which a list of tags always takes (never cached)."""
    return read_marks(list(tags))


_VALUE = st.sampled_from(["", "1700000000", "17.5", "nan", "abc", "1e3", "x-1"])
_TAG = st.sampled_from([MANAGED_TAG, "managed-by=other", "team=a", "kong-canary-"]) | st.builds(
    str.__add__,
    st.sampled_from([LEASE_TAG, RAMP_TAG, RAMP_CANCELED_TAG, RAMP_EXECUTION_TAG]),
    _VALUE,
)


def _same(got: Marks, expected: Marks) -> bool:
    """Equal field by field, a NaN lease equal to a NaN lease (NaN != NaN)."""
    pairs = zip(dataclasses.astuple(got), dataclasses.astuple(expected), strict=True)
    return all(a == b or (a != a and b != b) for a, b in pairs)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(_TAG, max_size=6), min_size=1, max_size=6))
def test_cached_marks_are_the_loops_marks(tag_lists: list[list[str]]) -> None:
    for tags in tag_lists + tag_lists:  # each again, from the cache
        expected = read_marks_uncached(tags)
        assert _same(read_marks(tuple(tags)), expected)
        assert _same(read_marks(tags), expected)  # a list: not cached, the same answer


_MARKS = st.builds(
    Marks,
    st.booleans(),
    st.none() | st.floats(0, 2e9),
    st.none() | st.text(max_size=5),
    st.none() | st.text(max_size=5),
    st.none() | st.text(max_size=5),
)
_CHANGES = st.dictionaries(
    st.sampled_from([f.name for f in dataclasses.fields(Marks)]),
    st.none() | st.booleans() | st.floats(0, 2e9) | st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(_MARKS, _CHANGES)
def test_but_is_dataclasses_replace(marks: Marks, changes: dict) -> None:
    assert marks.but(**changes) == dataclasses.replace(marks, **changes)


def test_but_refuses_an_unknown_mark_as_replace_does() -> None:
    with pytest.raises(TypeError):
        Marks().but(lease=1.0)
    with pytest.raises(TypeError):
        dataclasses.replace(Marks(), lease=1.0)


@settings(max_examples=200, deadline=None)
@given(_MARKS.filter(lambda m: m.lease_until is None or m.lease_until == int(m.lease_until)))
def test_written_marks_read_back_from_the_cache(marks: Marks) -> None:
    tags = write_marks(("team=a",), marks)
    assert read_marks(tags) == read_marks(tags) == read_marks_uncached(tags)
