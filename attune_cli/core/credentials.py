"""API keys: the environment wins over a stored key, and a key is only ever shown as a hint.

Stored keys live in ``credentials.toml`` next to ``config.toml``, one table per provider::

    [anthropic]
    api_key = "sk-ant-…"

The file is created with mode 0600 from its first byte (the temp file of the atomic write gets
the mode before any byte is written) in a 0700 folder. A credentials file that the group or
others can read is refused, as ssh refuses a loose private key: the person must ``chmod 600`` it.
Keys never appear in a message, an exception or a ``repr``; ``key_hint`` is the only view of one.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attune_cli.core.errors import ConfigError, PermissionsError, UsageError
from attune_cli.core.files import remove_stale_temp_files, stale_temp_files

if TYPE_CHECKING:
    from attune_cli.core.paths import Paths
    from attune_cli.core.registry import Provider

KEY_FIELD = "api_key"
PRIVATE_FILE_MODE = 0o600

_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A vendor prefix such as "sk-" or "sk_" is safe to show; anything longer starts the secret.
_KEY_PREFIX = re.compile(r"^([A-Za-z]{1,4}[-_])")
# Below this length the last four characters are too large a share of the key to show.
_MIN_LENGTH_FOR_TAIL = 12
# A name in credentials.toml is shown in a message only when it looks like a provider's name:
# short, and not shaped like a key (a key pasted as `[sk-ant-…]` must not be quoted back).
_SHOWABLE_NAME = re.compile(r"^(?![A-Za-z]{1,4}[-_])[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class ResolvedKey:
    """The key a provider call will use, and where it came from.

    ``repr`` and ``str`` never show ``value``; use ``hint`` to show which key it is.
    """

    value: str = field(repr=False)
    source: Literal["env", "stored"]

    @property
    def hint(self) -> str:
        """A recognisable but useless fragment of the key (``sk-…abcd``)."""
        return key_hint(self.value)


def key_hint(key: str) -> str:
    """A short, safe view of a key: its vendor prefix and last four characters.

    Args:
        key: the full key.

    Returns:
        ``sk-…abcd`` for ``sk-ant-…abcd``; ``…abcd`` for a key without a vendor prefix; only
        the prefix and ``…`` for a key too short to show any of it.
    """
    key = key.strip()
    match = _KEY_PREFIX.match(key)
    prefix = match.group(1) if match else ""
    tail = key[-4:] if len(key) >= _MIN_LENGTH_FOR_TAIL else ""
    return f"{prefix}…{tail}"


def resolve_key(
    provider: Provider, paths: Paths, environ: Mapping[str, str] | None = None
) -> ResolvedKey | None:
    """The key to use for ``provider``: its environment variable, else the stored key.

    Args:
        provider: the registry provider (its ``key_env`` names the variable).
        paths: where ``credentials.toml`` lives.
        environ: the environment to read; ``os.environ`` when None.

    Returns:
        The key and its source, or None when there is neither.

    Raises:
        PermissionsError: the stored credentials file is readable by others.
        ConfigError: the stored credentials file is not valid TOML or not in the expected shape.
    """
    environment = os.environ if environ is None else environ
    if provider.key_env:
        from_env = environment.get(provider.key_env, "").strip()
        if from_env:
            if not from_env.isascii():
                raise UsageError(
                    f"${provider.key_env} holds non-ASCII characters, so it cannot be an API key",
                    hint="a smart quote or a look-alike letter was pasted with it; set it again",
                )
            return ResolvedKey(from_env, "env")
    if paths.credentials_file.is_dir():
        # No key can be stored there; `auth status` says so. Keys in the environment work.
        return None
    stored = _read_stored(paths.credentials_file).get(provider.name)
    if stored and not stored.isascii():
        raise ConfigError(
            paths.credentials_file,
            "holds non-ASCII characters, so it cannot be an API key",
            key=f"{provider.name}.{KEY_FIELD}",
            hint=f"store it again: attune auth login {provider.name}",
        )
    return ResolvedKey(stored, "stored") if stored else None


def sends_key_in_clear(base_url: str) -> bool:
    """Whether a key sent to ``base_url`` would cross the network unencrypted.

    Plain ``http://`` to this machine (Ollama, a local proxy) is fine; to any other host, the
    key can be read on the way.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    return not (host in _LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(".localhost"))


