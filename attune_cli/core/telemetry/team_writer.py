"""The batch writer of ``attune serve`` when a team store is configured (``TeamWriter``).

Apart from ``team``: it needs the writer thread's machinery (``telemetry.writer``), which the
commands that only open a store must not pay for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from attune_cli.core.telemetry.store import mask_url, store_location
from attune_cli.core.telemetry.team import _stderr, _warn_once, push, spooled_rows
from attune_cli.core.telemetry.writer import BatchWriter

if TYPE_CHECKING:
    from attune_cli.core.telemetry.records import Row
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.workspace import Workspace

RECONNECT_S = 5.0
"""How often a long-running writer whose team store went away tries to reach it again, by
default (``[store] reconnect_s``)."""


def reconnect_interval_s(workspace: Workspace) -> float:
    """``[store] reconnect_s``: how often a writer whose team store went away tries it again.

    Raises:
        ConfigError: it is not a number of at least 0.01.
    """
    from attune_cli.core.config import get_number

    section = workspace.config.get("store")
    return get_number(
        section if isinstance(section, dict) else {},
        "reconnect_s",
        RECONNECT_S,
        path=workspace.paths.config_file,
        prefix="store",
        minimum=0.01,
    )


class TeamWriter(BatchWriter):
    """The batch writer (``telemetry.writer``) of a long-running process with a team store.

    ``attune serve`` writes every row and breaker outcome of the process on one thread, many
    per transaction; with ``[store] url`` set, that transaction is in PostgreSQL. A batch the
    server cannot take (down, or the connection lost) goes to the local store instead, as a
    call of ``attune ask`` does, with one warning; the first batch that reaches the server
    again sends it (``push``). A lost connection is reopened at most every ``[store]
    reconnect_s`` seconds (``RECONNECT_S`` by default); meanwhile batches go straight to the
    local store.

    Args:
        workspace: whose local store is the spool, and whose ``[store] reconnect_s`` is read.
        url: the team store.
        on_notice: one-line warnings (stderr when None).
        **options: as ``BatchWriter`` (``clock``, ``max_batch``).

    Raises:
        ConfigError: ``[store] reconnect_s`` is not a number of at least 0.01.
    """

    def __init__(
        self,
        workspace: Workspace,
        url: str,
        *,
        on_notice: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        import time

        self.reconnect_s = reconnect_interval_s(workspace)
        # Set before the writer thread starts: it opens the store at once.
        self.workspace = workspace
        self.url = url
        self._location = store_location(workspace)
        self._notice = on_notice or _stderr
        self._monotonic = time.monotonic
        self._next_try = 0.0
        self._local: TelemetryStore | None = None
        self._unsent = False
        super().__init__(workspace.paths.telemetry_db, **options)
        self.name = mask_url(url)

    def _open_store(self) -> TelemetryStore:
        from attune_cli.core.errors import AttuneError
        from attune_cli.core.telemetry.postgres import PostgresCallStore
        from attune_cli.core.telemetry.sqlite import TelemetryStore

        try:
            store = PostgresCallStore(self.url)
        except AttuneError as exc:
            self._next_try = self._monotonic() + self.reconnect_s
            reason = exc.message.rpartition(": ")[2] or exc.message
            _warn_once(self._location, reason, self._notice)
            return TelemetryStore.unusable(self.path, exc.message)
        # Rows that waited locally (this process's, or an earlier one's) go with the next batch.
        self._unsent = self._unsent or bool(spooled_rows(self.workspace, self.url))
        return store

    def _refresh(self, store: TelemetryStore) -> TelemetryStore:
        raw = getattr(store, "raw", None)
        reachable = raw is not None and not raw.closed and not raw.broken
        if reachable or self._monotonic() < self._next_try:
            return store
        store.close()
        return self._open_store()

    def _errors(self) -> tuple[type[BaseException], ...]:
        from attune_cli.core.telemetry.postgres import _driver

        return (*super()._errors(), _driver().Error)

    def _after_commit(self, store: TelemetryStore) -> None:
        if not self._unsent:
            return
        from attune_cli.core.telemetry.postgres import PostgresCallStore

        if not isinstance(store, PostgresCallStore):
            return
        try:
            result = push(self.workspace, store)
        except self._errors():
            return  # tried again after the next batch
        self._unsent = False
        if result.added:
            self._notice(f"sent {result.added:,} spooled call(s) to the team store")

    def _spool(self, store: TelemetryStore, rows: list[Row], reason: str) -> None:
        import sqlite3

        from attune_cli.core.errors import AttuneError
        from attune_cli.core.telemetry.sqlite import TelemetryStore

        if not rows:
            return
        _warn_once(self._location, reason.strip().splitlines()[0][:200], self._notice)
        self._unsent = True
        try:
            if self._local is None:
                self._local = TelemetryStore.open(self.workspace)
            local = self._local
            with local.transaction():
                local.insert_rows(rows)
                local.add_labels({(row[1], row[2], row[4]) for row in rows})
        except (AttuneError, sqlite3.Error, OSError) as exc:
            # The local store cannot take them either: the file spool beside it.
            message = exc.message if isinstance(exc, AttuneError) else str(exc)
            super()._spool(TelemetryStore.unusable(self.path, message), rows, reason)
        else:
            self.spooled += len(rows)

    def close(self) -> None:
        super().close()
        if self._local is not None:
            import contextlib
            import sqlite3

            # Opened by the writer thread, which has ended: SQLite may refuse this thread.
            with contextlib.suppress(sqlite3.Error):
                self._local.close()
            self._local = None
