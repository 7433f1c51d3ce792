"""`attune auth`: the auth strategy (subscription or API) and provider keys.

Each command parses its flags, calls one core function and renders the result. Everything heavy
(questionary, tomlkit, Rich tables) is imported inside the command that needs it: ``auth
status`` is started often and must stay fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from attune_cli.cli.complete import complete_providers
from attune_cli.cli.console import confirm, message, print_json, stdin_is_terminal
from attune_cli.cli.options import JsonOpt
from attune_cli.core.errors import UsageError
from attune_cli.core.plans import AuthMode, SubscriptionTier

if TYPE_CHECKING:
    from attune_cli.core.auth import AuthStrategy

app = typer.Typer(
    help=(
        "Choose between your Claude subscription and the API, and manage provider keys.\n\n"
        "Start with `attune auth setup`; see where you stand with `attune auth status`."
    ),
    no_args_is_help=True,
)


@app.command("setup")
def cmd_auth_setup(
    tier: Annotated[
        SubscriptionTier | None,
        typer.Option(
            "--tier", case_sensitive=False, help="Your Claude subscription (asked if missing)."
        ),
    ] = None,
    mode: Annotated[
        AuthMode | None,
        typer.Option(
            "--mode",
            case_sensitive=False,
            help="subscription, api, or auto to choose by module size (asked if missing).",
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="NAME",
            autocompletion=complete_providers,
            help="Also store an API key for this provider (hidden prompt, or --with-key-stdin).",
        ),
    ] = None,
    with_key_stdin: Annotated[
        bool,
        typer.Option("--with-key-stdin", help="Read the --provider key from stdin (never a flag)."),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Save without asking for confirmation or an optional key."
        ),
    ] = False,
) -> None:
    """Set up how attune authenticates: a guided wizard, or flags for scripts.

    In a terminal, asks what the flags do not answer. Without one, every answer must be a flag.

    Examples:

        attune auth setup

        attune auth setup --tier max --mode auto --yes

        printf '%s' "$KEY" | attune auth setup --tier pro --mode api \\
            --provider anthropic --with-key-stdin --yes
    """
    from attune_cli.cli import wizard
    from attune_cli.cli.console import err, warn
    from attune_cli.core.auth import AuthStrategy, load_legacy, save_setup
    from attune_cli.core.errors import ConfigError
    from attune_cli.core.workspace import Workspace

    if with_key_stdin and provider is None:
        raise typer.BadParameter("needs --provider NAME", param_hint="'--with-key-stdin'")
    workspace = Workspace.load()
    registry = workspace.registry
    if provider is not None and provider not in registry.providers:
        raise typer.BadParameter(
            f"unknown provider {provider!r}; known: {', '.join(registry.providers)}",
            param_hint="'--provider'",
        )
    paths = workspace.paths
    current = AuthStrategy.from_config(workspace.config, paths.config_file)
    interactive = stdin_is_terminal() and not with_key_stdin
    legacy = None
    if interactive:
        try:
            legacy = load_legacy(paths)
        except ConfigError as exc:
            warn(f"not offering to import the older tool's settings: {exc.message}", markup=False)

    result = wizard.run_setup(
        wizard.SetupAnswers(tier, mode, provider, with_key_stdin, yes),
        prompter=wizard.make_prompter() if interactive else None,
        console=err(),
        registry=registry,
        current=current,
        config_file=paths.config_file,
        legacy=legacy,
        environ=os.environ,
        read_key=sys.stdin.read,
    )
    if result is None:
        message("Nothing was saved.")
        raise typer.Exit(1)
    save_setup(paths, result.strategy, result.provider, result.key)
    strategy = result.strategy
    from rich.markup import escape

    message(
        f"Saved: tier [bold]{strategy.subscription_tier.value}[/bold], "
        f"mode [bold]{strategy.default_mode.value}[/bold] in {escape(str(paths.config_file))}"
    )
    if result.key:
        message(
            f"Stored the {result.provider} key in {paths.credentials_file} (mode 600).",
            markup=False,
        )
    _note_missing_claude(strategy)


def _note_missing_claude(strategy: AuthStrategy) -> None:
    """Say at once when the chosen mode will want Claude Code and it is not installed."""
    import shutil

    wants_plan = any(route.mode is AuthMode.SUBSCRIPTION for route in strategy.size_routes())
    if wants_plan and shutil.which("claude") is None:
        message(
            "Subscription calls go through Claude Code, and `claude` is not on PATH: install "
            "it (npm install -g @anthropic-ai/claude-code) and run `claude` once to log in, "
            "or set [providers.claude-code] command.",
            markup=False,
        )


@app.command("status")
def cmd_auth_status(
    json_output: JsonOpt = False,
) -> None:
    """Show the auth strategy, what each module size gets, and where each key comes from.

    Keys are shown only as a hint (sk-…abcd).

    Examples:

        attune auth status

        attune auth status --json | jq .providers
    """
    from attune_cli.cli.auth_status import show_status

    show_status(json_output=json_output)


@app.command("reset")
def cmd_auth_reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Reset without asking.")] = False,
) -> None:
    """Forget the auth strategy: remove the settings of the auth table in config.toml.

    Your comments, every other table, and the stored keys stay (see `attune auth logout`).

    Example:

        attune auth reset --yes
    """
    from attune_cli.core.auth import AUTH_TABLE, reset_strategy
    from attune_cli.core.config import read_toml
    from attune_cli.core.paths import resolve_paths

    config_file = resolve_paths().config_file
    if not read_toml(config_file).get(AUTH_TABLE):
        message(f"Nothing to reset: {config_file} holds no auth strategy.", markup=False)
        return
    if not yes:
        if not stdin_is_terminal():
            raise UsageError(
                "auth reset changes config.toml: without a terminal to confirm in, pass --yes"
            )
        if not confirm(f"Remove the auth strategy from {config_file}? Stored keys are kept."):
            message("Nothing changed.")
            raise typer.Exit(1)
    reset_strategy(config_file)
    message(
        f"Reset: removed the auth settings from {config_file}. Run `attune auth setup` again.",
        markup=False,
    )


@app.command("recommend")
def cmd_auth_recommend(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="A source file, or a folder whose source files are summed.",
            show_default=False,
        ),
    ],
    json_output: JsonOpt = False,
) -> None:
    """Say whether a module should go to the subscription or the API, and what it would cost.

    Counts non-blank, non-comment lines; prices the estimate from the model registry.

    Examples:

        attune auth recommend src/app/models.py

        attune auth recommend src/ --json
    """
    from attune_cli.core.auth import AuthStrategy
    from attune_cli.core.estimate import recommend
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    strategy = AuthStrategy.from_config(workspace.config, workspace.paths.config_file)
    result = recommend(path, strategy, workspace.registry)
    if json_output:
        print_json(result.to_json())
        return
    from attune_cli.cli.auth_views import recommendation_view
    from attune_cli.cli.console import out

    out().print(recommendation_view(result))
    if not strategy.setup_completed:
        message("[dim]Using the default strategy: run `attune auth setup` to set yours.[/dim]")


@app.command("login")
def cmd_auth_login(
    provider: Annotated[
        str,
        typer.Argument(
            metavar="PROVIDER",
            autocompletion=complete_providers,
            help="The provider, e.g. anthropic or openai.",
            show_default=False,
        ),
    ],
    with_key_stdin: Annotated[
        bool,
        typer.Option("--with-key-stdin", help="Read the key from stdin, not a hidden prompt."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a stored key without asking (needed without a terminal)."
        ),
    ] = False,
) -> None:
    """Store an API key for a provider in credentials.toml (mode 600).

    The key is never a flag: it comes from a hidden prompt or from stdin. A key in the
    provider's environment variable (ANTHROPIC_API_KEY, …) wins over a stored one.

    Examples:

        attune auth login anthropic

        printf "%s" "$KEY" | attune auth login openai --with-key-stdin --force
    """
    from attune_cli.core.credentials import key_hint, store_key, stored_providers
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    known = workspace.registry.providers.get(provider)
    if provider == "claude-code":
        raise UsageError(
            "claude-code takes no key: the subscription is spent through Claude Code's own login",
            hint="run `claude` and log in (/login); `attune auth test claude-code` checks it",
        )
    if known is None:
        raise typer.BadParameter(
            f"unknown provider {provider!r}; known: {', '.join(workspace.registry.providers)}",
            param_hint="'PROVIDER'",
        )
    if not with_key_stdin and not stdin_is_terminal():
        raise UsageError(
            "no terminal for a hidden prompt: pipe the key in with --with-key-stdin",
            hint=f"printf '%s' \"$KEY\" | attune auth login {provider} --with-key-stdin",
        )
    if not force and provider in stored_providers(workspace.paths):
        # A second login must not silently throw away a working key.
        if with_key_stdin or not stdin_is_terminal():
            raise UsageError(
                f"a {provider} key is already stored in {workspace.paths.credentials_file}: "
                "pass --force to replace it",
                hint=f"attune auth logout {provider} removes it",
            )
        if not confirm(f"A {provider} key is already stored. Replace it?"):
            message("Nothing changed: the stored key is kept.", markup=False)
            raise typer.Exit(1)
    env_wins = bool(known.key_env and os.environ.get(known.key_env, "").strip())
    if env_wins:
        message(
            f"Note: ${known.key_env} is set in your environment; it wins over a stored key "
            "while it is set."
        )
    if with_key_stdin:
        key = sys.stdin.read()
    else:
        import getpass

        # getpass, not click's prompt: Ctrl-C must reach app.py as KeyboardInterrupt (exit 130).
        key = getpass.getpass(f"API key for {provider} (input hidden): ")
    store_key(workspace.paths, provider, key)
    message(
        f"Stored the {provider} key {key_hint(key)} in {workspace.paths.credentials_file} "
        "(mode 600).",
        markup=False,
    )
    base_url = os.environ.get(known.base_url_env or "", "").strip() or known.base_url
    warn_if_sent_in_clear(provider, base_url)


@app.command("test")
def cmd_auth_test(
    provider: Annotated[
        str | None,
        typer.Argument(
            metavar="[PROVIDER]",
            autocompletion=complete_providers,
            help="The provider to check; every configured one when omitted.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Check each configured provider with one real, minimal request (no tokens spent).

    Asks the provider for its model list and reports whether it is reachable, whether the key
    is accepted and which of the registry's models it lists. Exit 1 when a check fails.

    Examples:

        attune auth test

        attune auth test anthropic --json
    """
    from attune_cli.core.auth_check import check_providers
    from attune_cli.core.errors import OperationError
    from attune_cli.core.workspace import Workspace

    checks = check_providers(Workspace.load(), [provider] if provider else None)
    if json_output:
        print_json([check.as_dict() for check in checks])
    else:
        from attune_cli.cli.checks_view import provider_checks_view
        from attune_cli.cli.console import out

        out().print(provider_checks_view(checks), highlight=False)
    failed = [check.provider for check in checks if not check.ok]
    if failed:
        raise OperationError(f"auth test failed for {', '.join(failed)}")
    if all(check.reachable.value == "skipped" for check in checks):
        message("No provider is configured: `attune auth login PROVIDER` stores a key.")