def store_key(paths: Paths, provider_name: str, key: str) -> None:
    """Store ``key`` for ``provider_name`` in ``credentials.toml`` (mode 0600, folder 0700).

    Other providers' keys and the file's comments are kept. Concurrent writers take turns
    (the file is locked for the read-modify-write), so two logins at once leave one valid file.

    Raises:
        UsageError: the provider name is not a plain name, or the key is empty or holds spaces
            or control characters (the key itself is never part of the message).
        PermissionsError: the existing credentials file is readable by others.
        ConfigError: the existing credentials file is not valid TOML.
    """
    from attune_cli.core.config import update_toml

    _check_provider_name(provider_name)
    clean = _check_key(key)
    path = paths.credentials_file
    _check_private(path)

    def change(document: Any) -> None:
        import tomlkit

        entry = document.get(provider_name)
        if not isinstance(entry, dict):
            entry = tomlkit.table()
            document[provider_name] = entry
        entry[KEY_FIELD] = clean

    update_toml(path, change, mode=PRIVATE_FILE_MODE)


def leftover_temp_files(paths: Paths) -> list[Path]:
    """Temp files a killed write of ``credentials.toml`` left behind (each may hold keys)."""
    return stale_temp_files(paths.config_dir, paths.credentials_file.name)


def remove_leftover_temp_files(paths: Paths) -> int:
    """Delete the temp files of interrupted credential writes; returns how many went."""
    from attune_cli.core.files import locked

    if not paths.config_dir.is_dir():
        return 0
    with locked(paths.credentials_file):
        return remove_stale_temp_files(paths.config_dir, paths.credentials_file.name)


def remove_key(paths: Paths, provider_name: str) -> bool:
    """Delete the stored key of ``provider_name``, and any leftover temp file of a write.

    Returns:
        Whether a key was stored (and is now gone).

    Raises:
        PermissionsError: the credentials file is readable by others.
        ConfigError: the credentials file is not valid TOML.
    """
    from attune_cli.core.config import update_toml

    path = paths.credentials_file
    if provider_name not in _read_stored(path):
        return False
    removed = False

    def change(document: Any) -> None:
        nonlocal removed
        if provider_name in document:
            del document[provider_name]
            removed = True

    update_toml(path, change, mode=PRIVATE_FILE_MODE)
    return removed


def stored_providers(paths: Paths) -> list[str]:
    """Names of the providers with a stored key, sorted.

    Raises:
        PermissionsError: the credentials file is readable by others.
        ConfigError: the credentials file is not valid TOML.
    """
    return sorted(_read_stored(paths.credentials_file))


def _read_stored(path: Path) -> dict[str, str]:
    from attune_cli.core.config import read_toml

    if not path.exists():
        return {}
    _check_private(path)
    document = read_toml(path)
    keys: dict[str, str] = {}
    for name, entry in document.items():
        value = entry.get(KEY_FIELD) if isinstance(entry, dict) else None
        if not _SHOWABLE_NAME.match(name):
            # Never echo the name either: a key pasted as `[sk-…]` or `sk-… = …` is one.
            raise ConfigError(
                path,
                f"line {_line_of(path, name)}: a table or key that is not a provider name (not "
                "shown: it may be an API key pasted in the wrong place)",
                hint=f'keep only [PROVIDER] tables holding {KEY_FIELD} = "…"; if a key was '
                "pasted there, consider rotating it",
            )
        if not isinstance(value, str):
            # Never echo the value: it may be a key written in the wrong place.
            raise ConfigError(
                path, f'must be a table holding {KEY_FIELD} = "…"', key=name, value=None
            )
        keys[name] = value.strip()
    return keys


def _line_of(path: Path, name: str) -> str:
    """The line number where ``name`` appears in ``path`` (``?`` when it cannot be told)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return "?"
    for number, line in enumerate(lines, 1):
        if name in line:
            return str(number)
    return "?"


def _check_private(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(
            path,
            "is a folder, not a file; no key can be stored or read there",
            hint=f"move it aside (mv {path} {path}.old); a key in the environment still works",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise PermissionsError(
            f"{path} can be read by other users (mode {mode:04o}); refusing to use it. "
            f"Run: chmod 600 {path}",
            hint="keys in it may have been seen by others; consider rotating them",
        )


def _check_provider_name(name: str) -> None:
    if not _PROVIDER_NAME.match(name):
        raise UsageError(
            f"{name!r} is not a provider name (letters, digits, '-', '_' or '.')",
        )


def _check_key(key: str) -> str:
    clean = key.strip()
    if not clean:
        raise UsageError("the key is empty; nothing was stored")
    if any(char.isspace() or not char.isprintable() for char in clean):
        raise UsageError(
            "the key holds spaces, line breaks or control characters; nothing was stored",
            hint="paste the key alone, on one line",
        )
    if not clean.isascii():
        # An HTTP header cannot carry it: every call with it would fail.
        raise UsageError(
            "the key holds non-ASCII characters (a smart quote or a look-alike letter?); "
            "nothing was stored",
            hint="copy the key again from the provider's console",
        )
    return clean
