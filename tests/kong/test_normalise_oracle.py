"""The client's ``normalise_target`` and the local Kong's ``format_target`` agree.

They are two implementations of Kong's ``format_target`` (``kong/db/dao/targets.lua`` over
``normalize_ip``/``format_host`` in ``kong/tools/ip.lua``), kept apart on purpose: the server is
the oracle the client is tested against, and one shared copy would let a mistake in it pass both
ways. This property test is what keeps the two from drifting: for any input without
surrounding whitespace (which the client trims before Kong sees it), both give the same
spelling or both refuse.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sidecar.kong.models import normalise_target
from sidecar.kong_local.addresses import format_target

_HEX = "0123456789abcdefABCDEF"
# Kong's patterns are ASCII (Lua's %d); non-ASCII digits look like digits to Python's \d.
_ODD = "\u0661\uff11\u00e9 \n"

octet = st.one_of(st.integers(0, 300).map(str), st.text("0123456789", min_size=1, max_size=4))
port = st.one_of(st.none(), st.integers(0, 70000).map(str), st.text("0123456789\u0661", max_size=6))
ipv4 = st.tuples(st.lists(octet, min_size=3, max_size=5), port).map(
    lambda t: ".".join(t[0]) + (f":{t[1]}" if t[1] is not None else "")
)
group = st.text(_HEX + "\u0661g", min_size=0, max_size=5)
ipv6_bare = st.lists(group, min_size=2, max_size=9).map(":".join)
ipv6 = st.one_of(
    ipv6_bare,
    st.tuples(ipv6_bare, port).map(
        lambda t: f"[{t[0]}]" + (f":{t[1]}" if t[1] is not None else "")
    ),
)
label = st.text("abcxyzABC0123456789-_" + _ODD, min_size=0, max_size=6)
name = st.tuples(st.lists(label, min_size=1, max_size=4), port).map(
    lambda t: ".".join(t[0]) + (f":{t[1]}" if t[1] is not None else "")
)
anything = st.text(_HEX + ":.[]-_xyz" + _ODD, max_size=24)


def client(raw: str) -> str | None:
    try:
        return normalise_target(raw)
    except ValueError:
        return None


@settings(max_examples=600, deadline=None)
@given(st.one_of(ipv4, ipv6, name, anything))
@example("\u0661.2.3.4:80")
@example("10.0.0.1:\u0661")
@example("host:\uff11")
def test_client_and_local_kong_should_spell_or_refuse_every_target_alike(raw: str) -> None:
    if raw != raw.strip():
        return  # the client trims; Kong never sees the spaces
    assert client(raw) == format_target(raw)


@pytest.mark.parametrize(
    "raw", ["host:\uff18\uff10", "10.0.0.1:\u0661", "fe80::1\n", "[::1]:80\n", "orders.svc\n"]
)
def test_local_kong_should_refuse_what_luas_ascii_patterns_refuse(raw: str) -> None:
    """``%d`` is ASCII and ``$`` the very end in ``kong/tools/ip.lua``'s patterns."""
    assert format_target(raw) is None
