"""Failure classes: status first, kind second; the store's SQL and Python always agree."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attune_cli.core.failures import FailureClass, classify, failure_class_of, sql_failure_class

C = FailureClass


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        # The README's promise: 429 is a rate limit whatever the body says (Anthropic sends
        # 429 with type "api_error" at times).
        (429, "api_error", C.RATE_LIMIT),
        (429, None, C.RATE_LIMIT),
        (None, "rate_limit_error", C.RATE_LIMIT),
        (None, "insufficient_quota", C.RATE_LIMIT),
        (503, None, C.OUTAGE),
        (529, "overloaded_error", C.OUTAGE),
        (500, "invalid_request_error", C.OUTAGE),  # the status decides first
        (408, None, C.OUTAGE),
        (409, None, C.OUTAGE),
        (None, "connection", C.OUTAGE),
        (None, "timeout", C.OUTAGE),
        (None, "malformed_response", C.OUTAGE),
        (200, "overloaded_error", C.OUTAGE),  # an error event in a 200 stream: the kind decides
        (400, None, C.CALLER_ERROR),
        (401, "authentication_error", C.CALLER_ERROR),
        (404, None, C.CALLER_ERROR),
        (413, None, C.CALLER_ERROR),
        (422, None, C.CALLER_ERROR),
        (None, "auth", C.CALLER_ERROR),
        (None, "cancelled", C.CANCELLED),
        (None, None, C.QUALITY),  # telemetry record --failure with nothing else said
        (None, "wrong_answer", C.QUALITY),
    ],
)
def test_each_failure_has_one_class(status: int | None, kind: str | None, expected: C) -> None:
    assert classify(status, kind) is expected


def test_only_outages_and_quality_count_against_a_model() -> None:
    assert {c for c in C if c.counts_against_model} == {C.OUTAGE, C.QUALITY}


def test_a_success_has_no_class() -> None:
    assert failure_class_of(True, 200, None) is None
    assert failure_class_of(False, 503, None) is C.OUTAGE


KINDS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "rate_limit",
            "Rate-Limit_Error",
            "api_error",
            "stream_error",
            "STREAM_ERROR",
            "overloaded_error",
            "cancelled",
            "auth",
            "timeout",
            " timeout ",
            "quota",
            "",
            "  ",
            "_error",
            "x_error_error",
        ]
    ),
    st.text(alphabet="abcdefgh_-ERROR ", max_size=20),
)
STATUSES = st.one_of(st.none(), st.integers(min_value=100, max_value=599))


@given(success=st.booleans(), status=STATUSES, kind=KINDS)
def test_the_stores_sql_classifies_exactly_as_python_does(
    success: bool, status: int | None, kind: str | None
) -> None:
    conn = sqlite3.connect(":memory:")
    (found,) = conn.execute(
        f"SELECT {sql_failure_class('?1', '?2', '?3')}", (int(success), status, kind)
    ).fetchone()
    expected = failure_class_of(success, status, kind)
    assert found == (None if expected is None else str(expected))
