"""Completion through typer: the fallback that answers any line, and the tree generator.

``attune_cli.cli.tab`` answers most Tab presses without importing typer. This module is what
runs when it cannot (or for ``python -m attune_cli``): the root group calls
``prepare_shell_completion``, which answers with click's own resolution through attune's shell
classes. They differ from typer's where typer's hurt on every Tab:

- typer's zsh and fish classes import Rich (~60 ms) only to strip markup from help texts;
- typer's bash class reads ``COMP_WORDS``, which bash splits at ``:`` and ``=``, so a model id
  such as ``llama3.1:8b`` or ``--stage=triage`` arrives in pieces;
- typer's fish script runs attune twice per Tab, and its zsh script completes nothing on the
  first Tab when loaded from ``$fpath`` (the way ``--install-completion`` installs it).

``prepare_shell_completion`` also makes ``attune --show-completion`` / ``--install-completion``
print and install the scripts shipped in ``completions/``. ``command_tree`` describes the app
for ``completion_tree.py``; ``scripts/gen_completions.py`` writes both.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from typer.core import TyperGroup, TyperOption
from typer.models import TyperPath

from attune_cli.cli.tab import (
    COMPLETE_VAR,
    DEFAULT_WORDBREAKS,
    PROG_NAME,
    SHELLS,
    Item,
    completion_script,
    format_bash,
    format_fish,
    format_zsh,
    split_line,
)
from attune_cli.cli.typer_compat import (
    BashCompleteBase,
    ClickCommand,
    ClickContext,
    ClickFile,
    CompletionItem,
    FishCompleteBase,
    ParamType,
    TyperChoice,
    ZshCompleteBase,
    autocompletion_function,
    custom_completion,
    set_completion_scripts,
    use_completion_classes,
)


def prepare_shell_completion(cli: ClickCommand, ctx_args: MutableMapping[str, Any]) -> None:
    """Point ``--show-completion`` / ``--install-completion`` at attune's scripts, and answer
    a completion request, then exit, when the shell made one.

    The root group calls this before parsing anything. The program name and the variable are
    fixed so ``python -m attune_cli`` answers the same requests as the ``attune`` script.

    Args:
        cli: the root command.
        ctx_args: extra context arguments, as click passes them.
    """
    # typer %-formats and strips these itself; hand it the finished scripts.
    set_completion_scripts(
        {shell: completion_script(shell).rstrip("\n").replace("%", "%%") for shell in SHELLS}
    )

    instruction = os.environ.get(COMPLETE_VAR)
    if instruction:
        sys.exit(_answer(cli, ctx_args, instruction))


def _answer(cli: ClickCommand, ctx_args: MutableMapping[str, Any], instruction: str) -> int:
    from typer.completion import shell_complete

    # PowerShell stays typer's.
    use_completion_classes({"bash": BashComplete, "zsh": ZshComplete, "fish": FishComplete})
    try:
        return shell_complete(cli, ctx_args, PROG_NAME, COMPLETE_VAR, instruction)
    except Exception:
        from attune_cli.cli.console import debug_enabled

        if debug_enabled():
            raise
        # Whatever broke, the shell gets no words and the terminal no traceback.
        return 0


def _items(completions: list[CompletionItem]) -> list[Item]:
    return [Item(c.value, c.help, c.type) for c in completions]


class BashComplete(BashCompleteBase):
    """bash: the line in ``COMP_LINE``, bash's word and word breaks beside it."""

    def source(self) -> str:
        return completion_script("bash", PROG_NAME).rstrip("\n")  # click's echo ends the line

    def get_completion_args(self) -> tuple[list[str], str]:
        return split_line(os.environ.get("COMP_LINE", ""))

    def complete(self) -> str:
        args, typed = self.get_completion_args()
        # click appends to args while resolving "--opt=value"; keep ours intact.
        items = _items(self.get_completions(list(args), typed))
        word = os.environ.get("COMP_WORD", typed)
        return format_bash(
            items, typed, word, os.environ.get("COMP_WORDBREAKS", DEFAULT_WORDBREAKS)
        )


class ZshComplete(ZshCompleteBase):
    """zsh: typer's protocol, help texts without importing Rich."""

    def source(self) -> str:
        return completion_script("zsh", PROG_NAME).rstrip("\n")  # click's echo ends the line

    def get_completion_args(self) -> tuple[list[str], str]:
        return split_line(os.environ.get("_TYPER_COMPLETE_ARGS", ""))

    def complete(self) -> str:
        args, typed = self.get_completion_args()
        return format_zsh(_items(self.get_completions(list(args), typed)), typed)


