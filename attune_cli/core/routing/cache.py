"""A stage's figures kept for a moment, for a process that routes many calls a second.

Reading a stage's figures (``TelemetryStore.model_performance``) reads the rollups of the
window's whole hours, then the current hour's rows one by one: milliseconds once the hour holds
thousands of calls. ``attune ask`` reads them once per process; ``attune serve`` would read
them once per routed call, the same figures hundreds of times a second. ``PerformanceCache``
keeps them ``ttl_s`` seconds instead: each decision still draws its own exploration, and a
model that starts failing is still met by the breaker and the fallback chain at once; only the
ranking is up to ``ttl_s`` old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

from attune_cli.core.performance import ModelPerformance

DEFAULT_TTL_S = 1.0
"""How long a stage's figures are reused: a second of calls moves a window of days by little."""

MAX_ENTRIES = 512
"""The most stages kept (names come from callers' headers: the cache must not grow with them)."""


class PerformanceCache:
    """Stage figures by key, each reused for ``ttl_s`` seconds; safe to share between threads.

    Args:
        ttl_s: how long figures are reused after they were read.
        clock: monotonic seconds.
        max_entries: past this many keys, expired ones are dropped (all of them, when none
            has expired).
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, tuple[ModelPerformance, ...]]] = {}
        self._reading: set[Hashable] = set()

    def get(
        self, key: Hashable, read: Callable[[], list[ModelPerformance]]
    ) -> list[ModelPerformance]:
        """The figures for ``key``: the kept ones while fresh, else ``read()`` (then kept).

        Once they expire, one thread reads them again while the others go on with the kept
        ones: fifty threads finding them expired at once would otherwise all read the same
        hour of rows together, and every call in flight would wait for that.
        """
        now = self._clock()
        with self._lock:
            found = self._entries.get(key)
            if found is not None and (now - found[0] < self.ttl_s or key in self._reading):
                return list(found[1])
            self._reading.add(key)
        try:
            figures = read()
        finally:
            with self._lock:
                self._reading.discard(key)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._drop_expired(now)
            self._entries[key] = (now, tuple(figures))
        return list(figures)

    def clear(self) -> None:
        """Forget every kept figure."""
        with self._lock:
            self._entries.clear()

    def _drop_expired(self, now: float) -> None:
        fresh = {k: v for k, v in self._entries.items() if now - v[0] < self.ttl_s}
        self._entries = fresh if len(fresh) < self._max_entries else {}
