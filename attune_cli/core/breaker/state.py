"""The breaker's rules, apart from where its state is kept: settings, keys, permits, states
and which outcomes count as failures (see ``attune_cli.core.breaker`` for the state machine)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core.errors import ConfigError
from attune_cli.core.failures import FailureClass, clamp_retry_after_s, classify

if TYPE_CHECKING:
    pass


CLOSED = "closed"


OPEN = "open"


HALF_OPEN = "half_open"


ENDPOINT_PREFIX = "endpoint:"
"""Keys of endpoint breakers start with this; model breakers are ``provider/model``."""


class BreakerKind(StrEnum):
    """What a breaker guards: one model, or every model behind one base URL."""

    MODEL = "model"
    ENDPOINT = "endpoint"


@dataclass(frozen=True)
class BreakerSettings:
    """When breakers trip and for how long they stay open (``[breaker]`` in ``config.toml``).

    Attributes:
        window_s: the sliding window over which the failure rate is measured.
        failure_rate_threshold: the failure rate (0–1) in the window that trips the breaker.
        min_calls: calls needed in the window before the failure rate is trusted.
        consecutive_failures: a run of this many failures trips it whatever the rate.
        open_base_s: the first open period; it doubles on every re-open.
        open_max_s: the longest open period the doubling reaches.
        probe_lease_s: how long a half-open probe holds its lease before another process may
            probe (covers a probing process that died).
        lock_timeout_s: how long to wait for the store's write lock before giving up and
            letting the call through with a warning.
    """

    window_s: float = 120.0
    failure_rate_threshold: float = 0.5
    min_calls: int = 5
    consecutive_failures: int = 5
    open_base_s: float = 30.0
    open_max_s: float = 300.0
    probe_lease_s: float = 30.0
    lock_timeout_s: float = 5.0

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path) -> BreakerSettings:
        """Read ``[breaker]`` from a parsed ``config.toml``; absent keys keep their defaults.

        Args:
            config: the parsed ``config.toml``.
            path: the file, for error messages.

        Raises:
            ConfigError: a value of the wrong type or out of range, naming ``breaker.KEY``.
        """
        # Imported here: the call path (before_call/after_call) never needs the config reader.
        from attune_cli.core.config import get_number, table

        section = table(config, path, "breaker")
        defaults = cls()

        def read(
            key: str, minimum: float, maximum: float | None = None, integer: bool = False
        ) -> float:
            return get_number(
                section,
                key,
                getattr(defaults, key),
                path=path,
                prefix="breaker",
                minimum=minimum,
                maximum=maximum,
                integer=integer,
            )

        settings = cls(
            window_s=float(read("window_s", 1.0)),
            failure_rate_threshold=float(read("failure_rate_threshold", 0.01, 1.0)),
            min_calls=int(read("min_calls", 1, integer=True)),
            consecutive_failures=int(read("consecutive_failures", 1, integer=True)),
            open_base_s=float(read("open_base_s", 0.0)),
            open_max_s=float(read("open_max_s", 0.0)),
            probe_lease_s=float(read("probe_lease_s", 1.0)),
            lock_timeout_s=float(read("lock_timeout_s", 0.0, 60.0)),
        )
        if settings.open_max_s < settings.open_base_s:
            raise ConfigError(
                path,
                f"must be at least breaker.open_base_s ({settings.open_base_s:g})",
                key="breaker.open_max_s",
                value=section.get("open_max_s", settings.open_max_s),
            )
        return settings

    def open_period_s(self, reopen_count: int, retry_after_s: float | None = None) -> float:
        """How long a breaker stays open after its ``reopen_count``-th re-open (0 = first trip).

        ``open_base_s · 2ⁿ`` capped at ``open_max_s``, and never shorter than the server's
        ``Retry-After`` (itself capped at one hour).
        """
        doubled_s = min(self.open_base_s * 2.0 ** min(reopen_count, 32), self.open_max_s)
        # Past the ceiling the breaker probes once an hour, which costs one request, instead
        # of trusting a clock-skewed or absurd header for days.
        return max(doubled_s, clamp_retry_after_s(retry_after_s) or 0.0)


@dataclass(frozen=True)
class Permit:
    """Leave to make one call, returned by ``CircuitBreaker.before_call``.

    Hand it back to ``CircuitBreaker.after_call`` with the outcome.

    Attributes:
        key: the breaker's key (``provider/model``).
        generation: the breaker's generation when the permit was issued (stale-result rule).
        probe: whether this call is the half-open probe (it holds the lease).
        started_at: epoch seconds from the breaker's clock when the permit was issued.
        degraded: the store was unusable; the call goes ahead unprotected and its outcome is
            not recorded.
    """

    key: str
    generation: int
    probe: bool
    started_at: float
    degraded: bool = False


@dataclass(frozen=True)
class BreakerState:
    """One breaker as ``attune route breakers`` shows it.

    Attributes:
        key: ``provider/model``.
        state: ``closed``, ``open`` or ``half_open``.
        failures: failed calls within the window.
        calls: calls with a counted outcome (success or failure) within the window.
        opened_at: epoch seconds of the latest (re-)open, or None when closed.
        retry_after_s: seconds until a call may go through (0 when a probe may go now), or
            None when closed.
        consecutive_failures: the current run of failures.
        open_until: epoch seconds when the open period ends, or None when closed.
        reopen_count: how many times it re-opened since it last closed.
        probe_in_flight: whether a process holds a live probe lease.
        kind: whether it guards a model or an endpoint (derived from the key).
    """

    key: str
    state: str
    failures: int
    calls: int
    opened_at: float | None
    retry_after_s: float | None
    consecutive_failures: int = 0
    open_until: float | None = None
    reopen_count: int = 0
    probe_in_flight: bool = False

    @property
    def kind(self) -> BreakerKind:
        return kind_of_key(self.key)

    def as_dict(self) -> dict[str, Any]:
        """The ``route breakers --json`` item (DESIGN's stable keys first, then extras).

        ``opened_at`` and ``open_until`` keep their meaning (Unix seconds, as scripts already
        read them); ``opened_at_iso`` and ``open_until_iso`` are the same times in ISO-8601 UTC.
        """
        from attune_cli.core.formats import iso_time

        return {
            "key": self.key,
            "state": self.state,
            "failures": self.failures,
            "calls": self.calls,
            "opened_at": self.opened_at,
            "retry_after_s": None if self.retry_after_s is None else round(self.retry_after_s, 3),
            "consecutive_failures": self.consecutive_failures,
            "open_until": self.open_until,
            "reopen_count": self.reopen_count,
            "probe_in_flight": self.probe_in_flight,
            "kind": str(self.kind),
            "opened_at_iso": iso_time(self.opened_at),
            "open_until_iso": iso_time(self.open_until),
        }


def breaker_key(provider: str, model: str) -> str:
    """The breaker key of a model: ``provider/model`` (``anthropic/claude-sonnet-4-5``)."""
    return f"{provider}/{model}"


def endpoint_key(base_url: str) -> str:
    """The breaker key of an endpoint: ``endpoint:`` and its base URL.

    ``endpoint:http://127.0.0.1:11434/v1`` is what ``attune route breakers`` lists and what
    ``attune route breakers reset`` takes. The base URL is the one ``attune auth status`` shows.
    """
    return ENDPOINT_PREFIX + base_url.rstrip("/")


def kind_of_key(key: str) -> BreakerKind:
    """Whether ``key`` names a model's breaker or an endpoint's."""
    return BreakerKind.ENDPOINT if key.startswith(ENDPOINT_PREFIX) else BreakerKind.MODEL


def counts_as_failure(kind: str | None, status: int | None) -> bool | None:
    """The breaker's verdict on a call's outcome, from ``failures.classify``.

    Args:
        kind: the error kind (``CallFailed.kind`` or a provider's error type), None on success.
        status: the HTTP status when a response arrived.

    Returns:
        True for an outage (5xx, 529, 408, 409, timeouts, connection errors, a malformed or
        broken answer), False for a success (no error kind), None for an outcome the breaker
        ignores: a caller error, a rate limit (429 whatever its body says), a cancellation, or a
        quality failure (an answer arrived; the breaker guards availability, not quality).
    """
    if not kind and (status is None or 200 <= status < 300):
        return False
    failure_class = classify(status, kind)
    if failure_class is FailureClass.OUTAGE:
        return True
    return None