class FishComplete(FishCompleteBase):
    """fish: typer's protocol, help texts without importing Rich."""

    def source(self) -> str:
        return completion_script("fish", PROG_NAME).rstrip("\n")  # click's echo ends the line

    def get_completion_args(self) -> tuple[list[str], str]:
        return split_line(os.environ.get("_TYPER_COMPLETE_ARGS", ""))

    def complete(self) -> str:
        args, typed = self.get_completion_args()
        completions = _items(self.get_completions(list(args), typed))
        if os.environ.get("_TYPER_COMPLETE_FISH_ACTION") == "is-args":
            # typer's own script asks first whether there are words (exit 0) or not (exit 1).
            sys.exit(0 if completions else 1)
        return format_fish(completions, typed)


def command_tree(cli: ClickCommand) -> dict[str, Any]:
    """Describe ``cli`` for ``tab.complete_from_tree``: sub-commands, options, arguments.

    Each parameter says how its values complete: fixed choices, a callback named by module and
    function (called with the typed text only), file names, nothing, or ``("unsure",)`` when
    only click can tell (the fast path then hands the request to click).
    """
    with cli.make_context(PROG_NAME, [], resilient_parsing=True) as ctx:
        return _node(cli, ctx)


def _node(command: ClickCommand, ctx: ClickContext) -> dict[str, Any]:
    is_group = isinstance(command, TyperGroup)
    node: dict[str, Any] = {
        "help": command.get_short_help_str(),
        "hidden": command.hidden,
        # The fast path models click's default parsing only.
        "plain": (
            ctx.allow_interspersed_args is not is_group
            and not ctx.ignore_unknown_options
            and ctx.token_normalize_func is None
            and not getattr(command, "chain", False)
        ),
        "params": [_param(p, ctx) for p in command.get_params(ctx)],
    }
    if isinstance(command, TyperGroup):
        commands = {}
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None:
                continue
            with sub.make_context(name, [], parent=ctx, resilient_parsing=True) as sub_ctx:
                commands[name] = _node(sub, sub_ctx)
        node["commands"] = commands
    return node


def _param(param: Any, ctx: ClickContext) -> dict[str, Any]:
    if isinstance(param, TyperOption):
        takes_value = not (param.is_flag or param.count)
        opts = list(param.opts)
        if set(opts) == set(ctx.help_option_names):
            # click builds the help option from a set: its order changes from run to run.
            opts = [name for name in ctx.help_option_names if name in opts]
        return {
            "kind": "option",
            "opts": opts,
            "names": [*opts, *param.secondary_opts],
            "takes_value": takes_value,
            "nargs": param.nargs,
            "multiple": param.multiple,
            "hidden": param.hidden,
            "help": param.help,
            "values": _values(param) if takes_value else None,
        }
    return {"kind": "argument", "nargs": param.nargs, "values": _values(param)}


def _values(param: Any) -> tuple[Any, ...] | None:
    custom = custom_completion(param)
    if custom is not None:
        callback = _autocompletion_of(custom)
        if callback is None:
            return ("unsure",)
        return ("call", callback.__module__, callback.__qualname__)
    kind = param.type
    if isinstance(kind, TyperChoice):
        return ("choices", [str(c) for c in kind.choices], kind.case_sensitive)
    if isinstance(kind, ClickFile):
        return ("file",)
    if isinstance(kind, TyperPath) or type(kind).shell_complete is ParamType.shell_complete:
        return None
    return ("unsure",)


def _autocompletion_of(custom: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function given as ``autocompletion=``, when the fast path can call it by name.

    The fast path calls ``function(incomplete)``, so it must take only the typed text and be
    importable as ``module.name``.
    """
    wrapped = autocompletion_function(custom)
    if wrapped is None or "." in wrapped.__qualname__ or "<" in wrapped.__qualname__:
        return None
    parameters = list(inspect.signature(wrapped).parameters.values())
    if len(parameters) == 1 and (
        parameters[0].name == "incomplete" or parameters[0].annotation in (str, "str")
    ):
        return wrapped
    return None


def tree_module(cli: ClickCommand) -> str:
    """The text of ``attune_cli/cli/completion_tree.py`` for ``cli``."""
    import pprint  # the generator's alone; every attune run imports this module

    tree = pprint.pformat(command_tree(cli), width=100, sort_dicts=False)
    return (
        '"""The attune command tree for shell completion (see ``attune_cli.cli.tab``).\n\n'
        "Generated by ``python scripts/gen_completions.py`` from the app; do not edit.\n"
        "tests/cli/test_completion_scripts.py fails when it no longer matches the app.\n"
        '"""\n\n'
        "# fmt: off\n"
        "# ruff: noqa: E501\n"
        "from typing import Any\n\n"
        f"TREE: dict[str, Any] = {tree}\n"
    )
