"""`attune auth status`, runnable without building the typer app.

``auth status`` is the command people (and scripts, and prompts in shells) run most; typer's
import and command-tree build cost ~50 ms of its start. The console script
(``attune_cli.cli.entry``) hands exactly ``auth status`` and ``auth status --json`` to
``run_without_typer`` before importing typer; every other command line, including ``--help``
and typos, goes through the typer app, whose ``cmd_auth_status`` calls the same ``show_status``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from attune_cli.cli.console import print_json, report_failure

if TYPE_CHECKING:
    from attune_cli.core.auth import AuthStatus
    from attune_cli.core.subscription import UsageWindow
    from attune_cli.core.workspace import Workspace

_FAST_ARGV = (("auth", "status"), ("auth", "status", "--json"))


def show_status(*, json_output: bool) -> None:
    """Gather the auth status and print it: a Rich panel, or one JSON document.

    Raises:
        ConfigError: ``config.toml`` or ``credentials.toml`` is invalid.
        PermissionsError: ``credentials.toml`` is readable by others.
    """
    import time

    from attune_cli.core.auth import AuthStrategy, auth_status
    from attune_cli.core.subscription import claude_code_status
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    strategy = AuthStrategy.from_config(workspace.config, workspace.paths.config_file)
    status = auth_status(strategy, workspace.registry, workspace.paths)
    claude = claude_code_status(workspace)
    window, window_problem = _usage_window(workspace)
    now = time.time()
    if json_output:
        document = status.to_json()
        document["claude_code"] = claude.to_json()
        document["usage_window"] = window.to_json(now) if window else None
        print_json(document)
    else:
        from attune_cli.cli.auth_views import status_view, subscription_view
        from attune_cli.cli.console import out

        out().print(status_view(status, out().width), crop=False)
        out().print(subscription_view(strategy, claude, window, now), crop=False)
    if window_problem:
        from attune_cli.cli.console import warn

        warn(f"usage window not shown: {window_problem}", markup=False)
    _warn_about_exposed_keys(workspace, status)


def _usage_window(workspace: Workspace) -> tuple[UsageWindow | None, str | None]:
    """The subscription's usage window, or why the store could not say."""
    from attune_cli.core.errors import AttuneError
    from attune_cli.core.subscription import usage_window

    try:
        return usage_window(workspace), None
    except AttuneError as exc:
        return None, exc.message
    except OSError as exc:
        return None, str(exc)
    except Exception as exc:
        import sqlite3  # only here: a fresh home never opens a store, nor imports SQLite

        if isinstance(exc, sqlite3.Error):
            return None, str(exc)
        raise


def _warn_about_exposed_keys(workspace: Workspace, status: AuthStatus) -> None:
    """Warnings on stderr: leftover temp files of a killed write, keys sent in clear."""
    from attune_cli.core.credentials import leftover_temp_files, sends_key_in_clear

    leftovers = leftover_temp_files(workspace.paths)
    warnings = []
    if leftovers:
        names = ", ".join(path.name for path in leftovers[:3])
        warnings.append(
            f"{len(leftovers)} leftover temp file(s) of an interrupted credentials write in "
            f"{workspace.paths.config_dir} ({names}) may hold keys; the next `attune auth "
            "login` or `attune auth logout` removes them"
        )
    for provider in status.providers:
        if provider.key_source and provider.base_url and sends_key_in_clear(provider.base_url):
            warnings.append(
                f"the {provider.name} key is sent over plain http:// to {provider.base_url}, "
                "which is not this machine: anyone on the way can read it (use https://)"
            )
    if warnings:
        from attune_cli.cli.console import warn

        for text in warnings:
            warn(text, markup=False)


def run_without_typer(argv: Sequence[str]) -> int | None:
    """Run ``auth status [--json]`` directly; None when ``argv`` is any other command line.

    Errors map to exit codes and messages exactly as ``attune_cli.cli.app.AttuneGroup`` maps
    them (a test holds the two paths to the same output).
    """
    if tuple(argv) not in _FAST_ARGV:
        return None
    from attune_cli.cli.console import install_config_warnings
    from attune_cli.core.errors import EXIT_OK

    install_config_warnings()
    try:
        show_status(json_output="--json" in argv)
    except (Exception, KeyboardInterrupt) as exc:
        code = report_failure(exc)
        if code is None:
            raise
        return code
    return EXIT_OK
