"""How auth things look in a terminal: the status panel, a recommendation, the wizard's tables.

Imported only by the commands that render (never by ``attune --help``). Only the Rich modules
these views need are imported: ``auth status`` is on the startup budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from attune_cli.core.money import format_usd
from attune_cli.core.plans import AuthMode

if TYPE_CHECKING:
    # Annotations only: importing these modules would cost ``auth status`` its budget.
    from attune_cli.core.auth import AuthStatus, AuthStrategy
    from attune_cli.core.estimate import CostEstimate, ModeOption, Recommendation
    from attune_cli.core.subscription import ClaudeCodeStatus, UsageWindow


# What the mode does, said where a person checks it (README "Auth modes" says the same).
MODE_EFFECT = (
    "every `attune ask` (and `attune serve`) call: subscription sends Anthropic models "
    "through Claude Code (`claude -p`, on your plan), api through keys (per token), auto by "
    "the prompt's size as `attune auth recommend` decides; `ask --mode` overrides it per call"
)


def status_view(status: AuthStatus, width: int = 100) -> RenderableType:
    """The ``auth status`` panel: strategy, what each size gets, providers, files.

    Built from ``Text`` rather than markup strings: this view is on the startup budget, and
    markup parsing (with its emoji table) costs a few milliseconds that buy nothing here.

    Args:
        status: what ``auth status`` found.
        width: the terminal's width, so that no base URL or key hint is cut.
    """
    strategy = status.strategy
    tier, mode = strategy.subscription_tier, strategy.default_mode
    settings = Table.grid(padding=(0, 2))
    settings.add_column(style="bold", no_wrap=True)
    settings.add_column(overflow="fold")
    settings.add_row(Text("Subscription tier"), _with_note(tier.value, tier.description))
    settings.add_row(Text("Default mode"), _with_note(mode.value, mode.description))
    settings.add_row(Text("Mode changes"), Text(MODE_EFFECT))
    if strategy.setup_completed:
        settings.add_row(Text("Set up"), Text("yes"))
    else:
        settings.add_row(
            Text("Set up"), Text("no: run `attune auth setup` (defaults shown)", "yellow")
        )
    for route in strategy.size_routes():
        settings.add_row(
            Text(f"{route.size.value.capitalize()} modules"),
            Text(f"{route.lines} lines → {route.mode.value}"),
        )
    settings.add_row(
        Text("Token estimate"), Text(f"{strategy.loc_to_tokens_multiplier:g} tokens per line")
    )
    settings.add_row(Text("Config"), _path_text(status.config_file))
    settings.add_row(Text("Credentials"), _path_text(status.credentials_file))

    from attune_cli.cli.render import Column, fit_table

    columns = [Column("Provider"), Column("Key"), Column("From", drop_order=1), Column("Base URL")]
    rows: list[list[Text]] = []
    keyless: list[tuple[str, str | None]] = []
    for provider in status.providers:
        if provider.key_source == "env":
            source = Text(f"${provider.key_env}")
            if provider.has_stored_key:
                source.append(" (wins over the stored key)", "dim")
        elif provider.key_source == "stored":
            source = Text("credentials.toml")
        else:
            source = Text("no key", "dim")
            keyless.append((provider.name, provider.key_env))
        rows.append(
            [
                Text(provider.name),
                Text(provider.key_hint or "-"),
                source,
                _path_text(provider.base_url or "-"),
            ]
        )
    # The panel's border and padding take four columns.
    fitted = fit_table(columns, rows, width=max(20, width - 4))
    providers: RenderableType = fitted.renderable
    if fitted.dropped:
        providers = Group(
            providers, Text(f"Left out to fit: {', '.join(fitted.dropped)} (--json has it).", "dim")
        )

    parts: list[RenderableType] = [settings, Text(""), providers]
    if keyless:
        name, key_env = keyless[0]
        env_hint = f" or set ${key_env}" if key_env else ""
        parts.append(Text(f"Add a key: `attune auth login {name}`{env_hint}.", "dim"))
    if fitted.records:
        # Too narrow for a panel around the table: no border to cut a base URL short.
        return Group(Text("attune auth", "bold"), *parts)
    return Panel(Group(*parts), title=Text("attune auth"), title_align="left", expand=False)


def _path_text(path: object) -> Text:
    """A path or URL from the environment as plain text, any control character escaped."""
    from attune_cli.core.safe_text import visible

    return Text(visible(str(path)))


def _with_note(value: str, note: str) -> Text:
    text = Text(value)
    text.append(f"  {note}", "dim")
    return text


def recommendation_view(result: Recommendation) -> RenderableType:
    """What ``auth recommend`` prints for a person."""
    count, estimate, strategy = result.count, result.estimate, result.strategy
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    measured = f"{count.lines:,} lines of code"
    if count.path.is_dir():
        measured += f" in {count.files:,} source files"
        if count.skipped:
            measured += f" ({count.skipped} unreadable or binary files skipped)"
    grid.add_row("Measured", Text(measured))
    grid.add_row("Size", result.size_category.value)
    grid.add_row(
        "Recommended mode",
        f"[bold]{result.recommended_mode.value}[/bold]  [dim]for a "
        f"{strategy.subscription_tier.value} subscriber "
        f"in {strategy.default_mode.value} mode[/dim]",
    )
    grid.add_row(
        "Estimated tokens",
        f"{estimate.input_tokens:,} in, about {estimate.output_tokens:,} out "
        f"({strategy.loc_to_tokens_multiplier:g} per line)",
    )
    grid.add_row("Cost", cost_text(estimate))
    if estimate.fits_in_context is not None:
        fits = "yes" if estimate.fits_in_context else "[red]no[/red]: split it into smaller modules"
        grid.add_row("Fits in context", f"{fits} ({estimate.context_window:,}-token window)")
    return Panel(grid, title=_path_text(count.path), title_align="left", expand=False)


def cost_text(estimate: CostEstimate) -> str:
    """A one-line price of an estimate, naming the model it was priced on."""
    if estimate.api_cost_usd is None:
        return "unknown: the registry has no model to price with"
    api = f"{format_usd(estimate.api_cost_usd)} through the API on {estimate.model}"
    if estimate.mode is AuthMode.SUBSCRIPTION:
        return f"$0 on the subscription (spends quota); {api}"
    return api


def comparison_view(
    options: dict[AuthMode, ModeOption],
    module_lines: int,
    recommended: AuthMode,
    width: int = 100,
) -> RenderableType:
    """The wizard's subscription / api / auto comparison for a sample module size.

    The one "(recommended)" sits under the mode the wizard's list recommends too.
    """
    from attune_cli.cli.render import Column, fit_table

    columns = [
        Column("Mode"),
        Column("Cost", wrap=True),
        Column("Pros", wrap=True),
        Column("Cons", wrap=True),
    ]
    rows = []
    for mode, option in options.items():
        name = Text(option.name, "bold")
        if mode is recommended:
            name.append("\n(recommended)", "green")
        rows.append(
            [
                name,
                Text(option.cost),
                Text("\n".join(f"+ {pro}" for pro in option.pros)),
                Text("\n".join(f"- {con}" for con in option.cons)),
            ]
        )
    return fit_table(
        columns,
        rows,
        width=width,
        title=f"Subscription, API or Auto: a {module_lines:,}-line module",
        lines=True,
    ).renderable


def summary_view(
    strategy: AuthStrategy,
    config_file: Path,
    provider: str | None,
    key_text: str | None,
    imported_from: Path | None,
) -> RenderableType:
    """The wizard's last screen before it asks to save."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Subscription tier", strategy.subscription_tier.value)
    grid.add_row("Default mode", strategy.default_mode.value)
    for route in strategy.size_routes():
        grid.add_row(f"  {route.size.value} ({route.lines})", f"→ {route.mode.value}")
    if provider:
        grid.add_row("API key", Text(f"{provider}: {key_text}"))
    if imported_from:
        grid.add_row("Imported from", _path_text(imported_from))
    grid.add_row("Saved to", _path_text(config_file))
    return Panel(grid, title="Summary", title_align="left", expand=False)


