"""Where attune keeps its files.

``ATTUNE_HOME`` puts everything in one folder (tests, CI and scripts use it). Otherwise the XDG
base directories: config in ``$XDG_CONFIG_HOME/attune`` and data in ``$XDG_DATA_HOME/attune``.
The XDG rules are read here directly rather than through platformdirs: on Linux they are two
environment variables with two defaults, and importing platformdirs costs ~15 ms of startup on
every Tab press of shell completion.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

CONFIG_FILE = "config.toml"
CREDENTIALS_FILE = "credentials.toml"
TELEMETRY_FILE = "telemetry.db"


@dataclass(frozen=True)
class Paths:
    """The folders and files attune reads and writes."""

    config_dir: Path
    data_dir: Path

    @cached_property
    def config_file(self) -> Path:
        return self.config_dir / CONFIG_FILE

    @cached_property
    def credentials_file(self) -> Path:
        return self.config_dir / CREDENTIALS_FILE

    @cached_property
    def telemetry_db(self) -> Path:
        return self.data_dir / TELEMETRY_FILE

    @property
    def legacy_dir(self) -> Path:
        """The older attune tool's folder (``~/.attune``), read for migration only."""
        return Path(os.environ.get("ATTUNE_LEGACY_HOME") or Path.home() / ".attune")


def _xdg(environ: Mapping[str, str], var: str, default: str) -> Path:
    value = environ.get(var)
    # The XDG spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / default


def resolve_paths(env: Mapping[str, str] | None = None) -> Paths:
    """Return the paths for this process, from ``ATTUNE_HOME`` or the XDG variables.

    Args:
        env: the environment to read; ``os.environ`` when omitted.

    Returns:
        The resolved ``Paths``. Nothing is created on disk.
    """
    environ = os.environ if env is None else env
    home = environ.get("ATTUNE_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(config_dir=root, data_dir=root)
    return Paths(
        config_dir=_xdg(environ, "XDG_CONFIG_HOME", ".config") / "attune",
        data_dir=_xdg(environ, "XDG_DATA_HOME", ".local/share") / "attune",
    )


def tighten_existing_dirs(paths: Paths) -> None:
    """Make attune's existing folders private (0700); create nothing.

    Raises:
        PermissionsError: a folder is open to others and attune may not tighten it.
        UsageError: a folder is a file (``ATTUNE_HOME=/some/file``): every later message
            would name a file inside it.
    """
    for folder in {paths.config_dir, paths.data_dir}:
        if folder.exists() and not folder.is_dir():
            from attune_cli.core.errors import UsageError

            name = "ATTUNE_HOME" if os.environ.get("ATTUNE_HOME") else "attune's folder"
            raise UsageError(
                f"{name} {folder} is a file, not a folder",
                hint="point ATTUNE_HOME at a folder (attune creates one that is missing)",
            )
        try:
            if os.stat(folder).st_mode & 0o077 == 0:
                continue
        except OSError:
            continue  # missing (made private when first written) or unreadable (said then)
        ensure_private_dir(folder)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 if missing, else make it private; return it.

    An existing folder that the group or others can read or write (keys and call history live
    there) is tightened to 0700. One that cannot be (not ours, or a shared sticky folder such
    as ``/tmp``) is refused with the fix.

    Raises:
        PermissionsError: the folder is open to others and attune may not tighten it.
        OperationError: the folder cannot be created (read-only file system, full disk …).
    """
    import stat

    from attune_cli.core.errors import PermissionsError
    from attune_cli.core.files import write_error

    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise write_error(path, exc) from None
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return path
    refusal = PermissionsError(
        f"{path} can be read or written by other users (mode {mode:04o}); attune keeps keys "
        f"and call history there. Run: chmod 700 {path}",
        hint="or point ATTUNE_HOME at a folder of your own",
    )
    if mode & stat.S_ISVTX or info.st_uid != os.geteuid():
        raise refusal
    try:
        os.chmod(path, 0o700)
    except OSError:
        raise refusal from None
    return path
