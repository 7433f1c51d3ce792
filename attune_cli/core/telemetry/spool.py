"""The spool: calls that could not be written to ``telemetry.db`` wait here instead of being lost.

``spool.jsonl`` sits beside ``telemetry.db`` (mode 0600), one JSON object a line holding a
stored row (``attune_cli.core.telemetry.COLUMNS``, the call's identity included). A writer that
cannot get into the store (it stayed locked past the busy timeout, the file is corrupt, from a
newer attune, or cannot be written) appends its row with one ``os.write`` on an ``O_APPEND``
descriptor, so lines from many processes never interleave.

The next write that gets in drains it: it takes the file away by renaming it to
``spool.<pid>.<random>.draining`` (under the same ``flock`` every appender holds while it
writes, so no line is half-written into a file being taken, and an appender that finds its file
renamed writes to the new one), inserts its rows, and deletes it. Inserting is idempotent (a
call's ``(ts, key)`` identity is unique), so a drainer killed half-way, or two drainers reading
the same file, add each call once: a leftover ``.draining`` file is drained again by the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

SPOOL_NAME = "spool.jsonl"
_DRAINING_GLOB = "spool.*.draining"


def spool_path(store_path: Path) -> Path:
    """The spool beside a store file."""
    return store_path.with_name(SPOOL_NAME)


def append(path: Path, columns: Sequence[str], row: Sequence[Any]) -> None:
    """Append one row to the spool at ``path`` (created 0600).

    Raises:
        OSError: the spool cannot be written either (a read-only or full file system).
    """
    data = (json.dumps(dict(zip(columns, row, strict=True)), separators=(",", ":")) + "\n").encode()
    for _ in range(10):
        fd = os.open(
            path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not _still_at(fd, path):
                continue  # a drainer took this file away meanwhile: write to the new one
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
            return
        finally:
            os.close(fd)
    raise OSError(f"{path}: kept being taken away while writing to it")


def _still_at(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def waiting(path: Path) -> int:
    """How many rows wait in the spool (its draining leftovers included)."""
    return sum(_count_lines(file) for file in _files(path))


def _files(path: Path) -> list[Path]:
    files = sorted(path.parent.glob(_DRAINING_GLOB)) if path.parent.exists() else []
    if path.exists():
        files.append(path)
    return files


def _count_lines(file: Path) -> int:
    try:
        with file.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
    except OSError:
        return 0


def drain(
    path: Path, columns: Sequence[str], insert: Callable[[list[tuple[Any, ...]]], None]
) -> int:
    """Move every spooled row into the store through ``insert``; returns how many were read.

    ``insert`` must be idempotent (rows already stored are skipped) and commit before it
    returns; each file is deleted only after. A line that is not a row is dropped (the
    spool only ever holds whole lines this module wrote).

    Raises:
        Exception: whatever ``insert`` raised; the file stays for the next drain.
    """
    _claim(path)
    read = 0
    for file in sorted(path.parent.glob(_DRAINING_GLOB)):
        rows = list(_rows(file, columns))
        if rows:
            insert(rows)
        read += len(rows)
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
    return read


def _claim(path: Path) -> None:
    """Rename the spool to a draining file of this process (nothing when busy or absent)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a writer is appending: its own next write, or the next one, drains
        if _still_at(fd, path) and os.fstat(fd).st_size:
            os.rename(path, path.with_name(f"spool.{os.getpid()}.{os.urandom(4).hex()}.draining"))
    finally:
        os.close(fd)


_OPTIONAL = frozenset({"billing"})


def _rows(file: Path, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            values = json.loads(line)
            # A row spooled by an older attune has no billing: unknown.
            yield tuple(
                values.get(column) if column in _OPTIONAL else values[column] for column in columns
            )
        except (ValueError, KeyError, TypeError):
            continue
