"""What the zygote's forked children do until they are killed (see ``helpers.reliability``).

Each worker writes one byte to ``started_fd`` just before its first write, then writes for
real, through attune's own code paths, until SIGKILL ends it mid-way.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def warm_up() -> None:
    """Import and exercise every write path once, so a forked child starts writing at once."""
    from attune_cli.core.auth import AuthStrategy
    from attune_cli.core.credentials import store_key
    from attune_cli.core.paths import Paths
    from attune_cli.core.registry import load_registry
    from attune_cli.core.telemetry.importers import ImportOptions, import_calls
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        AuthStrategy().save(folder / "config.toml")
        store_key(Paths(folder, folder), "anthropic", "sk-warm-up-key-000000")
        source = folder / "calls.jsonl"
        source.write_text(
            '{"ts": "2026-01-01T00:00:00.000Z", "model": "gpt-5-mini", "success": true}\n'
        )
        with TelemetryStore(folder / "telemetry.db") as store:
            import_calls(
                store, ImportOptions(source, format="jsonl"), registry=load_registry({}, folder)
            )


def _started(started_fd: int) -> None:
    os.write(started_fd, b"s")
    os.close(started_fd)


def config_writes(started_fd: int, config_file: str, tiers: list[str]) -> None:
    """Save the auth strategy with each tier in turn, forever."""
    from attune_cli.core.auth import AuthStrategy

    path = Path(config_file)
    strategies = [AuthStrategy(subscription_tier=tier, setup_completed=True) for tier in tiers]
    _started(started_fd)
    while True:
        for strategy in strategies:
            strategy.save(path)


def credential_writes(started_fd: int, folder: str, provider: str, keys: list[str]) -> None:
    """Store each key for ``provider`` in turn, forever."""
    from attune_cli.core.credentials import store_key
    from attune_cli.core.paths import Paths

    paths = Paths(Path(folder), Path(folder))
    _started(started_fd)
    while True:
        for key in keys:
            store_key(paths, provider, key)


def telemetry_import(started_fd: int, db_file: str, source: str) -> None:
    """Import ``source`` into ``db_file`` once, then wait to be killed."""
    from attune_cli.core.registry import load_registry
    from attune_cli.core.telemetry.importers import ImportOptions, import_calls
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    store = TelemetryStore(Path(db_file))
    registry = load_registry({}, Path(db_file))
    _started(started_fd)
    import_calls(store, ImportOptions(Path(source), format="jsonl"), registry=registry)
    while True:
        time.sleep(60)
