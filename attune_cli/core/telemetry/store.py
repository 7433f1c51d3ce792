"""The storage seam: what the rest of attune asks of a call store and a breaker store.

``CallStore`` is every question and every write about recorded calls; ``BreakerStore`` is the
circuit breakers' read-decide-write. ``attune_cli.core.telemetry.TelemetryStore`` (SQLite,
the default) implements ``CallStore``; nothing outside a store implementation runs SQL.

``store_location`` says which backend a workspace uses: ``[store] url`` in config.toml or
``ATTUNE_STORE_URL`` (a ``postgresql://`` URL), else the workspace's ``telemetry.db``.
``mask_url`` is how a location is shown anywhere: never with its password.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from attune_cli.core.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from attune_cli.core.performance import ModelPerformance, ScoreWeights
    from attune_cli.core.telemetry.records import (
        BillingTotal,
        CallFilter,
        CallRecord,
        Row,
        SpendCell,
        StageHour,
    )
    from attune_cli.core.telemetry.rollups import VerifyReport
    from attune_cli.core.workspace import Workspace

STORE_URL_VAR = "ATTUNE_STORE_URL"


class Backend(StrEnum):
    """Where calls and breakers are kept."""

    SQLITE = "sqlite"
    POSTGRES = "postgresql"


class CallStore(Protocol):
    """Recorded calls: write them, read them back, and the per-model figures routing reads."""

    def now(self) -> float:
        """The store's clock, epoch seconds."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def record(self, call: CallRecord) -> object:
        """Store one call (and its rollup) in one short transaction.

        Returns None when stored; a note (``telemetry.Spooled``) when it waits in the spool.
        """
        ...

    def record_many(self, calls: Iterable[CallRecord]) -> int:
        """Store many calls in one transaction; returns how many were new."""
        ...

    def bulk_transaction(self) -> AbstractContextManager[None]:
        """A write transaction for ``insert_rows``/``add_labels`` that Ctrl-C can stop."""
        ...

    def insert_rows(self, rows: Iterable[Row], *, batch: int = ..., statement: str = ...) -> int:
        """Insert row tuples (and their rollups) inside the caller's transaction."""
        ...

    def add_labels(self, names: Iterable[tuple[str, str, str]]) -> None:
        """Make (workflow, stage, model) names known to completion."""
        ...

    def prune(self, before_ts: float) -> int:
        """Delete the calls older than ``before_ts`` (and their rollups)."""
        ...

    def count_before(self, before_ts: float) -> int:
        """How many calls are older than ``before_ts``."""
        ...

    def count(self, where: CallFilter | None = None) -> int:
        """How many calls match ``where``."""
        ...

    def billing_totals(self, since_ts: float) -> list[BillingTotal]:
        """Calls, tokens and cost since ``since_ts``, one total per billing path."""
        ...

    def recent_calls(
        self, *, workflow: str | None, stage: str | None, model: str | None = None, limit: int = 50
    ) -> list[CallRecord]:
        """The newest ``limit`` calls matching the filters, newest first."""
        ...

    def iter_calls(self, where: CallFilter | None = None, *, batch: int = ...) -> Iterator[Row]:
        """Every matching row, oldest first."""
        ...

    def labels(self, kind: str, prefix: str = "") -> list[str]:
        """Known names of ``kind`` starting with ``prefix`` (shell completion)."""
        ...

    def pairs(
        self, workflow: str | None, stage: str | None, *, since_ts: float | None = None
    ) -> list[tuple[str, str]]:
        """The (workflow, stage) pairs with calls, sorted."""
        ...

    def model_performance(
        self,
        *,
        workflow: str | None,
        stage: str | None,
        since_ts: float | None,
        weights: ScoreWeights,
        half_life_s: float | None = None,
        recent_n: int = 20,
        now: float | None = None,
        outage_since_ts: float | None = None,
        explore_half_life_s: float | None = None,
    ) -> list[ModelPerformance]:
        """Per-model figures over a window, best first."""
        ...

    def spend_cells(
        self,
        since_ts: float,
        until_ts: float,
        *,
        group: str | None = None,
        workflow: str | None = None,
        stage: str | None = None,
        model: str | None = None,
        day_offsets: Sequence[tuple[float, int]] | None = None,
    ) -> list[SpendCell]:
        """What was spent in ``[since_ts, until_ts)`` per model (and ``group``), per local day
        when ``day_offsets`` gives the zone's UTC offsets."""
        ...

    def stage_hours(
        self, workflow: str, stage: str, first_hour: int, last_hour: int
    ) -> list[StageHour]:
        """Each model's rollup of a (workflow, stage) per hour, with its latency histogram."""
        ...

    def budget_transaction(self) -> AbstractContextManager[None]:
        """A transaction in which budget checks and reservations of all processes take turns."""
        ...

    def reserved_usd(self, budget: str, now: float) -> float:
        """The unexpired reservations of ``budget``, in dollars."""
        ...

    def add_reservation(
        self, reservation_id: str, budget: str, amount_usd: float, now: float, expires_ts: float
    ) -> None:
        """Reserve ``amount_usd`` of ``budget`` until ``expires_ts`` (in a budget transaction)."""
        ...

    def release_reservation(self, reservation_id: str) -> None:
        """Drop a reservation once the call's real cost is recorded."""
        ...

    def verify(
        self, *, limit: int = 20, progress: Callable[[int, int], None] | None = None
    ) -> VerifyReport:
        """Recompute the rollups from the rows and report any difference; ``progress(done,
        total)`` hears of each table checked."""
        ...

    def rollup_hours(self) -> int:
        """How many distinct hours the rollups cover."""
        ...

    def schema_version(self) -> int:
        """The store's schema version."""
        ...

    def round_trip_ms(self) -> float:
        """How long one trivial query takes."""
        ...


