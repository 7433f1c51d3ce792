"""The options several commands share, declared once.

``--workflow``/``-w``, ``--stage``/``-s``, ``--model``/``-m``, ``--tier`` and ``--json`` have the
same names, short forms, value names and completion in every command; each command says in its
help what the option means there (a filter, or what a call is recorded under).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from attune_cli.cli.complete import complete_models, complete_stages, complete_workflows

JSON_HELP = "Print one JSON document on stdout."


class TierChoice(StrEnum):
    """The registry tiers ``--tier`` accepts (and completes)."""

    cheap = "cheap"
    capable = "capable"
    premium = "premium"


def workflow_option(help: str, *, show_default: bool = True) -> Any:
    """``--workflow`` / ``-w W``, completed from recorded workflows."""
    return typer.Option(
        "--workflow",
        "-w",
        metavar="W",
        help=help,
        autocompletion=complete_workflows,
        show_default=show_default,
    )


def stage_option(help: str, *, show_default: bool = True) -> Any:
    """``--stage`` / ``-s S``, completed from recorded and configured stages."""
    return typer.Option(
        "--stage",
        "-s",
        metavar="S",
        help=help,
        autocompletion=complete_stages,
        show_default=show_default,
    )


def model_option(help: str, *, show_default: bool = True) -> Any:
    """``--model`` / ``-m M``, completed from the registry and recorded models."""
    return typer.Option(
        "--model",
        "-m",
        metavar="M",
        help=help,
        autocompletion=complete_models,
        show_default=show_default,
    )


def tier_option(help: str) -> Any:
    """``--tier`` with one of ``TierChoice``, in any case."""
    return typer.Option("--tier", help=help, case_sensitive=False, show_default=False)


def json_option(help: str = JSON_HELP) -> Any:
    """``--json``: the command's result as one JSON document on stdout."""
    return typer.Option("--json", help=help)


JsonOpt = Annotated[bool, json_option()]
