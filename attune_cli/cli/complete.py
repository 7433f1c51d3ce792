"""The values attune offers on Tab: stages, workflows, models, providers, breaker keys.

Command modules wire these with ``autocompletion=``; fixed choices (``--format``, ``--tier``,
``--mode``) are Enums and complete by themselves. Every Tab press runs a whole ``attune``
process, so each callback does one thing: one indexed query on the ``labels`` table of
``telemetry.db`` (opened read-only, never created; the ``calls`` table is never scanned) and/or
``config.toml`` read with ``tomllib``. They never fail loudly: no store yet, a locked or
corrupt store, or a bad config means fewer suggestions, never a traceback or a message.

This module is imported at startup by every command module, so sqlite3, tomllib and the
registry are imported inside the functions that need them. The shell side of the protocol is
in ``attune_cli.cli.shells``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

# A shell cannot usefully show more; the query stays bounded whatever the store holds.
MAX_SUGGESTIONS = 500
# A Tab press must not hang on a store another process holds locked.
STORE_TIMEOUT_S = 0.1
# Above every code point: ``value < prefix + _TOP`` bounds a prefix range on the index.
_TOP = "\U0010ffff"


def complete_stages(incomplete: str) -> list[str]:
    """Stage names seen in telemetry or named in ``[routing.stages]``.

    Args:
        incomplete: what has been typed of the value so far.

    Returns:
        The matching names, sorted; [] when nothing can be read.
    """
    names = set(_labels("stage", incomplete))
    names.update(_config_table("routing", "stages"))
    return _matching(names, incomplete)


def complete_workflows(incomplete: str) -> list[str]:
    """Workflow names seen in telemetry.

    Args:
        incomplete: what has been typed of the value so far.

    Returns:
        The matching names, sorted; [] when nothing can be read.
    """
    return _matching(_labels("workflow", incomplete), incomplete)


def complete_models(incomplete: str) -> list[str]:
    """Model ids from the registry (built-in and ``[models]``) and from telemetry.

    Args:
        incomplete: what has been typed of the value so far.

    Returns:
        The matching ids, sorted; [] when nothing can be read.
    """
    names = set(_labels("model", incomplete))
    names.update(_config_table("models"))
    names.update(_builtin_names("models"))
    return _matching(names, incomplete)


def complete_providers(incomplete: str) -> list[str]:
    """Provider names from the registry (built-in and ``[providers]``).

    Args:
        incomplete: what has been typed of the value so far.

    Returns:
        The matching names, sorted; [] when nothing can be read.
    """
    names = set(_builtin_names("providers"))
    names.update(_config_table("providers"))
    return _matching(names, incomplete)


def _matching(names: Iterable[str], incomplete: str) -> list[str]:
    return sorted(n for n in names if isinstance(n, str) and n.startswith(incomplete))[
        :MAX_SUGGESTIONS
    ]


def complete_breaker_keys(incomplete: str) -> list[str]:
    """Circuit-breaker keys (``provider/model``) in the store.

    Args:
        incomplete: what has been typed of the value so far.

    Returns:
        The matching keys, sorted; [] when nothing can be read.
    """
    return _read_store(
        "SELECT key FROM breakers WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
        (incomplete, incomplete + _TOP, MAX_SUGGESTIONS),
    )


def _labels(kind: str, prefix: str) -> list[str]:
    """Distinct names of ``kind`` from the store's ``labels`` table, by an index range scan."""
    return _read_store(
        "SELECT value FROM labels WHERE kind = ? AND value >= ? AND value < ? "
        "ORDER BY value LIMIT ?",
        (kind, prefix, prefix + _TOP, MAX_SUGGESTIONS),
    )


def _read_store(sql: str, parameters: tuple[object, ...]) -> list[str]:
    """The text values one query returns from ``telemetry.db``, opened read-only."""
    try:
        import sqlite3

        from attune_cli.core.paths import resolve_paths

        path = resolve_paths().telemetry_db.absolute()
        if not path.is_file():
            return []
        # mode=ro never creates the database, but on a WAL database with no -wal file left (the
        # last writer checkpointed and closed) it would create -wal and -shm files. The file is
        # then complete by itself, so read it as immutable: no lock, no side file.
        wal_exists = Path(f"{path}-wal").exists()
        uri = f"{path.as_uri()}?mode=ro" + ("" if wal_exists else "&immutable=1")
        conn = sqlite3.connect(uri, uri=True, timeout=STORE_TIMEOUT_S)
        try:
            rows = conn.execute(sql, parameters).fetchall()
        finally:
            conn.close()
    except Exception:
        # No store, locked, corrupt, an older schema: no suggestions, and nothing on screen.
        return []
    return [value for (value,) in rows if isinstance(value, str)]


def _config() -> dict[str, Any]:
    try:
        import tomllib

        from attune_cli.core.paths import resolve_paths

        return tomllib.loads(resolve_paths().config_file.read_text(encoding="utf-8"))
    except Exception:
        # A missing or broken config.toml: `attune` itself reports it; completion stays quiet.
        return {}


def _config_table(*keys: str) -> list[str]:
    """The keys of the config table at ``keys`` (e.g. ``routing.stages``), [] when not a table."""
    node: Any = _config()
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return [str(k) for k in node] if isinstance(node, dict) else []


def _builtin_names(what: str) -> list[str]:
    try:
        from attune_cli.core import registry
    except Exception:
        return []
    if what == "models":
        return [m.id for m in registry.BUILTIN_MODELS]
    return [p.name for p in registry.BUILTIN_PROVIDERS]
