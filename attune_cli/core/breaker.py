"""Circuit breakers per provider/model and per endpoint, shared by every attune process.

Two kinds of key live side by side:

* ``provider/model`` (``anthropic/claude-sonnet-4-5``): trips on the rules below, on outages
  only (``counts_as_failure``: status first, error kind second, via ``failures.classify``).
* ``endpoint:BASE_URL`` (``endpoint:http://127.0.0.1:11434/v1``): one base URL that could not
  be reached (connection refused, DNS, no connection within the connect timeout). Its first
  failure opens it, so every model behind a dead server is skipped without a network attempt
  instead of tripping one model breaker after another. The executor reports only
  reachability to it: any response, even a 503, is a success; half-open probing is as for
  models, and a closed endpoint's successes are not written (nothing to count).

The state of each breaker is a row in ``telemetry.db`` (table ``breakers``) plus the recent
outcomes of its calls (``breaker_events``), so a provider that one process saw failing is
avoided by all of them. States::

    closed ──(failure rate ≥ threshold over the window with ≥ min_calls,
    │          or a run of consecutive failures)──▶ open
    open ──(open period over)──▶ half_open (derived: stored as "open" with open_until passed)
    half_open ──one probe at a time (a lease in the store)──▶ success: closed (counts reset)
                                                         └─▶ failure: open again, longer

* Open rejects a call with ``BreakerOpenError(key, retry_after_s)`` before any network access.
* The open period doubles on each re-open (``open_base_s · 2ⁿ`` capped at ``open_max_s``) and
  is never shorter than the server's ``Retry-After``.
* Half-open admits ONE probe across all processes: the first caller writes a lease
  (``probe_owner``, ``probe_lease_until``); the others are rejected until the probe answers or
  the lease expires (the probing process died or hung).
* Every read-decide-write is one ``BEGIN IMMEDIATE`` transaction. A decision that writes nothing
  (a closed breaker lets a call through, an open one rejects it) is a plain read, so the common
  path never waits for the write lock.
* ``generation`` is bumped on every transition (trip, re-open, close, reset). A permit remembers
  the generation it was issued under; a result arriving under another generation is stale and
  changes nothing. So a call that started before a trip can never close a breaker that another
  process re-opened, and failures from before a recovery are not counted after it.
* Neutral outcomes (caller errors, rate limits, cancellation — see ``counts_as_failure``) change
  nothing; a probe with a neutral outcome only hands its lease back.
* Times are wall-clock epoch seconds from an injectable clock, comparable across processes.
* If the store cannot be read or written (read-only, locked past the timeout, corrupt, newer
  schema), calls go ahead (``Permit(degraded=True)``) and ``on_warning`` is told once: the
  breaker must never become the outage.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core import db
from attune_cli.core.errors import AttuneError, BreakerOpenError, ConfigError, OperationError
from attune_cli.core.failures import FailureClass, clamp_retry_after_s, classify
from attune_cli.core.notices import Caution

if TYPE_CHECKING:
    from collections.abc import Iterator

    from attune_cli.core.workspace import Workspace

__all__ = [
    "ENDPOINT_PREFIX",
    "BreakerKind",
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
    "Permit",
    "breaker_key",
    "counts_as_failure",
    "endpoint_key",
    "kind_of_key",
]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

ENDPOINT_PREFIX = "endpoint:"
"""Keys of endpoint breakers start with this; model breakers are ``provider/model``."""


class BreakerKind(StrEnum):
    """What a breaker guards: one model, or every model behind one base URL."""

    MODEL = "model"
    ENDPOINT = "endpoint"


# The store can fail in these ways; each one means "go ahead without the breaker".
_STORE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, AttuneError)


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


@dataclass(frozen=True)
class _Row:
    key: str
    state: str
    consecutive_failures: int
    opened_at: float | None
    open_until: float | None
    reopen_count: int
    probe_lease_until: float | None
    probe_owner: str | None
    generation: int

    def wait_s(self, now: float) -> float:
        """Seconds until a call may pass an open breaker (0: a probe may go now)."""
        if self.open_until is not None and now < self.open_until:
            return self.open_until - now
        if self.probe_lease_until is not None and now < self.probe_lease_until:
            return self.probe_lease_until - now
        return 0.0


_ROW_COLUMNS = (
    "key, state, consecutive_failures, opened_at, open_until, reopen_count, "
    "probe_lease_until, probe_owner, generation"
)


def _read_row(conn: sqlite3.Connection, key: str) -> _Row | None:
    found = conn.execute(f"SELECT {_ROW_COLUMNS} FROM breakers WHERE key = ?", (key,)).fetchone()
    return _Row(*found) if found else None


class CircuitBreaker:
    """Per provider/model and per endpoint circuit breakers whose state lives in ``telemetry.db``.

    Usage::

        breaker = CircuitBreaker(paths.telemetry_db, BreakerSettings.from_config(cfg, file))
        permit = breaker.before_call(breaker_key("openai", "gpt-4o-mini"))  # may raise
        ...  # make the call
        breaker.after_call(permit, failure=counts_as_failure(kind, status),
                           retry_after_s=server_hint_s)

    One instance may be shared by the threads of a process (each thread gets its own SQLite
    connection); any number of processes may use the same file at once.
    """

    def __init__(
        self,
        path: Path,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        """Create a breaker set over the store at ``path`` (nothing is opened yet).

        Args:
            path: ``telemetry.db``; created on the first recorded outcome.
            settings: thresholds and periods; defaults when None.
            clock: wall-clock epoch seconds (inject a fake one in tests).
            owner: who holds probe leases taken by this instance; host:pid:random by default.
            on_warning: told (once per run of failures) when the store is unusable and calls go
                ahead unprotected; logged to ``attune.breaker`` when None.
        """
        self.path = path
        self.settings = settings or BreakerSettings()
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self._clock = clock
        self._on_warning = on_warning
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._warned = False

    @classmethod
    def from_workspace(cls, workspace: Workspace, **options: Any) -> CircuitBreaker:
        """The breakers of ``workspace``: its ``telemetry.db`` and its ``[breaker]`` settings.

        Args:
            workspace: the loaded workspace.
            **options: passed to the constructor (``clock``, ``owner``, ``on_warning``).

        Raises:
            ConfigError: an invalid ``[breaker]`` value.
        """
        settings = BreakerSettings.from_config(workspace.config, workspace.paths.config_file)
        return cls(workspace.paths.telemetry_db, settings, **options)

    def __enter__(self) -> CircuitBreaker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The call path

    def before_call(self, key: str) -> Permit:
        """Ask leave to call ``key``.

        Returns:
            A permit to hand back to ``after_call``. ``permit.probe`` is True when this call is
            the half-open probe; ``permit.degraded`` when the store was unusable.

        Raises:
            BreakerOpenError: the breaker is open, or half-open with another caller's probe in
                flight; ``retry_after_s`` says when to try again. Nothing was sent.
        """
        now = self._clock()
        try:
            row = self._peek(key)
            if row is None or row.state == CLOSED:
                return Permit(key, row.generation if row else 0, probe=False, started_at=now)
            wait_s = row.wait_s(now)
            if wait_s <= 0:
                decision = self._take_probe(key)
                if isinstance(decision, Permit):
                    return decision
                wait_s = decision
        except self._store_errors as exc:
            return self._degraded(key, now, exc)
        raise BreakerOpenError(key, wait_s)

    def after_call(
        self, permit: Permit, *, failure: bool | None, retry_after_s: float | None = None
    ) -> None:
        """Record the outcome of a call made under ``permit``.

        Args:
            permit: what ``before_call`` returned.
            failure: True for an outage signal, False for a success, None for a neutral outcome
                (see ``counts_as_failure``); neutral outcomes change nothing.
            retry_after_s: the server's Retry-After, which the next open period will honour.
        """
        if permit.degraded or (failure is None and not permit.probe):
            return
        endpoint = kind_of_key(permit.key) is BreakerKind.ENDPOINT
        if endpoint and failure is False and not permit.probe:
            # A closed endpoint trips on its first failure whatever came before: a success
            # there would be a write on every call that changes nothing.
            return
        try:
            with self._transaction() as conn:
                self._settle(conn, permit, failure, retry_after_s)
            self._warned = False
        except self._store_errors as exc:
            self._store_failed(exc, "its outcome was not recorded")

    # Reporting and maintenance

    def states(self) -> list[BreakerState]:
        """Every breaker in the store: endpoints, then models, each sorted by key.

        Empty when there is no store yet.

        Raises:
            OperationError: the store cannot be opened or read.
        """
        try:
            conn = self._connection(create=False)
            if conn is None:
                return []
            now = self._clock()
            conn.execute("BEGIN")
            try:
                rows = [
                    _Row(*found)
                    for found in conn.execute(
                        f"SELECT {_ROW_COLUMNS} FROM breakers ORDER BY key"
                    ).fetchall()
                ]
                counts = {
                    key: (calls, failures or 0)
                    for key, calls, failures in conn.execute(
                        "SELECT key, COUNT(*), SUM(failure) FROM breaker_events "
                        "WHERE ts >= ? GROUP BY key",
                        (now - self.settings.window_s,),
                    )
                }
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._forget_connection()
            raise OperationError(
                f"{self.path}: cannot read circuit breakers ({exc})",
                hint=f"move {self.path} aside to start a new store",
            ) from None
        described = [self._describe(row, counts.get(row.key, (0, 0)), now) for row in rows]
        # Endpoints first: one of them open explains every model behind it.
        return sorted(described, key=lambda state: state.kind is not BreakerKind.ENDPOINT)

    def reset(self, key: str | None = None) -> int:
        """Close one breaker (``key``) or all of them, forgetting their recent outcomes.

        A call already in flight when the reset happens is not counted afterwards.

        Returns:
            How many breakers were reset (0 when ``key`` is unknown or there is no store).

        Raises:
            OperationError: the store cannot be opened or written.
        """
        try:
            if self._connection(create=False) is None:
                return 0
            with self._transaction() as conn:
                now = self._clock()
                where, args = ("WHERE key = ?", (key,)) if key is not None else ("", ())
                changed = conn.execute(
                    "UPDATE breakers SET state = ?, consecutive_failures = 0, opened_at = NULL, "
                    "open_until = NULL, reopen_count = 0, probe_lease_until = NULL, "
                    f"probe_owner = NULL, generation = generation + 1, updated_at = ? {where}",
                    (CLOSED, now, *args),
                ).rowcount
                conn.execute(f"DELETE FROM breaker_events {where}", args)
        except sqlite3.Error as exc:
            self._forget_connection()
            raise OperationError(
                f"{self.path}: cannot reset circuit breakers ({exc})",
                hint=f"check that {self.path} is writable",
            ) from None
        return changed

    def close(self) -> None:
        """Close the store connections this instance opened (it may be used again later)."""
        with self._lock:
            connections, self._connections = self._connections, []
        self._local = threading.local()
        for _pid, conn in connections:
            # One opened by another thread refuses; it is closed when collected.
            with suppress(sqlite3.Error):
                conn.close()

    # Decisions inside the store

    # What "the store failed" looks like (a subclass over another database adds its errors).
    _store_errors: tuple[type[BaseException], ...] = _STORE_ERRORS

    def _read_for_update(self, conn: Any, key: str) -> _Row | None:
        """The breaker's row, held until the transaction ends (``BEGIN IMMEDIATE`` holds it)."""
        return _read_row(conn, key)

    def _peek(self, key: str) -> _Row | None:
        """The breaker's row read without the write lock (the common, no-write path)."""
        conn = self._connection(create=False)
        return _read_row(conn, key) if conn is not None else None

    def _take_probe(self, key: str) -> Permit | float:
        """Take the half-open probe lease, or say how long to wait if someone was first."""
        with self._transaction() as conn:
            now = self._clock()
            row = self._read_for_update(conn, key)
            if row is None or row.state == CLOSED:
                # Closed by another process since we looked.
                return Permit(key, row.generation if row else 0, probe=False, started_at=now)
            wait_s = row.wait_s(now)
            if wait_s > 0:
                return wait_s
            conn.execute(
                "UPDATE breakers SET probe_owner = ?, probe_lease_until = ?, updated_at = ? "
                "WHERE key = ?",
                (self.owner, now + self.settings.probe_lease_s, now, key),
            )
        self._warned = False
        return Permit(key, row.generation, probe=True, started_at=now)

    def _settle(
        self,
        conn: sqlite3.Connection,
        permit: Permit,
        failure: bool | None,
        retry_after_s: float | None,
    ) -> None:
        """Apply one outcome; runs inside the caller's ``BEGIN IMMEDIATE`` transaction."""
        key = permit.key
        now = self._clock()
        row = self._read_for_update(conn, key)
        if row is None:
            conn.execute("INSERT INTO breakers (key, updated_at) VALUES (?, ?)", (key, now))
            row = _read_row(conn, key)
            assert row is not None
        if permit.generation != row.generation:
            # Issued before a trip, re-open, close or reset: it says nothing about the present.
            return
        if failure is None:
            # Only this very lease: the owner names the instance, the expiry names the permit.
            ours = (self.owner, permit.started_at + self.settings.probe_lease_s)
            if permit.probe and (row.probe_owner, row.probe_lease_until) == ours:
                # The probe learnt nothing; let the next caller probe instead of waiting.
                conn.execute(
                    "UPDATE breakers SET probe_owner = NULL, probe_lease_until = NULL, "
                    "updated_at = ? WHERE key = ?",
                    (now, key),
                )
            return
        if row.state == CLOSED:
            self._count(conn, row, failure, retry_after_s, now)
        elif permit.probe:
            if failure:
                reopen_count = row.reopen_count + 1
                self._open(conn, key, now, reopen_count, retry_after_s, row.consecutive_failures)
            else:
                conn.execute(
                    "UPDATE breakers SET state = ?, consecutive_failures = 0, opened_at = NULL, "
                    "open_until = NULL, reopen_count = 0, probe_lease_until = NULL, "
                    "probe_owner = NULL, generation = generation + 1, updated_at = ? "
                    "WHERE key = ?",
                    (CLOSED, now, key),
                )
                # A fresh start: the failures that tripped it must not count against recovery.
                conn.execute("DELETE FROM breaker_events WHERE key = ?", (key,))

    def _count(
        self,
        conn: sqlite3.Connection,
        row: _Row,
        failure: bool,
        retry_after_s: float | None,
        now: float,
    ) -> None:
        """Record an outcome of a closed breaker and trip it when the rules say so."""
        settings = self.settings
        key = row.key
        since = now - settings.window_s
        # Pruning on every write keeps the table at one window of events per key; the
        # (key, ts) index makes it a range delete.
        conn.execute("DELETE FROM breaker_events WHERE key = ? AND ts < ?", (key, since))
        conn.execute(
            "INSERT INTO breaker_events (key, ts, failure) VALUES (?, ?, ?)",
            (key, now, int(failure)),
        )
        consecutive = row.consecutive_failures + 1 if failure else 0
        if failure:
            calls, failures = conn.execute(
                "SELECT COUNT(*), SUM(failure) FROM breaker_events WHERE key = ? AND ts >= ?",
                (key, since),
            ).fetchone()
            rate_trips = (
                calls >= settings.min_calls
                # A small tolerance so 0.3 x 10 calls trips at 3 failures despite float error.
                and failures / calls >= settings.failure_rate_threshold - 1e-9
            )
            # A connection that cannot be made fails the same way for every model behind it:
            # one failure is the whole evidence there is.
            run_trips = consecutive >= settings.consecutive_failures or (
                kind_of_key(key) is BreakerKind.ENDPOINT
            )
            if rate_trips or run_trips:
                self._open(conn, key, now, 0, retry_after_s, consecutive)
                return
        if consecutive != row.consecutive_failures:
            conn.execute(
                "UPDATE breakers SET consecutive_failures = ?, updated_at = ? WHERE key = ?",
                (consecutive, now, key),
            )

    def _open(
        self,
        conn: sqlite3.Connection,
        key: str,
        now: float,
        reopen_count: int,
        retry_after_s: float | None,
        consecutive: int,
    ) -> None:
        open_s = self.settings.open_period_s(reopen_count, retry_after_s)
        conn.execute(
            "UPDATE breakers SET state = ?, consecutive_failures = ?, opened_at = ?, "
            "open_until = ?, reopen_count = ?, probe_lease_until = NULL, probe_owner = NULL, "
            "generation = generation + 1, updated_at = ? WHERE key = ?",
            (OPEN, consecutive, now, now + open_s, reopen_count, now, key),
        )

    def _describe(self, row: _Row, counts: tuple[int, int], now: float) -> BreakerState:
        calls, failures = counts
        if row.state == CLOSED:
            state, retry_after_s = CLOSED, None
        else:
            open_now = row.open_until is not None and now < row.open_until
            state = OPEN if open_now else HALF_OPEN
            retry_after_s = row.wait_s(now)
        lease_live = row.probe_lease_until is not None and now < row.probe_lease_until
        return BreakerState(
            key=row.key,
            state=state,
            failures=int(failures),
            calls=int(calls),
            opened_at=row.opened_at if row.state != CLOSED else None,
            retry_after_s=retry_after_s,
            consecutive_failures=row.consecutive_failures,
            open_until=row.open_until if row.state != CLOSED else None,
            reopen_count=row.reopen_count,
            probe_in_flight=row.state != CLOSED and lease_live,
        )

    # Connections and failure handling

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """This thread's connection, opened on first use (None: no store and not ``create``)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        # A connection must not cross fork(); the child opens its own.
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if not create and not self.path.exists():
            return None
        conn = db.connect(self.path)
        try:
            timeout_ms = int(self.settings.lock_timeout_s * 1000)
            conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        except sqlite3.Error:
            conn.close()
            raise
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append((os.getpid(), conn))
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error."""
        conn = self._connection(create=True)
        assert conn is not None
        with db.write_transaction(conn):
            yield conn

    def _forget_connection(self) -> None:
        """Drop this thread's connection so the next use reopens the (maybe repaired) file."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        del self._local.conn
        with self._lock:
            self._connections = [item for item in self._connections if item[1] is not conn]
        with suppress(sqlite3.Error):
            conn.close()

    def _degraded(self, key: str, now: float, exc: BaseException) -> Permit:
        self._store_failed(exc, "calls go ahead without circuit-breaker protection")
        return Permit(key, -1, probe=False, started_at=now, degraded=True)

    def _store_failed(self, exc: BaseException, consequence: str) -> None:
        self._forget_connection()
        if self._warned:
            return
        self._warned = True
        text = f"circuit-breaker store {self.path} is unusable ({exc}); {consequence}"
        if self._on_warning is not None:
            self._on_warning(Caution(text))
        else:
            import logging

            logging.getLogger("attune.breaker").warning(text)
