"""Every use of typer's private internals, in one module.

typer vendors click as ``typer._click`` since 0.26; pyproject.toml pins typer from 0.26 and
below 0.29 (0.29 imports pydantic on every start). attune relies on these names that typer
keeps private:

- click's own classes (``Command``, ``Context``, ``ClickException``, ``CompletionItem``,
  ``File``, ``ParamType``, ``add_completion_class``): public in click, reachable only through
  ``typer._click``;
- ``typer._types.TyperChoice``, the type typer gives a parameter with fixed choices;
- typer's shell-completion classes and ``completion_init`` (``typer._completion_classes``),
  which attune's bash, zsh and fish classes extend (``attune_cli.cli.shells`` says why);
- typer's table of completion scripts (``typer._completion_shared._completion_scripts``), so
  ``--show-completion`` and ``--install-completion`` use the scripts in ``completions/``;
- a parameter's ``_custom_shell_complete`` and the closure typer wraps an ``autocompletion=``
  function in, to name that function in the generated completion tree;
- click's ``_main_shell_completion`` hook, which runs before any argument is parsed;
- typer's help renderer (``typer.rich_utils``) importing ``rich.markdown`` and
  ``rich.traceback`` at its top (see ``defer_unused_rich_modules``).

The variables ``_TYPER_COMPLETE_ARGS`` and ``_TYPER_COMPLETE_FISH_ACTION`` in the shipped
completion scripts keep typer's names, but only attune's own scripts set them and attune's own
classes read them.

``tests/cli/test_typer_compat.py`` checks each of these against the installed typer: when a
typer release moves one, that test names it, and this module is the only one to change.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from typer import _completion_classes, _completion_shared
from typer._click import Command as ClickCommand
from typer._click import Context as ClickContext
from typer._click.exceptions import ClickException
from typer._click.shell_completion import CompletionItem, ShellComplete, add_completion_class
from typer._click.types import File as ClickFile
from typer._click.types import ParamType
from typer._types import TyperChoice
from typer.core import TyperGroup

__all__ = [
    "BashCompleteBase",
    "ClickCommand",
    "ClickContext",
    "ClickException",
    "ClickFile",
    "CompletionItem",
    "FishCompleteBase",
    "ParamType",
    "ShellCompletionGroup",
    "TyperChoice",
    "ZshCompleteBase",
    "autocompletion_function",
    "custom_completion",
    "defer_unused_rich_modules",
    "set_completion_scripts",
    "use_completion_classes",
]

BashCompleteBase = _completion_classes.BashComplete
ZshCompleteBase = _completion_classes.ZshComplete
FishCompleteBase = _completion_classes.FishComplete


class ShellCompletionGroup(TyperGroup):
    """A typer group whose subclasses answer shell completion in ``answer_completion``."""

    def _main_shell_completion(
        self, ctx_args: MutableMapping[str, Any], prog_name: str, complete_var: str | None = None
    ) -> None:
        self.answer_completion(ctx_args)

    def answer_completion(self, ctx_args: MutableMapping[str, Any]) -> None:
        """Called on every run before any argument is parsed; exits after answering a Tab.

        Args:
            ctx_args: extra context arguments, as click passes them.
        """
        raise NotImplementedError


def use_completion_classes(classes: Mapping[str, type[ShellComplete]]) -> None:
    """Answer completion requests with ``classes`` (shell name → class); other shells stay
    typer's."""
    _completion_classes.completion_init()
    for shell, cls in classes.items():
        add_completion_class(cls, shell)


def set_completion_scripts(scripts: Mapping[str, str]) -> None:
    """Make ``--show-completion`` / ``--install-completion`` use ``scripts`` (shell → script).

    typer %-formats each script with its program name and strips it: pass finished scripts,
    their ``%`` doubled.
    """
    _completion_shared._completion_scripts.update(scripts)


def custom_completion(param: Any) -> Callable[..., Any] | None:
    """The completion function click calls for ``param``, or None when it has none."""
    custom: Callable[..., Any] | None = param._custom_shell_complete
    return custom


def autocompletion_function(custom: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function given as ``autocompletion=``, out of the wrapper typer made of it.

    typer wraps it twice (``compat_autocompletion`` closes over a ``functools.wraps``
    wrapper); None when ``custom`` is not such a wrapper.
    """
    for cell in custom.__closure__ or ():
        wrapped: Callable[..., Any] | None = getattr(cell.cell_contents, "__wrapped__", None)
        if wrapped is not None:
            return wrapped
    return None


def defer_unused_rich_modules() -> None:
    """Keep two unused Rich modules out of ``--help`` and usage errors.

    typer's help renderer imports ``rich.markdown`` (markdown-it) and ``rich.traceback``
    (pygments) at its top, but uses them only for ``rich_markup_mode="markdown"`` and pretty
    tracebacks, both off here. Each gets a stand-in whose class loads the real module on first
    use, so behaviour is unchanged.

    Measured with ``python benchmarks/rich_stand_ins.py`` (20 interleaved runs of ``attune
    --help`` each, 2 cores, load average 11.6, 2026-11-30): median 332 ms wall / 136 ms CPU with
    the stand-ins, 388 ms / 173 ms without (``python -c pass``: 47 ms / 22 ms). typer has no
    setting that skips these imports (its renderer is one module, imported whole for any Rich
    help), so the stand-ins stay.
    """
    for module_name, class_name in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
        if module_name in sys.modules:
            continue
        stand_in = types.ModuleType(module_name)

        def load_real(_cls: type, *args: Any, _module: str = module_name, **kw: Any) -> Any:
            sys.modules.pop(_module, None)
            return getattr(importlib.import_module(_module), _cls.__name__)(*args, **kw)

        # A class, not a function: typer uses it in annotations (``Markdown | Text``).
        setattr(stand_in, class_name, type(class_name, (), {"__new__": load_real}))
        sys.modules[module_name] = stand_in
