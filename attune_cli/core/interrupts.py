"""Ctrl-C that reaches code running inside SQLite.

SQLite runs a query in C, where Python never sees Ctrl-C until the query ends: a query that
never ends (an llm ``logs.db`` whose ``responses`` is a recursive view, a huge scan) would
ignore it. Every connection
``attune_cli.core.telemetry.db`` opens gets a progress handler, ``requested``,
that SQLite calls every few thousand steps. Being Python code, it lets the interpreter run
``on_sigint``, which marks the interrupt and raises; SQLite then aborts the query, and the
caller turns the resulting ``OperationalError`` back into ``KeyboardInterrupt``.

Kept free of imports so ``attune --help`` can install the handler at no cost.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any

_state = {"interrupted": False}


def requested() -> bool:
    """Whether Ctrl-C arrived (the progress handler: non-zero aborts the running query).

    Must stay a Python function: a C callable would give the interpreter no chance to run
    the signal handler while SQLite holds the thread.
    """
    return _state["interrupted"]


def on_sigint(signum: int, frame: Any) -> None:
    """The SIGINT handler: mark the interrupt, then raise as Python's default handler does."""
    _state["interrupted"] = True
    raise KeyboardInterrupt


def install() -> None:
    """Make ``on_sigint`` the SIGINT handler (main thread only; elsewhere, nothing)."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, on_sigint)


def reset() -> None:
    """Forget an earlier interrupt (a long-lived process that caught one and went on)."""
    _state["interrupted"] = False
