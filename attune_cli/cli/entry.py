"""The ``attune`` console script.

A Tab press in bash, zsh or fish runs a whole ``attune`` process; answering it from the
generated command tree (``attune_cli.cli.tab``) before typer is imported keeps each press near
Python's own start-up time. Anything else, and any completion line the tree cannot judge
exactly, runs the app (``attune_cli.cli.app.main``).
"""

from __future__ import annotations

import os
import sys

from attune_cli.cli.tab import COMPLETE_VAR


def main() -> None:
    """Console-script entry point (``attune``)."""
    skip_httpx_command_line()
    if os.environ.get(COMPLETE_VAR):
        from attune_cli.cli.tab import answer

        status = answer()
        if status is not None:
            sys.exit(status)
    if len(sys.argv) == 3 and sys.argv[1] == "--show-completion":
        # typer's flag ignores a named shell and prints the detected one's script.
        sys.exit(_show_completion(sys.argv[2]))
    if len(sys.argv) == 2 and sys.argv[1].startswith("--show-completion="):
        sys.exit(_show_completion(sys.argv[1].partition("=")[2]))
    if sys.argv[1:] == ["--version"]:
        # Scripts and bug reports ask this often; it needs nothing but the version string.
        from attune_cli import __version__

        sys.stdout.write(f"attune {__version__}\n")
        sys.exit(0)
    # `auth status` is run often enough (prompts, scripts) to skip typer's ~50 ms too.
    from attune_cli.cli.auth_status import run_without_typer

    status = run_without_typer(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    from attune_cli.cli.app import main as app_main

    app_main()


def skip_httpx_command_line() -> None:
    """Keep ``import httpx`` from loading httpx's own command-line client.

    ``httpx/__init__.py`` imports ``httpx._main`` (its ``httpx`` command) whenever click, rich
    and pygments can be imported, which they can beside uvicorn or llm: that pulls in
    ``rich.progress``, ``rich.syntax`` and pygments' lexers, about 40 ms of every ``attune ask``
    (``benchmarks/startup.py``, "import httpx"). A ``None`` in ``sys.modules`` makes that one
    import fail, and httpx falls back as it does when they are not installed; only its own
    console script would notice, and attune never runs it. Done here, in attune's process,
    not on import of ``attune_cli``: a program that imports attune keeps httpx as it is.
    """
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def _show_completion(shell: str) -> int:
    """Print ``shell``'s completion script (exit 0), or say which shells exist (exit 2)."""
    from attune_cli.cli.tab import SHELLS, completion_script

    if shell not in SHELLS:
        sys.stderr.write(
            f"Error: no completion for {shell!r}; --show-completion takes one of "
            f"{', '.join(SHELLS)}\n"
        )
        return 2
    sys.stdout.write(completion_script(shell))
    return 0
