"""Opening the configured store, the local spool, and pushing it to the team store.

With no ``[store] url`` everything is the local SQLite ``telemetry.db``, as before. With a
PostgreSQL URL, calls and breakers live in that database; when it cannot be reached, calls
go to the local ``telemetry.db`` instead (the spool), a warning says so once, and the next
command that reaches the server sends them (``push``), idempotently: each call keeps its
identity (time and key), so a row sent twice is stored once.

``push`` walks the local store by row id and remembers, per team store, the last id sent
(``team-push.json`` in the data folder, written after the team store committed): a push
killed at any moment re-sends at most one chunk, which the team store ignores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core.telemetry.store import Backend, StoreLocation, mask_url, store_location

if TYPE_CHECKING:
    from attune_cli.core.breaker.sqlite import CircuitBreaker
    from attune_cli.core.breaker.state import BreakerSettings
    from attune_cli.core.telemetry.postgres import PostgresCallStore
    from attune_cli.core.telemetry.records import CallRecord
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.workspace import Workspace

PUSH_CHUNK = 5_000
_warned: set[str] = set()


@dataclass(frozen=True)
class PushResult:
    """What one push did.

    Attributes:
        sent: local rows read and sent.
        added: rows the team store did not hold yet.
    """

    sent: int
    added: int


def _state_file(workspace: Workspace) -> Path:
    return workspace.paths.data_dir / "team-push.json"


def _target_id(url: str) -> str:
    """The team store's name in ``team-push.json``: never its password."""
    return mask_url(url)


def pushed_up_to(workspace: Workspace, url: str) -> int:
    """The last local row id already in the team store at ``url``."""
    try:
        state = json.loads(_state_file(workspace).read_text(encoding="utf-8"))
        return int(state.get(_target_id(url), 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def _remember(workspace: Workspace, url: str, last_id: int) -> None:
    from attune_cli.core.files import atomic_write_text

    path = _state_file(workspace)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            state = {}
    except (OSError, ValueError):
        state = {}
    state[_target_id(url)] = last_id
    atomic_write_text(path, json.dumps(state, indent=1), mode=0o600)


def _local_store(workspace: Workspace) -> TelemetryStore | None:
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    path = workspace.paths.telemetry_db
    if not path.exists():
        return None
    return TelemetryStore(path, create=False)


def spooled_rows(workspace: Workspace, url: str) -> int:
    """Local rows not yet in the team store at ``url``."""
    local = _local_store(workspace)
    if local is None:
        return 0
    with local:
        return local.count_after(pushed_up_to(workspace, url))


def push(
    workspace: Workspace,
    team: PostgresCallStore,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> PushResult:
    """Send every local row not yet sent to ``team``, chunk by chunk.

    Args:
        workspace: whose ``telemetry.db`` is sent.
        team: the team store.
        progress: told (rows sent so far, rows to send) after each chunk.
    """
    local = _local_store(workspace)
    if local is None:
        return PushResult(0, 0)
    sent = added = 0
    with local:
        last = pushed_up_to(workspace, team.url)
        total = local.count_after(last)
        while True:
            chunk = local.rows_after(last, PUSH_CHUNK)
            if not chunk:
                break
            rows = [_with_identity(row) for _, row in chunk]
            with team.bulk_transaction():
                added += team.insert_rows(rows)
                team.add_labels({(row[1], row[2], row[4]) for row in rows})
            last = chunk[-1][0]
            _remember(workspace, team.url, last)
            sent += len(chunk)
            if progress is not None:
                progress(sent, total)
    return PushResult(sent, added)


def _with_identity(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row whose key is set (old rows may have none: their content names them)."""
    if row[-1] is not None:
        return row
    digest = hashlib.sha256(repr(row[:-1]).encode()).hexdigest()[:24]
    return (*row[:-1], f"h{digest}")


def _warn_once(location: StoreLocation, reason: str, on_notice: Callable[[str], None]) -> None:
    if location.target in _warned:
        return
    _warned.add(location.target)
    on_notice(
        f"the team store {location.shown} cannot be reached ({reason}); calls are kept in the "
        "local store and sent by the next command that reaches it (or `attune store push`)"
    )


def _stderr(text: str) -> None:
    import sys

    print(f"warning: {text}", file=sys.stderr)


def open_call_store(
    workspace: Workspace,
    *,
    reading: bool = False,
    on_notice: Callable[[str], None] | None = None,
) -> TelemetryStore:
    """The store calls go to and routing reads: local SQLite, or the team's PostgreSQL.

    With PostgreSQL configured but unreachable, the local store (the spool) is returned and
    ``on_notice`` told once. When it is reachable, rows spooled earlier are sent first.

    Args:
        workspace: the loaded workspace.
        reading: the command only reads (a missing local store is not created).
        on_notice: one-line warnings for the person (stderr when None).

    Raises:
        StoreVersionError: the team store's schema is newer than this attune (exit 2).
    """
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    location = store_location(workspace)
    notice = on_notice or _stderr
    if location.backend is Backend.SQLITE:
        return (
            TelemetryStore.open_for_reading(workspace)
            if reading
            else TelemetryStore.open(workspace)
        )
    from attune_cli.core.telemetry.postgres import PostgresCallStore, StoreUnreachableError

    def local() -> TelemetryStore:
        return (
            TelemetryStore.open_for_reading(workspace)
            if reading
            else TelemetryStore.open(workspace)
        )

    try:
        team = PostgresCallStore(location.target)
    except StoreUnreachableError as exc:
        _warn_once(location, str(exc).rpartition(": ")[2] or str(exc), notice)
        return local()

    def spool(call: CallRecord, exc: BaseException) -> None:
        _warn_once(location, str(exc).strip().splitlines()[0][:200], notice)
        with TelemetryStore.open(workspace) as fallback:
            fallback.record(call)

    team.on_unreachable = spool
    if spooled_rows(workspace, location.target):
        try:
            result = push(workspace, team)
        except team.unreachable as exc:
            _warn_once(location, str(exc).strip().splitlines()[0][:200], notice)
        else:
            if result.added:
                notice(f"sent {result.added:,} spooled call(s) to the team store")
    return team


def open_breaker(workspace: Workspace, settings: BreakerSettings, **options: Any) -> CircuitBreaker:
    """The circuit breakers: in the team store when one is configured and reachable."""
    from attune_cli.core.breaker.sqlite import CircuitBreaker

    location = store_location(workspace)
    if location.backend is Backend.POSTGRES:
        from attune_cli.core.breaker.postgres import PostgresBreaker
        from attune_cli.core.telemetry.postgres import StoreUnreachableError

        try:
            return PostgresBreaker(location.target, settings, **options)
        except StoreUnreachableError:
            pass
    return CircuitBreaker(workspace.paths.telemetry_db, settings, **options)
