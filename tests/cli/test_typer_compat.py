"""Each private typer name attune relies on (``attune_cli.cli.typer_compat``) against the
installed typer: when a typer release moves one, the failing test names it."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import MutableMapping
from enum import StrEnum
from typing import Any

import pytest
import typer
import typer.main
from typer import _completion_classes, _completion_shared
from typer._click.shell_completion import ShellComplete, get_completion_class

from attune_cli.cli import typer_compat
from attune_cli.cli.typer_compat import (
    BashCompleteBase,
    ClickCommand,
    ClickContext,
    ClickException,
    ClickFile,
    CompletionItem,
    FishCompleteBase,
    ParamType,
    ShellCompletionGroup,
    TyperChoice,
    ZshCompleteBase,
)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


def complete_name(incomplete: str) -> list[str]:
    return [name for name in ("ada", "alan") if name.startswith(incomplete)]


def _probe_command() -> ClickCommand:
    app = typer.Typer()

    @app.command()
    def pick(
        colour: Colour = typer.Option(Colour.RED),
        notes: typer.FileText = typer.Option(None),
        name: str = typer.Option("", autocompletion=complete_name),
        plain: str = typer.Option(""),
    ) -> None:
        """Pick."""

    return typer.main.get_command(app)


def _param(command: ClickCommand, name: str) -> Any:
    return next(p for p in command.params if p.name == name)


def test_the_installed_typer_is_the_pinned_one() -> None:
    major, minor = (int(part) for part in typer.__version__.split(".")[:2])
    assert (0, 26) <= (major, minor) < (0, 29)


def test_clicks_classes_are_the_ones_typer_builds_on() -> None:
    assert issubclass(typer.Context, ClickContext)
    assert issubclass(typer.core.TyperGroup, ClickCommand)
    assert issubclass(typer.BadParameter, ClickException)
    item = CompletionItem("llama3.1:8b", help="local")
    assert (item.value, item.help, item.type) == ("llama3.1:8b", "local", "plain")


def test_parameter_types_are_recognised() -> None:
    command = _probe_command()
    colour = _param(command, "colour").type
    assert isinstance(colour, TyperChoice)
    assert [str(c) for c in colour.choices] == ["red", "blue"]
    assert colour.case_sensitive is True
    assert isinstance(_param(command, "notes").type, ClickFile)
    plain_type = _param(command, "plain").type
    assert type(plain_type).shell_complete is ParamType.shell_complete


def test_the_autocompletion_function_is_found_inside_typers_wrapper() -> None:
    command = _probe_command()
    custom = typer_compat.custom_completion(_param(command, "name"))
    assert custom is not None
    assert typer_compat.autocompletion_function(custom) is complete_name
    assert typer_compat.custom_completion(_param(command, "plain")) is None


def test_the_completion_hook_runs_before_any_argument_is_parsed() -> None:
    seen: list[MutableMapping[str, Any]] = []

    class Stop(Exception):
        pass

    class Group(ShellCompletionGroup):
        def answer_completion(self, ctx_args: MutableMapping[str, Any]) -> None:
            seen.append(ctx_args)
            raise Stop

    app = typer.Typer(cls=Group)

    @app.command()
    def one() -> None:
        """One."""

    @app.command()
    def two() -> None:
        """Two."""

    with pytest.raises(Stop):
        typer.main.get_command(app).main(
            args=["--no-such-option"], prog_name="probe", standalone_mode=False
        )
    assert seen == [{}]


def test_completion_scripts_reach_typers_show_completion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        _completion_shared, "_completion_scripts", dict(_completion_shared._completion_scripts)
    )
    typer_compat.set_completion_scripts({"bash": "# %(prog_name)s, 100%%\n"})
    script = _completion_shared.get_completion_script(
        prog_name="attune", complete_var="_ATTUNE_COMPLETE", shell="bash"
    )
    assert script == "# attune, 100%"


def test_completion_classes_replace_typers_for_their_shells() -> None:
    for base in (BashCompleteBase, ZshCompleteBase, FishCompleteBase):
        assert issubclass(base, ShellComplete)
        assert callable(base.get_completions)

    class Bash(BashCompleteBase):
        pass

    try:
        typer_compat.use_completion_classes({"bash": Bash})
        assert get_completion_class("bash") is Bash
        assert get_completion_class("zsh") is _completion_classes.ZshComplete
    finally:
        _completion_classes.completion_init()
    assert get_completion_class("bash") is _completion_classes.BashComplete


def test_typers_help_renderer_still_imports_the_deferred_modules() -> None:
    # When this fails, typer stopped importing them: the stand-ins can go.
    import typer.rich_utils

    source = inspect.getsource(typer.rich_utils)
    assert "from rich.markdown import Markdown" in source
    assert "from rich.traceback import Traceback" in source


@pytest.mark.e2e
def test_deferred_rich_modules_still_work_when_used() -> None:
    probe = (
        "import io, sys\n"
        "from attune_cli.cli.typer_compat import defer_unused_rich_modules\n"
        "defer_unused_rich_modules()\n"
        "assert 'markdown_it' not in sys.modules\n"
        "from rich.console import Console\n"
        "from rich.markdown import Markdown\n"
        "from rich.traceback import Traceback\n"
        "buf = io.StringIO()\n"
        "Console(file=buf, width=40).print(Markdown('# Title'))\n"
        "print(type(Markdown('x')).__module__, 'Title' in buf.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["rich.markdown", "True"]
