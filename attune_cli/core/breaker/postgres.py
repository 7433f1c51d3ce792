"""Circuit breakers in the team store (PostgreSQL): every machine sees every open circuit.

Apart from ``attune_cli.core.telemetry.postgres`` so that commands reading calls only (``route
explain``, ``telemetry models``) do not load the breaker's machinery.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attune_cli.core.breaker.sqlite import _ROW_COLUMNS, CircuitBreaker, _Row
from attune_cli.core.breaker.state import BreakerSettings, BreakerState
from attune_cli.core.telemetry.postgres import _Connection, _driver, _Serialized, connect
from attune_cli.core.telemetry.store import mask_url


class PostgresBreaker(CircuitBreaker):
    """Circuit breakers in the team store: every machine sees every open circuit at once.

    Each read-decide-write is one transaction holding the breaker's row (``SELECT … FOR
    UPDATE``), so the half-open probe lease and the generation counter hold across machines.
    """

    def __init__(self, url: str, settings: BreakerSettings | None = None, **options: Any) -> None:
        """Connect to ``url`` now (``StoreUnreachableError`` lets the caller fall back)."""
        super().__init__(Path("."), settings, **options)
        self.path = mask_url(url)  # type: ignore[assignment]
        self.url = url
        self._store_errors = (*self._store_errors, _driver().Error)
        self._shared: tuple[int, _Connection] | None = None
        self._connection(create=True)

    def _connection(self, *, create: bool) -> Any:
        """The one connection every thread of this process shares (``_Serialized``): a
        gateway's worker threads read breakers all the time, and a connection each would be
        64 of them."""
        with self._lock:
            shared = self._shared
            if shared is not None and shared[0] == os.getpid():
                return shared[1]
            timeout_ms = max(int(self.settings.lock_timeout_s * 1000), 1)
            conn = _Connection(
                _Serialized(connect(self.url, settings={"lock_timeout": str(timeout_ms)}))
            )
            self._shared = (os.getpid(), conn)
            self._connections.append((os.getpid(), conn))  # type: ignore[arg-type]
            return conn

    def _forget_connection(self) -> None:
        """Drop the shared connection (it failed) so that the next use reconnects."""
        with self._lock:
            shared, self._shared = self._shared, None
            if shared is None:
                return
            conn = shared[1]
            self._connections = [item for item in self._connections if item[1] is not conn]  # type: ignore[comparison-overlap]
        with contextlib.suppress(Exception), conn.raw.lock:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._shared = None
        super().close()

    def states(self) -> list[BreakerState]:
        conn = self._connection(create=True)
        with conn.raw.lock:  # its BEGIN … COMMIT is one transaction of this thread's
            return super().states()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        conn = self._connection(create=True)
        with conn.raw.transaction():
            yield conn

    def _read_for_update(self, conn: Any, key: str) -> Any:
        conn.execute(
            "INSERT INTO breakers (key, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (key, self._clock()),
        )
        found = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM breakers WHERE key = ? FOR UPDATE", (key,)
        ).fetchone()
        return _Row(*found) if found else None
