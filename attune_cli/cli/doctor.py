"""`attune doctor`: is this machine ready? Config, folders, store, breakers, then every provider."""

from __future__ import annotations

import typer

from attune_cli.cli.options import JsonOpt


def register(app: typer.Typer) -> None:
    """Add the top-level ``doctor`` command to ``app``."""
    app.command("doctor")(doctor)


def doctor(
    json_output: JsonOpt = False,
) -> None:
    """Check that attune can work here: config, folders, store, breakers and each provider.

    Every configured provider gets one real, minimal request, as `attune auth test` sends.
    Exit 1 when something fails (a warning alone does not).

    Examples:

        attune doctor

        attune doctor --json
    """
    from attune_cli.cli.console import print_json
    from attune_cli.core.doctor import run_doctor
    from attune_cli.core.errors import OperationError

    report = run_doctor()
    if json_output:
        print_json(report.as_dict())
    else:
        from rich.text import Text

        from attune_cli.cli.checks_view import line, provider_checks_view
        from attune_cli.cli.console import out

        console = out()
        console.print(Text("attune", "bold"))
        for finding in report.findings:
            console.print(line(finding.verdict, finding.name, finding.detail), highlight=False)
        if report.providers:
            console.print(provider_checks_view(report.providers), highlight=False)
    if not report.ok:
        raise OperationError("doctor found a problem (marked ✗ above)")