@app.command("logout")
def cmd_auth_logout(
    provider: Annotated[
        str,
        typer.Argument(
            metavar="PROVIDER",
            autocompletion=complete_providers,
            help="The provider whose stored key to remove.",
            show_default=False,
        ),
    ],
) -> None:
    """Remove a provider's stored API key.

    A key in the provider's environment variable is not touched: unset it in your shell.

    Example:

        attune auth logout openai
    """
    from attune_cli.core.credentials import (
        remove_key,
        remove_leftover_temp_files,
        stored_providers,
    )
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    known = workspace.registry.providers.get(provider)
    if known is None and provider not in stored_providers(workspace.paths):
        raise typer.BadParameter(
            f"unknown provider {provider!r}; known: {', '.join(workspace.registry.providers)}",
            param_hint="'PROVIDER'",
        )
    removed = remove_key(workspace.paths, provider)
    # A login killed mid-write leaves a temp file holding the key: logout is when it must go.
    leftovers = remove_leftover_temp_files(workspace.paths)
    if removed:
        message(
            f"Removed the stored {provider} key from {workspace.paths.credentials_file}.",
            markup=False,
        )
    elif not leftovers:
        message(f"No stored {provider} key; nothing removed.", markup=False)
    if leftovers:
        plural = "file" if leftovers == 1 else "files"
        message(
            f"Removed {leftovers} leftover temp {plural} of an interrupted credentials write "
            f"from {workspace.paths.config_dir} (they may have held keys).",
            markup=False,
        )
    if known is not None and known.key_env and os.environ.get(known.key_env, "").strip():
        message(
            f"${known.key_env} is still set in your environment and will be used.", markup=False
        )


def warn_if_sent_in_clear(provider: str, base_url: str) -> None:
    """One warning line when ``provider``'s key would travel over plain http to another host."""
    from attune_cli.cli.console import warn
    from attune_cli.core.credentials import sends_key_in_clear

    if sends_key_in_clear(base_url):
        warn(
            f"the {provider} key is sent over plain http:// to {base_url}, which is not this "
            "machine: anyone on the way can read it (use https://)",
            markup=False,
        )
