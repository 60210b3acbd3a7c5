"""Every refusal the services raise is answered through the one table in ``sidecar.errors``."""

from __future__ import annotations

import inspect

import pytest

from sidecar.core import refusals
from sidecar.core.refusals import ExpectMismatch, Refusal, StartInPast
from sidecar.errors import MAX_MESSAGE_CHARS, REFUSALS, answer, from_refusal

ALL_REFUSALS = [
    cls
    for _, cls in inspect.getmembers(refusals, inspect.isclass)
    if issubclass(cls, Refusal) and cls is not Refusal
]


@pytest.mark.parametrize("refusal", ALL_REFUSALS, ids=lambda c: c.__name__)
def test_every_refusal_should_have_a_status_and_code_in_the_table(refusal) -> None:
    """A refusal missing from the table would reach the API as a 500 ``internal``."""
    status, code = REFUSALS[refusal]
    # 503 only for "not now" (nothing was written and the request itself is fine: retry)
    assert status in (404, 409, 422) or (status, code) == (503, "not_ready")
    assert code.isidentifier() and code == code.lower()


def test_the_answer_should_carry_message_field_and_details_in_the_one_shape() -> None:
    refused = ExpectMismatch("read again", field="expect", details={"current": None})
    assert from_refusal(refused).body() == {
        "error": {
            "code": "expect_mismatch",
            "message": "read again",
            "field": "expect",
            "details": {"current": None},
        }
    }
    assert from_refusal(refused).status == 409


def test_the_answer_should_cut_a_long_message_like_any_api_error() -> None:
    api = answer(StartInPast("x" * 5000, field="start_at"))
    assert (api.status, api.code) == (422, "invalid_field")
    assert len(api.message) <= MAX_MESSAGE_CHARS
