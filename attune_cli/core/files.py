"""Crash-safe file writes: a reader sees the old content or the new, never a torn file."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temp_files(folder: Path, name: str) -> None:
    """Delete temp files a killed writer of ``folder/name`` may have left behind."""
    for leftover in folder.glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for a read-modify-write of ``path``.

    The lock lives on a sibling ``.NAME.lock`` file so the data file can still be replaced by
    rename while the lock is held. Two processes updating the same file take turns instead of
    one silently overwriting the other's change.
    """
    lock_path = path.parent / f".{path.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
