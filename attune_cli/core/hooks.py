"""Hooks the CLI sets for long work deep in the core (kept free of imports: set at startup).

``backfill_progress`` is told ``(done, total)`` rows while an existing store's rollups are
built after an upgrade (``attune_cli.core.telemetry.db.backfill_rollups``); None shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable

backfill_progress: Callable[[int, int], None] | None = None