class BreakerStore(Protocol):
    """The circuit breakers' rows: one read-decide-write transaction at a time."""

    def transaction(self) -> AbstractContextManager[Any]:
        """A transaction that holds the breaker rows it reads until it ends."""
        ...


@dataclass(frozen=True)
class StoreLocation:
    """Which backend a workspace uses, and where.

    Attributes:
        backend: SQLite or PostgreSQL.
        target: the SQLite file's path, or the PostgreSQL URL (with its password: never show
            it; show ``shown``).
        origin: where the choice came from (``ATTUNE_STORE_URL``, ``config.toml [store] url``
            or ``default``).
    """

    backend: Backend
    target: str
    origin: str

    @property
    def shown(self) -> str:
        """The location as any message may show it (password masked)."""
        return mask_url(self.target) if self.backend is Backend.POSTGRES else self.target


@dataclass(frozen=True)
class StoreStatus:
    """What ``attune store status`` reports.

    Attributes:
        backend: SQLite or PostgreSQL.
        location: where, password masked.
        exists: whether the store exists yet (a SQLite file is made on first write).
        schema_version: its schema version (None when it does not exist).
        rows: recorded calls.
        rollup_hours: distinct hours the rollups cover.
        spooled_rows: rows waiting in the local spool for the team store.
        round_trip_ms: one trivial query's round trip.
    """

    backend: Backend
    location: str
    exists: bool
    schema_version: int | None
    rows: int
    rollup_hours: int
    spooled_rows: int
    round_trip_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        """The status as JSON-ready values."""
        return {
            "backend": str(self.backend),
            "location": self.location,
            "exists": self.exists,
            "schema_version": self.schema_version,
            "rows": self.rows,
            "rollup_hours": self.rollup_hours,
            "spooled_rows": self.spooled_rows,
            "round_trip_ms": None if self.round_trip_ms is None else round(self.round_trip_ms, 3),
        }


_PASSWORD = re.compile(
    r"^(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#]*:)(?P<password>[^@/?#]*)(?=@)", re.I
)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#]*)", re.I)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (in the authority or as ``?password=``)."""
    masked = _PASSWORD.sub(lambda m: f"{m['head']}***", url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}***", masked)


def store_location(workspace: Workspace, environ: Mapping[str, str] | None = None) -> StoreLocation:
    """The store a workspace uses: ``ATTUNE_STORE_URL``, ``[store] url``, or ``telemetry.db``.

    Raises:
        ConfigError: ``[store] url`` is not a string.
        UsageError: the URL is not a ``postgresql://`` URL.
    """
    import os

    environment = os.environ if environ is None else environ
    url = environment.get(STORE_URL_VAR, "").strip()
    origin = STORE_URL_VAR
    if not url:
        section = workspace.config.get("store")
        value = section.get("url") if isinstance(section, dict) else None
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                workspace.paths.config_file,
                "must be a string",
                key="store.url",
                hint='e.g. url = "postgresql://attune@db.example:5432/attune"',
            )
        url = (value or "").strip()
        origin = "config.toml [store] url"
    if not url:
        return StoreLocation(Backend.SQLITE, str(workspace.paths.telemetry_db), "default")
    if not url.lower().startswith(("postgresql://", "postgres://")):
        raise UsageError(
            f"{origin}: {mask_url(url)[:80]!r} is not a postgresql:// URL",
            hint="leave it unset for the local SQLite store",
        )
    return StoreLocation(Backend.POSTGRES, url, origin)


def sqlite_status(
    open_store: Callable[[], CallStore | None], location: StoreLocation
) -> StoreStatus:
    """The status of a SQLite store (``open_store`` returns None when there is none yet)."""
    from pathlib import Path

    from attune_cli.core.telemetry import spool

    spooled = spool.waiting(spool.spool_path(Path(location.target)))
    store = open_store()
    if store is None:
        return StoreStatus(Backend.SQLITE, location.shown, False, None, 0, 0, spooled, None)
    try:
        return StoreStatus(
            Backend.SQLITE,
            location.shown,
            True,
            store.schema_version(),
            store.count(),
            store.rollup_hours(),
            spooled,
            store.round_trip_ms(),
        )
    finally:
        store.close()
