"""A pseudo-terminal that answers like a terminal emulator, for the pexpect tests.

prompt_toolkit (under questionary) asks the terminal where the cursor is (``ESC [ 6 n``, a
cursor position request) each time a prompt starts, and when the prompt ends it waits for the
answer, up to one second, before returning. A terminal emulator answers at once; a bare pexpect
pty never does, so every question in a test cost a silent second. ``Terminal`` answers each
request the way a terminal would (``ESC [ row ; col R``), so the prompts run as they do for a
person.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pexpect

CURSOR_POSITION_REQUEST = "\x1b[6n"
# Row 1, column 1: the whole screen is free below the prompt (the test terminal starts empty).
CURSOR_POSITION_REPORT = b"\x1b[1;1R"


def attune_argv() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m attune_cli``."""
    script = Path(sys.executable).with_name("attune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "attune_cli"]


class Terminal(pexpect.spawn):  # type: ignore[misc]
    """A pexpect child whose terminal reports the cursor position when asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._tail = ""
        self.position_requests = 0
        super().__init__(*args, **kwargs)

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> Any:
        incoming = super().read_nonblocking(size, timeout)
        # A request split across two reads is found through the tail of the previous read.
        seen = self._tail + incoming
        requests = seen.count(CURSOR_POSITION_REQUEST)
        for _ in range(requests):
            os.write(self.child_fd, CURSOR_POSITION_REPORT)
        self.position_requests += requests
        # Three characters can hold the start of a request but never a whole (counted) one.
        self._tail = seen[-(len(CURSOR_POSITION_REQUEST) - 1) :]
        return incoming


def spawn_attune(*args: str, dimensions: tuple[int, int] = (50, 140)) -> Terminal:
    """``attune ARGS`` in a terminal (TERM=xterm) of ``dimensions`` (rows, columns)."""
    argv = [*attune_argv(), *args]
    return Terminal(
        argv[0],
        argv[1:],
        env={**os.environ, "TERM": "xterm"},
        encoding="utf-8",
        timeout=20,
        dimensions=dimensions,
    )


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Read to the end; the exit status and what came after the last match."""
    child.expect(pexpect.EOF)
    status = child.wait()  # reaped: closing needs no grace period for the kernel
    child.ptyproc.delayafterclose = 0
    child.close()
    return status, child.before or ""
