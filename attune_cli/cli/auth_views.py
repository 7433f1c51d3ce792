"""How auth things look in a terminal: the status panel, a recommendation, the wizard's tables.

Imported only by the commands that render (never by ``attune --help``). Only the Rich modules
these views need are imported: ``auth status`` is on the startup budget.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from attune_cli.core.auth import (
    AuthMode,
    AuthStatus,
    AuthStrategy,
    CostEstimate,
    ModeOption,
    Recommendation,
)


def status_view(status: AuthStatus) -> RenderableType:
    """The ``auth status`` panel: strategy, what each size gets, providers, files."""
    strategy = status.strategy
    settings = Table.grid(padding=(0, 2))
    settings.add_column(style="bold")
    settings.add_column()
    settings.add_row(
        "Subscription tier",
        f"{strategy.subscription_tier.value}  [dim]{strategy.subscription_tier.description}[/dim]",
    )
    settings.add_row(
        "Default mode",
        f"{strategy.default_mode.value}  [dim]{strategy.default_mode.description}[/dim]",
    )
    settings.add_row(
        "Set up",
        "yes" if strategy.setup_completed else "[yellow]no[/yellow]: run `attune auth setup`",
    )
    settings.add_row(
        "Thresholds",
        f"small < {strategy.small_module_threshold:,} lines, "
        f"medium < {strategy.medium_module_threshold:,} lines",
    )
    settings.add_row("Token estimate", f"{strategy.loc_to_tokens_multiplier:g} tokens per line")

    sizes = Table(title="What each module size gets", title_justify="left", expand=False)
    sizes.add_column("Size")
    sizes.add_column("Lines of code", justify="right")
    sizes.add_column("Goes to")
    for route in strategy.size_routes():
        sizes.add_row(route.size.value, route.lines, route.mode.value)

    providers = Table(title="Providers", title_justify="left", expand=False)
    providers.add_column("Provider")
    providers.add_column("Key")
    providers.add_column("From")
    providers.add_column("Base URL")
    keyless: list[str] = []
    for provider in status.providers:
        if provider.key_source == "env":
            source = f"${provider.key_env}"
            if provider.has_stored_key:
                source += " (wins over the stored key)"
        elif provider.key_source == "stored":
            source = "credentials.toml"
        else:
            source = "[dim]no key[/dim]"
            keyless.append(provider.name)
        providers.add_row(
            provider.name, provider.key_hint or "[dim]-[/dim]", source, provider.base_url or "-"
        )

    parts: list[RenderableType] = [settings, "", sizes, "", providers]
    if keyless:
        parts.append(
            f"[dim]Add a key with `attune auth login {keyless[0]}` "
            "or its environment variable.[/dim]"
        )
    files = Table.grid(padding=(0, 2))
    files.add_column(style="bold")
    files.add_column()
    files.add_row("Config", str(status.config_file))
    files.add_row("Credentials", str(status.credentials_file))

    return Panel(
        Group(*parts, "", files),
        title="attune auth",
        title_align="left",
        expand=False,
    )


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
    grid.add_row("Measured", measured)
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
    return Panel(grid, title=str(count.path), title_align="left", expand=False)


def cost_text(estimate: CostEstimate) -> str:
    """A one-line price of an estimate, naming the model it was priced on."""
    if estimate.api_cost_usd is None:
        return "unknown: the registry has no model to price with"
    api = f"${estimate.api_cost_usd:.4f} through the API on {estimate.model}"
    if estimate.mode is AuthMode.SUBSCRIPTION:
        return f"$0 on the subscription (spends quota); {api}"
    return api


def comparison_view(
    options: dict[AuthMode, ModeOption], module_lines: int, recommended: AuthMode
) -> RenderableType:
    """The wizard's subscription / api / auto comparison for a sample module size."""
    table = Table(
        title=f"Subscription, API or Auto: a {module_lines:,}-line module",
        title_justify="left",
        show_lines=True,
    )
    table.add_column("Mode", style="bold", no_wrap=True)
    table.add_column("Cost")
    table.add_column("Pros")
    table.add_column("Cons")
    for mode, option in options.items():
        name = option.name + ("\n[green](recommended)[/green]" if mode is recommended else "")
        table.add_row(
            name,
            option.cost,
            "\n".join(f"+ {pro}" for pro in option.pros),
            "\n".join(f"- {con}" for con in option.cons),
        )
    return table


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
        grid.add_row("API key", f"{provider}: {key_text}")
    if imported_from:
        grid.add_row("Imported from", str(imported_from))
    grid.add_row("Saved to", str(config_file))
    return Panel(grid, title="Summary", title_align="left", expand=False)
