"""Output plumbing shared by every command: consoles, JSON, errors, terminal checks.

Data goes to stdout, messages and errors to stderr. Rich is imported only when a command
renders something, and honours ``NO_COLOR`` and a non-TTY stdout by itself.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


@cache
def out() -> Console:
    """The Rich console for data on stdout."""
    from rich.console import Console

    console = Console(highlight=False)
    # Rich ends a closed pipe with exit 1; the reader going away (`| head`) is not a failure.
    console.on_broken_pipe = _closed_pipe  # type: ignore[method-assign]
    return console


@cache
def err() -> Console:
    """The Rich console for messages on stderr."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def plain(value: object, style: str = "") -> Text:
    """A value from data (a name, a provider's message) as Rich text: never markup.

    Characters a terminal would obey (ESC, C1 controls, bidi overrides) are shown as escapes
    (``\\x1b``), so a hostile name in a stored row or an imported log cannot clear the screen,
    retitle the window or break the table it sits in.
    """
    from rich.text import Text

    from attune_cli.core.safe_text import visible

    return Text(visible(str(value)), style=style)


def print_json(document: Any) -> None:
    """Write one JSON document to stdout and nothing else.

    Floats are rounded here, once (``core.formats.json_ready``), and a non-finite number is
    written as null: the document is always standard JSON.
    """
    from attune_cli.core.formats import json_ready

    text = json.dumps(
        json_ready(document), indent=2, default=str, ensure_ascii=False, allow_nan=False
    )
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def message(text: str, *, markup: bool = True) -> None:
    """A one-line message for the person, on stderr (Rich markup allowed unless ``markup``
    is False: pass False whenever ``text`` holds a path, a name or anything from data)."""
    if markup:
        err().print(text)
    else:
        err().print(plain(text))


def warn(text: str, *, markup: bool = True) -> None:
    """A warning on stderr (``markup`` as for ``message``)."""
    from rich.text import Text

    body = err().render_str(text) if markup else plain(text)
    # One line, however narrow the terminal: a warning is something to grep for in logs.
    err().print(Text.assemble(("Warning:", "yellow"), " ", body), soft_wrap=True)


def install_config_warnings() -> None:
    """Show each unknown ``config.toml`` key as a warning on stderr (``core.config_keys``)."""
    from attune_cli.core.config_keys import set_warning_sink

    set_warning_sink(lambda text: warn(text, markup=False))


def stdin_is_terminal() -> bool:
    """Whether a person can answer prompts: stdin and stdout are both terminals."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; anything but yes is no.

    Not ``typer.confirm``: it turns Ctrl-C into an ``Abort`` (exit 1), and an interrupted
    command must exit 130 like every other.
    """
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def debug_enabled() -> bool:
    """Whether ``ATTUNE_DEBUG=1`` asks for tracebacks."""
    return os.environ.get("ATTUNE_DEBUG", "") not in ("", "0")


def report_failure(exc: BaseException) -> int | None:
    """Write the one-line message a person sees for ``exc`` and return its exit code.

    attune's errors print ``Error: …`` and an optional ``Hint: …``; Ctrl-C prints that nothing
    was saved and gives 130; anything unexpected asks for ``ATTUNE_DEBUG=1`` and gives 1. Returns
    None (the caller re-raises) for ``ATTUNE_DEBUG=1`` and for exceptions that are not ours to
    map, such as ``SystemExit``.
    """
    from attune_cli.core.errors import EXIT_FAILURE, EXIT_INTERRUPTED, AttuneError

    if isinstance(exc, BrokenPipeError):
        # The reader went away (`attune telemetry export | head -1`): not a failure. Whatever
        # is still buffered goes nowhere, so Python's exit does not complain either.
        _silence_stdout()
        return 0
    if isinstance(exc, KeyboardInterrupt) or _stopped_by_ctrl_c(exc):
        sys.stderr.write("\nInterrupted; nothing was saved.\n")
        return EXIT_INTERRUPTED
    if not isinstance(exc, Exception) or debug_enabled():
        return None
    if isinstance(exc, AttuneError):
        from attune_cli.core.safe_text import visible

        # A message may quote a provider's body or a file's line: shown, never obeyed.
        sys.stderr.write(f"Error: {visible(exc.message)}\n")
        if exc.hint:
            sys.stderr.write(f"Hint: {visible(exc.hint)}\n")
        return exc.exit_code
    sys.stderr.write(
        f"Error: unexpected {type(exc).__name__}; "
        "run again with ATTUNE_DEBUG=1 for the traceback and report it\n"
    )
    return EXIT_FAILURE


def _closed_pipe() -> None:
    _silence_stdout()
    raise SystemExit(0)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test's capture): nothing will be flushed to a closed pipe


def _stopped_by_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` is a SQLite query that Ctrl-C aborted (see ``core.interrupts``)."""
    from attune_cli.core import interrupts

    return type(exc).__module__ == "sqlite3" and interrupts.requested()
