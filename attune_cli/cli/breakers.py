"""`attune route breakers`: placeholder until its issue lands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Circuit-breaker state.", no_args_is_help=False)
