"""Ramp schedules, ramp ids and lease marks: pure functions of an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.lease import (
    LeasePolicy,
    Marks,
    expired,
    read_marks,
    renewed,
    write_marks,
)
from sidecar.core.ramp import RampSchedule, RampStep, linear_steps, schedule_steps, unequal_steps
from sidecar.core.ramp_token import RampTokenError, decode, encode, short_id
from sidecar.core.split import TOTAL, Split, SplitError
from sidecar.core.tags import MANAGED_TAG

SECRET = b"0123456789abcdef0123456789abcdef"


def even_split(shifted_each: int) -> Split:
    return Split(stable=TOTAL - 2 * shifted_each, baseline=shifted_each, canary=shifted_each)


@given(
    start=st.integers(0, 2500),
    end=st.integers(0, 2500),
    steps=st.integers(1, 100),
    duration=st.floats(0, 86400),
)
@settings(max_examples=300, deadline=None)
def test_linear_ramp_is_monotone_equal_and_ends_at_target(start, end, steps, duration):
    ramp = linear_steps(even_split(start), even_split(end), steps, duration)
    assert len(ramp) == steps
    assert ramp[-1].split == even_split(end)
    assert ramp[-1].offset == pytest.approx(duration)
    assert unequal_steps(ramp) == []  # canary and baseline equal at every step
    canaries = [even_split(start).canary] + [s.split.canary for s in ramp]
    assert canaries == sorted(canaries) or canaries == sorted(canaries, reverse=True)
    offsets = [s.offset for s in ramp]
    assert offsets == sorted(offsets)


def test_linear_ramp_from_the_article():
    """2.5 % each ramping to 10 % in 3 steps over 30 minutes: 5, 7.5, 10 every 10 minutes."""
    ramp = linear_steps(even_split(250), even_split(1000), 3, 1800)
    assert [str(s.split) for s in ramp] == ["90/5/5", "85/7.5/7.5", "80/10/10"]
    assert [s.offset for s in ramp] == [600, 1200, 1800]


def test_schedule_steps_start_at_once_then_every_interval():
    splits = [even_split(250), even_split(500), even_split(1000)]
    steps = schedule_steps(splits, 300)
    assert [s.offset for s in steps] == [0, 300, 600]
    with pytest.raises(SplitError):
        schedule_steps(splits, -1)


def test_step_index_and_progress_follow_the_clock():
    schedule = RampSchedule(
        "orders", 1000.0, schedule_steps([even_split(x) for x in (250, 500, 1000)], 60)
    )
    assert schedule.step_index(999) == -1
    assert schedule.step_index(1000) == 0
    assert schedule.step_index(1059.9) == 0
    assert schedule.step_index(1060) == 1
    assert schedule.step_index(10**9) == 2
    assert [schedule.progress(t) for t in (999, 1000, 1060, 1120)] == [0, 33, 66, 100]
    assert schedule.next_change_at(1000) == 1060
    assert schedule.next_change_at(1120) is None
    assert schedule.ends_at == 1120


def test_schedule_rules():
    with pytest.raises(SplitError):
        RampSchedule("orders", 0, ())
    with pytest.raises(SplitError):
        RampSchedule("orders", 0, (RampStep(10, even_split(1)), RampStep(5, even_split(2))))


@given(
    steps=st.lists(st.integers(0, 5000), min_size=1, max_size=20),
    start=st.floats(0, 2e9),
    lease=st.one_of(st.none(), st.floats(1, 86400)),
)
@settings(max_examples=200, deadline=None)
def test_ramp_id_round_trips_and_is_tamper_proof(steps, start, lease):
    schedule = RampSchedule(
        "orders",
        round(start, 3),
        schedule_steps([even_split(x) for x in steps], 30),
        lease=lease,
        nonce="abcd",
        origin=Split.STABLE_ONLY,
    )
    token = encode(schedule, SECRET)
    assert decode(token, SECRET) == schedule
    with pytest.raises(RampTokenError):
        decode(token, b"another-secret-entirely-0123456")
    body, _, mac = token.partition(".")
    tampered = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    with pytest.raises(RampTokenError):
        decode(tampered, SECRET)
    assert len(short_id(token)) == 16


def _issued_id() -> str:
    schedule = RampSchedule(
        "orders", 1000.0, schedule_steps([even_split(250), even_split(500)], 60), nonce="abcd"
    )
    return encode(schedule, SECRET)


@pytest.mark.parametrize("suffix", ["=", "==", "~~~", ".!!", " ", "\n", "%", "=A"])
def test_an_issued_id_with_junk_appended_is_refused(suffix):
    """Issue 13 item 8: base64 decoding ignored trailing padding and foreign characters."""
    token = _issued_id()
    with pytest.raises(RampTokenError):
        decode(token + suffix, SECRET)


_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.~!+/ %\n"


@st.composite
def alterations(draw: st.DrawFn, token: str) -> str:
    """The issued id with characters inserted, deleted or replaced anywhere."""
    altered = list(token)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        edges = st.sampled_from([0, len(altered) - 1, len(altered)])  # where decoders slip
        at = draw(st.one_of(edges, st.integers(0, len(altered))))
        char = draw(st.sampled_from(_ID_CHARS))
        if kind == "insert":
            altered.insert(at, char)
        elif at < len(altered):
            if kind == "delete":
                del altered[at]
            else:
                altered[at] = char
    return "".join(altered)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_every_alteration_of_an_issued_id_is_refused(data):
    """Exactly the issued id decodes; anything else is not a ramp (404 at the API)."""
    token = _issued_id()
    altered = data.draw(alterations(token))
    if altered == token:
        assert decode(altered, SECRET).nonce == "abcd"
        return
    with pytest.raises(RampTokenError):
        decode(altered, SECRET)


def test_every_single_character_edit_of_an_issued_id_is_refused():
    """Exhaustive over one edit: each position, deleted, replaced or preceded by any of
    the characters above (about 20,000 ids)."""
    token = _issued_id()
    edits = set()
    for at in range(len(token) + 1):
        if at < len(token):
            edits.add(token[:at] + token[at + 1 :])
        for char in _ID_CHARS:
            edits.add(token[:at] + char + token[at:])
            if at < len(token):
                edits.add(token[:at] + char + token[at + 1 :])
    edits.discard(token)
    accepted = []
    for altered in edits:
        try:
            decode(altered, SECRET)
        except RampTokenError:
            continue
        accepted.append(altered)
    assert accepted == []


def test_the_last_character_of_the_signature_has_no_spare_bits():
    """22 base64 characters carry 132 bits for a 128-bit signature: the spare 4 bits of the
    last character must not give the same id other spellings."""
    token = _issued_id()
    body, _, mac = token.partition(".")
    alphabet = _ID_CHARS[:64]
    for char in alphabet:
        if char != mac[-1]:
            with pytest.raises(RampTokenError):
                decode(f"{body}.{mac[:-1]}{char}", SECRET)


@pytest.mark.parametrize("junk", ["", "abc", "abc.", ".abc", "a.b.c", "!!!.???"])
def test_garbage_ramp_ids_are_refused(junk):
    with pytest.raises(RampTokenError):
        decode(junk, SECRET)


@given(
    foreign=st.lists(st.text("abcxyz=-_.", min_size=1, max_size=8), max_size=4),
    lease=st.one_of(st.none(), st.integers(0, 2**32)),
    ramp=st.one_of(st.none(), st.text("0123456789abcdef", min_size=16, max_size=16)),
)
def test_marks_round_trip_and_keep_foreign_tags(foreign, lease, ramp):
    marks = Marks(managed=True, lease_until=lease, ramp=ramp)
    tags = write_marks(foreign, marks)
    assert read_marks(tags) == Marks(True, None if lease is None else float(lease), ramp, None)
    for tag in foreign:
        if not tag.startswith("kong-canary-") and tag != MANAGED_TAG:
            assert tag in tags
    # writing the same marks again changes nothing
    assert write_marks(tags, read_marks(tags)) == tags


def test_lease_policy_and_expiry():
    policy = LeasePolicy(default=600, maximum=3600)
    assert policy.deadline(1000, None) == 1600
    assert policy.deadline(1000, 60) == 1060
    with pytest.raises(SplitError, match="at most 3600"):
        policy.deadline(1000, 3601)
    with pytest.raises(SplitError):
        policy.deadline(1000, 0)
    assert not expired(Marks(lease_until=None), 10**10)
    assert not expired(Marks(lease_until=1600), 1599.9)
    assert expired(Marks(lease_until=1600), 1600)


def test_renewal_skips_tiny_moves_so_repeats_write_nothing():
    now = 1000
    assert renewed(None, 4600, now) == 4600
    assert renewed(4600, None, now) is None
    assert renewed(4600, 4630, now) == 4600  # a repeat seconds later: keep, no write
    assert renewed(4600, 4700, now) == 4700  # a real renewal
    assert renewed(4600, 4500, now) == 4500  # a shorter lease asked for: honour it


def test_short_leases_still_renew():
    """A 30 s lease renewed every 5 s must move (the window is a tenth of the lease), and a
    lapsed deadline is always replaced."""
    assert renewed(1030, 1035, 1005) == 1035
    assert renewed(1000, 1030, 1000) == 1030
    assert renewed(990, 1000, 995) == 1000
