"""Framing: a request is complete exactly when its last byte is in, as gunicorn reads it."""

from __future__ import annotations

from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.framing import State, frame
from sidecar.core.lanes import Lane, LaneLimit, lane_for

SANE = settings(max_examples=150, deadline=None)
LIMITS = {"max_head": 8192, "max_body": 4096}
TOKEN_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-")


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    """(the request's bytes, its body, its path), framed by Content-Length or chunked."""
    method = draw(st.sampled_from(["GET", "PUT", "POST", "DELETE"]))
    path = "/" + draw(st.text(TOKEN_CHARS, max_size=20))
    query = draw(st.sampled_from(["", "?dry_run=true"]))
    body = draw(st.binary(max_size=300))
    names = draw(st.lists(st.text(TOKEN_CHARS, min_size=1, max_size=10), max_size=4))
    head = [f"{method} {path}{query} HTTP/1.1", "Host: sidecar"]
    head += [f"X-{name}: {name}" for name in names]
    if draw(st.booleans()):
        head.append(f"Content-Length: {len(body)}")
        payload = body
    else:
        head.append("Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload, body, path


def gunicorn_reads(data: bytes) -> tuple[str, bytes, bytes]:
    """gunicorn's own parser on exactly these bytes: (path, body, what it left unread)."""
    parser = RequestParser(Config(), iter([data]), ("127.0.0.1", 1))
    request = next(parser)
    body = request.body.read()
    return request.path, body, parser.unreader.take_buffered()


@SANE
@given(requests(), st.binary(max_size=40))
def test_a_request_is_complete_exactly_at_its_last_byte(
    case: tuple[bytes, bytes, str], next_bytes: bytes
) -> None:
    data, body, path = case
    for end in range(len(data)):
        assert frame(data[:end], **LIMITS).state is State.INCOMPLETE, end
    framing = frame(data + next_bytes, **LIMITS)  # a pipelined next request stays out
    assert framing.state is State.COMPLETE
    assert framing.length == len(data)
    assert framing.path == path
    assert gunicorn_reads(data)[:2] == (path, body)  # and gunicorn needs nothing more


@SANE
@given(requests(), st.lists(st.integers(1, 50), max_size=30))
def test_resuming_the_chunk_walk_frames_like_one_look(
    case: tuple[bytes, bytes, str], steps: list[int]
) -> None:
    """Fed in pieces, each call resuming where the last stopped: the same answer."""
    data = case[0]
    resume, end = None, 0
    for step in [*steps, len(data)]:
        end = min(end + step, len(data))
        framing = frame(data[:end], **LIMITS, resume=resume)
        if end < len(data):
            assert framing.state is State.INCOMPLETE
            resume = framing.resume
    assert framing == frame(data, **LIMITS)


def test_a_body_of_many_small_chunks_is_walked_once() -> None:
    """100,000 one-byte chunks arriving 6 KB at a time: each look walks only the new ones."""
    head = b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = head + b"1\r\na\r\n" * 100_000 + b"0\r\n\r\n"
    walked = []
    resume = None
    for end in range(len(head), len(data), 6000):
        framing = frame(data[:end], max_head=8192, max_body=200_000, resume=resume)
        start = resume[0] if resume else len(head)
        resume = framing.resume
        assert resume is not None
        walked.append(resume[0] - start)
    assert max(walked) <= 6000
    assert frame(data, max_head=8192, max_body=200_000, resume=resume).length == len(data)


def test_a_head_over_the_limit_is_431_even_before_it_ends() -> None:
    assert frame(b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, **LIMITS).status == 431
    assert frame(b"GET / HTTP/1.1\r\nX: " + b"a" * 100, **LIMITS).state is State.INCOMPLETE


def test_a_body_over_the_limit_is_413_as_soon_as_the_head_says_so() -> None:
    head = b"PUT / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n"
    assert frame(head, **LIMITS).status == 413
    chunked = b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n"
    assert frame(chunked, **LIMITS).status == 413


def test_framing_that_cannot_be_trusted_is_left_to_gunicorn_to_refuse() -> None:
    for head in (
        b"PUT / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"PUT / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"PUT /\r\n\r\n",
        b"PUT / HTTP/1.1\r\nno colon\r\n\r\n",
    ):
        assert frame(head, **LIMITS).state is State.PASS, head


def test_expect_100_continue_is_reported_while_the_body_is_missing() -> None:
    head = b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    assert frame(head, **LIMITS).expects_continue
    assert frame(head + b"{}", **LIMITS).state is State.COMPLETE


def test_only_liveness_and_metrics_reads_have_lanes_of_their_own() -> None:
    assert lane_for("GET", "/healthz") is Lane.HEALTH
    assert lane_for("HEAD", "/healthz") is Lane.HEALTH
    assert lane_for("GET", "/metrics") is Lane.METRICS
    for method, path in (("GET", "/readyz"), ("POST", "/healthz"), ("GET", "/healthz/")):
        assert lane_for(method, path) is Lane.KONG


@given(st.integers(1, 64), st.integers(0, 100), st.integers(0, 200))
def test_a_lane_admits_threads_plus_queue_and_no_more(threads: int, queue: int, n: int) -> None:
    assert LaneLimit(threads, queue).admits(n) == (n < threads + queue)
