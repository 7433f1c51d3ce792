"""The root ``attune`` command: global options, sub-command groups, error → exit-code mapping.

Sub-command modules import only typer and light core modules at import time; anything heavy
(httpx, questionary, tomlkit, sqlite3, Rich tables) is imported inside the command that needs
it, so ``attune --help`` and every Tab press of completion stay fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import typer

from attune_cli import __version__
from attune_cli.cli.typer_compat import (
    ClickContext,
    ClickException,
    ShellCompletionGroup,
    defer_unused_rich_modules,
)


class AttuneGroup(ShellCompletionGroup):
    """Maps attune's errors and Ctrl-C to one-line messages and exit codes, in one place."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit, typer.Abort):
            # click's own handler turns its usage errors into exit 2.
            raise
        except (Exception, KeyboardInterrupt) as exc:
            from attune_cli.cli.console import report_failure

            code = report_failure(exc)
            if code is None:
                raise
            raise typer.Exit(code) from None

    def get_command(self, ctx: ClickContext, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            from attune_cli.cli.help_text import reflow_tree

            # Help that re-flows at any width, examples kept whole (cli/help_text.py).
            reflow_tree(command)
        return command

    def answer_completion(self, ctx_args: MutableMapping[str, Any]) -> None:
        # Every Tab press is a whole attune run: answer it with attune's own shell classes and
        # scripts (attune_cli/cli/shells.py says why typer's are replaced).
        from attune_cli.cli.shells import prepare_shell_completion

        prepare_shell_completion(self, ctx_args)


def _version(ctx: typer.Context, value: bool) -> None:
    # Shell completion parses `attune --version …` too; it must not print the version then.
    if value and not ctx.resilient_parsing:
        sys.stdout.write(f"attune {__version__}\n")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print attune's version and exit.",
    ),
) -> None:
    """Pick the right LLM for each workflow stage, keep credentials boring, survive failures."""
    from attune_cli.core import hooks

    hooks.backfill_progress = _backfill_bar


def build_app(command: str | None = None) -> typer.Typer:
    """The root ``attune`` app with every command, or with only ``command`` and its group.

    Building typer's command tree means reading the signature and type hints of every command
    (about 22 ms for all of them on a quiet machine, ``benchmarks/startup.py``); a run that
    names its command needs only that one's (about 4 ms). Help, usage errors and completion
    that need the whole tree get all of it.
    """
    app = typer.Typer(
        name="attune",
        cls=AttuneGroup,
        help=(
            "Pick the right LLM for each workflow stage, keep credentials boring, "
            "and survive provider failures."
        ),
        epilog="Files live in $ATTUNE_HOME, or ~/.config/attune and ~/.local/share/attune.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    registrars = [_COMMANDS[command]] if command in _COMMANDS else _REGISTRARS
    for register in registrars:
        register(app)
    return app


class _BackfillBar:
    """A progress bar on a terminal's stderr while an upgraded store's rollups are built."""

    def __init__(self) -> None:
        self._progress: object = None
        self._task: object = None

    def __call__(self, done: int, total: int) -> None:
        import sys

        if not sys.stderr.isatty():
            return
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        from attune_cli.cli.console import err

        if not isinstance(self._progress, Progress):
            self._progress = Progress(
                TextColumn("Building hourly rollups of the existing calls"),
                BarColumn(),
                TaskProgressColumn(),
                console=err(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("rollups", total=max(total, 1))
        self._progress.update(self._task, completed=done)  # type: ignore[arg-type]
        if done >= total:
            self._progress.stop()


_backfill_bar = _BackfillBar()


def _group(name: str) -> Callable[[typer.Typer], None]:
    def register(app: typer.Typer) -> None:
        module = importlib.import_module(f"attune_cli.cli.{name}")
        app.add_typer(module.app, name=name)

    return register


def _top_level(name: str) -> Callable[[typer.Typer], None]:
    def register(app: typer.Typer) -> None:
        importlib.import_module(f"attune_cli.cli.{name}").register(app)

    return register


_GROUPS = ("auth", "route", "telemetry", "serve", "store")
_TOP_LEVEL = ("ask", "demo", "doctor", "spend")

_REGISTRARS = [_group(name) for name in _GROUPS] + [_top_level(name) for name in _TOP_LEVEL]
"""Every command, in the order ``attune --help`` lists them."""

_COMMANDS: dict[str, Callable[[typer.Typer], None]] = {
    **{name: _group(name) for name in _GROUPS},
    **{name: _top_level(name) for name in _TOP_LEVEL},
    "budget": _top_level("spend"),  # `spend.register` adds both `spend` and `budget`
}
"""What a run that names its command (``attune NAME …``) registers."""


def __getattr__(name: str) -> Any:
    # ``attune_cli.cli.app.app``: the whole tree, for tests and the completion generator.
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Run the app (the console script reaches it through ``attune_cli.cli.entry``)."""
    from attune_cli.cli.tab import COMPLETE_VAR

    # A Tab press renders no help, and must not even look as if it loaded Rich.
    if not os.environ.get(COMPLETE_VAR):
        defer_unused_rich_modules()
    from attune_cli.core import interrupts

    # Ctrl-C must stop even a SQLite query that never ends (exit 130, like any interrupt).
    interrupts.install()
    if not os.environ.get(COMPLETE_VAR):
        from attune_cli.cli.console import install_config_warnings

        install_config_warnings()
    was_devnull = _stdout_is_devnull()
    app = build_app(sys.argv[1] if len(sys.argv) > 1 else None)
    try:
        app()
    except SystemExit as stop:
        # typer and Rich end a closed pipe (`attune ask --help | head -2`) with exit 1, after
        # wrapping stdout or pointing it at /dev/null; the reader going away is not a failure.
        closed_pipe = type(sys.stdout).__name__ == "PacifyFlushWrapper" or (
            not was_devnull and _stdout_is_devnull()
        )
        if stop.code == 1 and closed_pipe:
            raise SystemExit(0) from None
        raise


def _stdout_is_devnull() -> bool:
    try:
        here, devnull = os.fstat(1), os.stat(os.devnull)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (devnull.st_dev, devnull.st_ino)
