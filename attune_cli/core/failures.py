"""Failure classes: what a failed call says about the model that made it.

Every failed call is one of::

    caller_error   the request was wrong (4xx but 408, 409 and 429): bad input, key,
                   permission, model name, size. Says nothing about the model.
    rate_limit     429, or a provider's own rate-limit error type: the provider working as
                   designed. Says nothing about the model.
    outage         the provider could not answer: connection refused or reset, DNS, 5xx, 529,
                   408, 409, timeouts, a malformed or broken answer. Counts against the model
                   with a short memory (hours), so a recovered provider soon regains its standing.
    quality        the answer came but was not good enough: a failure recorded without a
                   provider error kind (``telemetry record --failure``), or a kind attune does
                   not know. Counts against the model with the long memory (days).
    cancelled      attune stopped waiting (Ctrl-C, a client that went away). Never counts.

The HTTP status decides first and the error kind (the body's type) second, so an Anthropic 429
whose body says ``api_error`` is a rate limit, not an outage.
"""

from __future__ import annotations

import math
from enum import StrEnum

RETRY_AFTER_CEILING_S = 3600.0
"""The longest server retry hint attune believes: one hour. A hint beyond it (a clock-skewed
date, ``Retry-After: 1000000000``) is read as this, everywhere: the executor's messages, the
envelope's ``retry_after_s`` and the circuit breaker's open period."""


def clamp_retry_after_s(seconds: float | None) -> float | None:
    """A server's retry hint as attune uses it: within ``[0, RETRY_AFTER_CEILING_S]``.

    Args:
        seconds: the hint (``retry-after-ms`` / ``retry-after``), None when there was none.

    Returns:
        None for no hint or a non-finite one, else the hint clamped (a date in the past is 0).
    """
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CEILING_S)


class FailureClass(StrEnum):
    """The kind of a failed call; see the module docstring."""

    CALLER_ERROR = "caller_error"
    RATE_LIMIT = "rate_limit"
    OUTAGE = "outage"
    QUALITY = "quality"
    CANCELLED = "cancelled"

    @property
    def counts_against_model(self) -> bool:
        """Whether the failure lowers the model's success rate (outage and quality do)."""
        return self in (FailureClass.OUTAGE, FailureClass.QUALITY)


# Error kinds as providers and attune name them, normalised (lower case, "-" → "_", a trailing
# "_error" removed).
_CALLER_KINDS = frozenset(
    {
        "auth",
        "authentication",
        "billing",
        "permission",
        "forbidden",
        "bad_request",
        "invalid_request",
        "not_found",
        "too_large",
        "request_too_large",
        "unprocessable",
        "validation",
        "context_length_exceeded",
        "missing_key",
        "no_key",
        "client",
    }
)
_RATE_LIMIT_KINDS = frozenset(
    {"rate_limit", "rate_limited", "rate_limit_exceeded", "quota", "insufficient_quota"}
)
_OUTAGE_KINDS = frozenset(
    {
        "server",
        "server_error",
        "api",
        "overloaded",
        "timeout",
        "connect_timeout",
        "read_timeout",
        "deadline",
        "conflict",
        "connection",
        "connect",
        "dns",
        "network",
        "protocol",
        "remote_protocol",
        "malformed_response",
        "stream",
        "stream_error",
        "service_unavailable",
    }
)
_CANCELLED_KINDS = frozenset({"cancelled", "canceled", "cancellation", "interrupted"})


def normalise_kind(kind: str) -> str:
    """``kind`` in the form the tables above use (``Rate-Limit_Error`` → ``rate_limit``)."""
    normal = kind.strip(" ").lower().replace("-", "_")
    return normal if normal == "stream_error" else normal.removesuffix("_error")


def classify(status: int | None, kind: str | None) -> FailureClass:
    """The class of a failed call: the HTTP status first, the error kind second.

    Args:
        status: the HTTP status when a response arrived (None: no response, or unknown). A
            2xx status means the failure came after the response began (an error event in a
            stream), so the kind decides.
        kind: the error kind (``CallFailed.kind``, a provider's error type, or what
            ``telemetry record --error-kind`` was given); None when nobody said.

    Returns:
        The failure class. A failure with neither status nor kind is a quality failure.
    """
    if status is not None and not 200 <= status < 300:
        if status == 429:
            return FailureClass.RATE_LIMIT
        if status >= 500 or status in (408, 409):
            return FailureClass.OUTAGE
        if 400 <= status < 500:
            return FailureClass.CALLER_ERROR
    if not kind:
        return FailureClass.QUALITY
    normal = normalise_kind(kind)
    if normal in _RATE_LIMIT_KINDS:
        return FailureClass.RATE_LIMIT
    if normal in _CALLER_KINDS:
        return FailureClass.CALLER_ERROR
    if normal in _OUTAGE_KINDS:
        return FailureClass.OUTAGE
    if normal in _CANCELLED_KINDS:
        return FailureClass.CANCELLED
    return FailureClass.QUALITY


def failure_class_of(success: bool, status: int | None, kind: str | None) -> FailureClass | None:
    """``classify`` for a failed call, None for a successful one."""
    return None if success else classify(status, kind)


def sql_failure_class(
    success: str = "success", status: str = "status", kind: str = "error_kind"
) -> str:
    """``failure_class_of`` as one SQL expression over a row's columns, for the store.

    Built from the same tables as ``classify``, so the class the store keeps for a row and the
    class Python gives the same call can never disagree (a test holds them together).

    Args:
        success: the column holding 1 for a success, 0 for a failure.
        status: the HTTP status column.
        kind: the error kind column.
    """
    trimmed = f"lower(replace(trim({kind}), '-', '_'))"
    normal = (
        f"(CASE WHEN {trimmed} LIKE '%\\_error' ESCAPE '\\' AND {trimmed} <> 'stream_error' "
        f"THEN substr({trimmed}, 1, length({trimmed}) - 6) ELSE {trimmed} END)"
    )

    def among(kinds: frozenset[str]) -> str:
        return ", ".join(f"'{name}'" for name in sorted(kinds))

    failed_status = f"{status} IS NOT NULL AND ({status} < 200 OR {status} > 299)"
    return (
        f"CASE WHEN {success} THEN NULL "
        f"WHEN {failed_status} AND {status} = 429 THEN '{FailureClass.RATE_LIMIT}' "
        f"WHEN {failed_status} AND ({status} >= 500 OR {status} IN (408, 409)) "
        f"THEN '{FailureClass.OUTAGE}' "
        f"WHEN {failed_status} AND {status} >= 400 THEN '{FailureClass.CALLER_ERROR}' "
        f"WHEN {kind} IS NULL THEN '{FailureClass.QUALITY}' "
        f"WHEN {normal} IN ({among(_RATE_LIMIT_KINDS)}) THEN '{FailureClass.RATE_LIMIT}' "
        f"WHEN {normal} IN ({among(_CALLER_KINDS)}) THEN '{FailureClass.CALLER_ERROR}' "
        f"WHEN {normal} IN ({among(_OUTAGE_KINDS)}) THEN '{FailureClass.OUTAGE}' "
        f"WHEN {normal} IN ({among(_CANCELLED_KINDS)}) THEN '{FailureClass.CANCELLED}' "
        f"ELSE '{FailureClass.QUALITY}' END"
    )