def subscription_view(
    strategy: AuthStrategy,
    claude: ClaudeCodeStatus,
    window: UsageWindow | None,
    now_s: float,
) -> RenderableType:
    """Claude Code (present, version), the API fallback, and the current usage window."""
    from datetime import datetime

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    if claude.executable is not None:
        found = Text(claude.version or "version unknown (`claude --version` failed)")
        found.append(f"  {_path_text(claude.executable)}", "dim")
        grid.add_row(Text("Claude Code"), found)
    else:
        grid.add_row(
            Text("Claude Code"),
            Text(
                "not found: subscription calls need it "
                "(npm install -g @anthropic-ai/claude-code, then run `claude` to log in)",
                "yellow" if strategy.default_mode is not AuthMode.API else "dim",
            ),
        )
    grid.add_row(
        Text("API fallback"),
        Text(
            "yes: a subscription call may go on to the API, billed per token"
            if strategy.api_fallback
            else "no: subscription calls never go to the API ([auth] api_fallback)"
        ),
    )
    if window is not None:
        hours = f"{window.window_s / 3600:g} h"
        grid.add_row(
            Text(f"Last {hours}"),
            Text(
                f"{window.subscription_calls:,} subscription calls, "
                f"{window.input_tokens:,} → {window.output_tokens:,} tokens, "
                f"{format_usd(window.api_equivalent_usd)} API-equivalent (covered by the plan); "
                f"{window.api_calls:,} pay-per-token calls, {format_usd(window.api_usd)}"
            ),
        )
        limit = window.last_limit
        if limit is not None:
            seen = datetime.fromtimestamp(limit.seen_at).astimezone().strftime("%Y-%m-%d %H:%M")
            resets = window.resets_at(now_s)
            if resets is not None:
                when = datetime.fromtimestamp(resets).astimezone().strftime("%Y-%m-%d %H:%M %Z")
                text = Text(f"reached {seen}; resets {when}", "yellow")
            elif limit.resets_at is not None:
                text = Text(f"reached {seen}; reset since", "dim")
            else:
                text = Text(f"reached {seen}; the message gave no reset time", "dim")
            grid.add_row(Text("Usage limit"), text)
    return Panel(grid, title=Text("subscription"), title_align="left", expand=False)
