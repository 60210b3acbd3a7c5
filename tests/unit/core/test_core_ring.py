"""The consistent-hashing ring rebuilt as Kong builds it."""

from __future__ import annotations

from fractions import Fraction

import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.ring import RingAddress, continuum, hash_space_shares, variant_ring_shares


def test_xxhash32_is_the_one_kong_uses():
    """luaxxhash's README vector (the library Kong's rockspec pins: ``luaxxhash >= 1.0``)."""
    assert xxhash.xxh32_intdigest(b"Cats are interesting.") == 1710037756


def addresses(weights: dict[str, int]) -> list[RingAddress]:
    out = []
    for target, weight in weights.items():
        host, _, port = target.rpartition(":")
        out.append(RingAddress(target, host, int(port), weight))
    return out


def test_points_follow_kongs_formula():
    ring = continuum(addresses({"10.0.0.1:80": 90, "10.0.0.2:80": 10}), 2, 10000)
    counts = {0: 0, 1: 0}
    for owner in ring.values():
        counts[owner] += 1
    # floor(w / total * n_targets * 160): 288 and 32 points
    assert counts == {0: 288, 1: 32}


def test_positive_weight_gets_at_least_one_point():
    ring = continuum(addresses({"10.0.0.1:80": 65535, "10.0.0.2:80": 1}), 2, 10000)
    assert 1 in ring.values()


@given(
    st.dictionaries(
        st.sampled_from([f"10.0.0.{i}:80" for i in range(1, 9)]),
        st.integers(0, 1000),
        min_size=1,
    ),
    st.sampled_from([1000, 10000, 65536]),
)
@settings(max_examples=60, deadline=None)
def test_hash_space_is_fully_assigned(weights, slots):
    shares = hash_space_shares(addresses(weights), len(weights), slots)
    if sum(weights.values()) == 0:
        assert shares == {}
        return
    assert sum(shares.values()) == 1
    assert all(weights[t] > 0 for t in shares)  # weight 0 owns nothing


def test_small_canary_on_a_ring_is_coarse_but_close():
    weights = {"10.0.0.1:80": 38, "10.0.0.2:80": 1, "10.0.0.3:80": 1}
    variants = {"10.0.0.1:80": "stable", "10.0.0.2:80": "baseline", "10.0.0.3:80": "canary"}
    shares = variant_ring_shares(addresses(weights), variants, 3, 10000)
    assert sum(shares.values()) == 1
    for variant in ("baseline", "canary"):
        # 12 of 480 points: about 2.5 %, but the arcs are random, so not exact
        assert Fraction(1, 200) < shares[variant] < Fraction(8, 100)


def test_ip_targets_are_their_own_addresses_and_hostnames_are_unknown():
    """Issue 13 item 15: before Kong 3.x builds a balancer, IP targets still predict the ring."""
    from sidecar.core.ring import literal_address, predicted_addresses

    assert literal_address("10.0.0.1:80") == ("10.0.0.1", 80)
    assert literal_address("[0000:0000:0000:0000:0000:0000:0000:0001]:8000") == (
        "[0000:0000:0000:0000:0000:0000:0000:0001]",
        8000,
    )
    assert literal_address("orders-canary.svc:80") is None
    assert literal_address("10.0.0.1.nip.io:80") is None
    found, unknown = predicted_addresses(
        [("10.0.0.1:80", 18), ("orders.svc:80", 1), ("quiet.svc:80", 0), ("10.0.0.3:80", 1)]
    )
    assert [(a.target, a.ip, a.port, a.weight) for a in found] == [
        ("10.0.0.1:80", "10.0.0.1", 80, 18),
        ("10.0.0.3:80", "10.0.0.3", 80, 1),
    ]
    assert unknown == ["orders.svc:80"]  # a hostname at weight 0 gets no points: not needed
