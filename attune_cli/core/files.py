"""Crash-safe file writes: a reader sees the old content or the new, never a torn file.

A write that the system refuses (a full disk, a read-only file system, no permission) is an
``OperationError`` naming the file and the system's reason, and leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from attune_cli.core.errors import OperationError, PermissionsError


def write_error(path: Path, exc: OSError) -> OperationError:
    """``cannot write FILE: No space left on device``: what a refused write tells a person."""
    reason = exc.strerror or type(exc).__name__
    return OperationError(f"cannot write {path}: {reason}")


def symlink_refused(path: Path) -> PermissionsError:
    """The error for a lock or database file that is a symbolic link (never followed)."""
    return PermissionsError(
        f"{path} is a symbolic link; attune does not follow links for its own files",
        hint=f"remove the link (rm {path}) if you did not make it",
    )


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` atomically.

    The temp file is created in the same folder with ``mode`` from its first byte (so a secret
    is never briefly world-readable), fsynced, renamed over ``path`` with ``os.replace``, and the
    folder is fsynced so the rename itself survives a power cut.

    Args:
        path: the file to replace or create.
        text: the full new content.
        mode: permission bits of the new file.
    """
    # tempfile pulls in random and hashlib (~5 ms): only writers pay for it, not every start
    # that merely reads config.toml.
    import tempfile

    folder = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def stale_temp_files(folder: Path, name: str) -> list[Path]:
    """Temp files a killed writer of ``folder/name`` left behind, sorted."""
    try:
        return sorted(p for p in folder.glob(f".{name}.*.tmp") if not p.is_dir())
    except OSError:
        return []


def remove_stale_temp_files(folder: Path, name: str) -> int:
    """Delete temp files a killed writer of ``folder/name`` may have left; returns how many."""
    removed = 0
    for leftover in stale_temp_files(folder, name):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for a read-modify-write of ``path``.

    The lock lives on a sibling ``.NAME.lock`` file so the data file can still be replaced by
    rename while the lock is held. Two processes updating the same file take turns instead of
    one silently overwriting the other's change.
    """
    lock_path = path.parent / f".{path.name}.lock"
    try:
        # O_NOFOLLOW: a link planted in the folder must not make attune create or truncate
        # a file elsewhere.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_refused(lock_path) from None
        raise write_error(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
