"""Reading and rewriting ``config.toml``.

Reads use the standard library's ``tomllib`` (cheap to import: startup matters). Rewrites go
through tomlkit so the user's comments, key order and unknown keys survive, and are atomic.
A file that exists but cannot be parsed is an error naming the file and line; it is never
silently replaced by defaults.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attune_cli.core.errors import ConfigError
from attune_cli.core.files import atomic_write_text, locked, remove_stale_temp_files
from attune_cli.core.paths import ensure_private_dir


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file is an empty document.

    Raises:
        ConfigError: the file is unreadable or is not valid TOML (the message names the line).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, "is not UTF-8 text", hint=f"fix or move {path} aside") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            path, f"invalid TOML: {exc}", hint=f"fix the line named, or move {path} aside"
        ) from None


def update_toml(path: Path, change: Callable[[Any], None], *, mode: int = 0o644) -> None:
    """Apply ``change`` to the tomlkit document of ``path`` and write it back atomically.

    The file is locked for the whole read-modify-write, so concurrent updates take turns.
    ``change`` receives a ``tomlkit.TOMLDocument`` (a dict-like that keeps comments).

    Raises:
        ConfigError: the current file is not valid TOML (nothing is written).
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    ensure_private_dir(path.parent)
    with locked(path):
        remove_stale_temp_files(path.parent, path.name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(path, f"cannot be read: {exc}") from None
        try:
            document = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise ConfigError(
                path, f"invalid TOML: {exc}", hint=f"fix the line named, or move {path} aside"
            ) from None
        change(document)
        atomic_write_text(path, tomlkit.dumps(document), mode=mode)


def table(document: dict[str, Any], path: Path, key: str) -> dict[str, Any]:
    """Return the sub-table ``key`` of ``document`` ({} when absent).

    Raises:
        ConfigError: ``key`` exists but is not a table.
    """
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(path, "must be a table", key=key, value=value)
    return value


def get_number(
    section: dict[str, Any],
    key: str,
    default: float,
    *,
    path: Path,
    prefix: str,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
) -> float:
    """Read a number from a config table, checking its type and range.

    Args:
        section: the parsed table.
        key: the key inside it.
        default: returned when the key is absent.
        path: the file, for the error message.
        prefix: the table's dotted name, for the error message (``routing``).
        minimum: the smallest allowed value, inclusive.
        maximum: the largest allowed value, inclusive.
        integer: whether only whole numbers are allowed.

    Raises:
        ConfigError: wrong type or out of range, naming ``prefix.key`` and the value.
    """
    if key not in section:
        return default
    value: Any = section[key]
    dotted = f"{prefix}.{key}" if prefix else key
    wrong_type = not isinstance(value, int | float) or (integer and not isinstance(value, int))
    if isinstance(value, bool) or wrong_type:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(path, f"must be {kind}", key=dotted, value=value)
    number: float = value
    if not math.isfinite(number):
        # nan passes every range check and inf every minimum; both break timeouts and sums.
        raise ConfigError(path, "must be a finite number", key=dotted, value=value)
    if minimum is not None and number < minimum:
        raise ConfigError(path, f"must be at least {minimum}", key=dotted, value=value)
    if maximum is not None and number > maximum:
        raise ConfigError(path, f"must be at most {maximum}", key=dotted, value=value)
    return number
