"""Estimates for a module: tokens, price through the API, fit in the context window.

Estimates carry no price of their own: they price the estimated tokens with the model registry
(``attune_cli.core.registry``), on ``[auth] estimate_model`` when set, otherwise on the first
``capable``-tier Anthropic model (a Claude subscription's API counterpart). An estimate prices one
pass over the module: the module as input (lines × ``loc_to_tokens_multiplier`` tokens), plus a
response of ``OUTPUT_TOKENS_PER_INPUT_TOKEN`` times that as output. A module goes through the
subscription at no monetary cost (its quota is spent instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core.auth import AUTH_TABLE, AuthStrategy
from attune_cli.core.errors import ConfigError
from attune_cli.core.money import format_usd
from attune_cli.core.plans import AuthMode, ModuleSize

if TYPE_CHECKING:
    from attune_cli.core.linecount import LineCount
    from attune_cli.core.registry import Model, Registry

# The wizard's comparison table prices a module of this size (the older tool's sample too).
SAMPLE_MODULE_LINES = 1000

# Where cost estimates are priced when ``estimate_model`` is not set: the subscription is a
# Claude plan, so its pay-per-token alternative is Anthropic's API at the everyday tier.
ESTIMATE_PROVIDER = "anthropic"
ESTIMATE_TIER = "capable"

# An estimate assumes the response is a quarter the size of the module it reads (a review, a
# docstring pass, a summary). Not a price: prices come from the registry.
OUTPUT_TOKENS_PER_INPUT_TOKEN = 0.25


@dataclass(frozen=True)
class CostEstimate:
    """The estimated tokens and price of one pass over a module.

    Attributes:
        mode: the mode priced (``auto`` is resolved to the mode it recommends).
        lines: lines of code of the module.
        input_tokens: the module's estimated size in tokens (lines × multiplier).
        output_tokens: the assumed response size (``OUTPUT_TOKENS_PER_INPUT_TOKEN``).
        model: the registry model whose prices and context window were used, or None when the
            registry has no model to price with.
        api_cost_usd: what the pass costs through the API on ``model``.
        monetary_cost_usd: what it costs in this mode: 0 on a subscription (quota is spent
            instead), ``api_cost_usd`` on the API.
        context_window: ``model``'s context window in tokens.
        fits_in_context: whether the module fits in that window as input.
    """

    mode: AuthMode
    lines: int
    input_tokens: int
    output_tokens: int
    model: str | None
    api_cost_usd: float | None
    monetary_cost_usd: float | None
    context_window: int | None
    fits_in_context: bool | None


@dataclass(frozen=True)
class ModeOption:
    """One row of the subscription / api / auto comparison shown before choosing a mode."""

    mode: AuthMode
    name: str
    cost: str
    pros: tuple[str, ...]
    cons: tuple[str, ...]
    estimate: CostEstimate


@dataclass(frozen=True)
class Recommendation:
    """What ``auth recommend`` says about a file or folder."""

    count: LineCount
    size_category: ModuleSize
    recommended_mode: AuthMode
    estimate: CostEstimate
    strategy: AuthStrategy

    def to_json(self) -> dict[str, Any]:
        """The document of ``auth recommend --json`` (keys as in DESIGN.md)."""
        estimate = self.estimate
        return {
            "file": str(self.count.path),
            "lines": self.count.lines,
            "files": self.count.files,
            "skipped_files": self.count.skipped,
            "size_category": self.size_category.value,
            "recommended_mode": self.recommended_mode.value,
            "subscription_tier": self.strategy.subscription_tier.value,
            "default_mode": self.strategy.default_mode.value,
            "estimated_tokens": estimate.input_tokens,
            "estimated_output_tokens": estimate.output_tokens,
            "monetary_cost_usd": _round_usd(estimate.monetary_cost_usd),
            "api_cost_usd": _round_usd(estimate.api_cost_usd),
            "priced_model": estimate.model,
            "context_window": estimate.context_window,
            "fits_in_context": estimate.fits_in_context,
        }


def estimate_cost(
    strategy: AuthStrategy,
    module_lines: int,
    mode: AuthMode | None = None,
    *,
    registry: Registry,
) -> CostEstimate:
    """Estimate one pass over a module in ``mode``, priced from the model registry.

    Args:
        strategy: gives the token multiplier and, for ``auto``, the mode.
        module_lines: lines of code of the module.
        mode: the mode to price; the recommended one when None or ``auto``.
        registry: the model registry, with the user's ``[models]`` (``Workspace.registry``).

    Returns:
        The estimate. Its ``model`` says which registry model it was priced on.

    Raises:
        ConfigError: ``estimate_model`` names a model the registry does not know.
    """
    if mode is None or mode is AuthMode.AUTO:
        mode = strategy.get_recommended_mode(module_lines)
    model = priced_model(strategy, registry=registry)
    input_tokens = strategy.estimate_tokens(module_lines)
    output_tokens = math.ceil(input_tokens * OUTPUT_TOKENS_PER_INPUT_TOKEN)
    if model is None:
        return CostEstimate(
            mode, module_lines, input_tokens, output_tokens, None, None, None, None, None
        )
    api_cost_usd = model.cost_usd(input_tokens, output_tokens)
    return CostEstimate(
        mode=mode,
        lines=module_lines,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=model.id,
        api_cost_usd=api_cost_usd,
        monetary_cost_usd=0.0 if mode is AuthMode.SUBSCRIPTION else api_cost_usd,
        context_window=model.context_window,
        fits_in_context=input_tokens <= model.context_window,
    )


def priced_model(strategy: AuthStrategy, *, registry: Registry) -> Model | None:
    """The registry model estimates are priced on (see the module docstring).

    Raises:
        ConfigError: ``estimate_model`` names a model the registry does not know.
    """
    source = strategy.source or Path("config.toml")
    if strategy.estimate_model is not None:
        model = registry.model(strategy.estimate_model)
        if model is None:
            raise ConfigError(
                source,
                "names no model in the registry (see [models] in config.toml)",
                key=f"{AUTH_TABLE}.estimate_model",
                value=strategy.estimate_model,
            )
        return model
    capable = registry.by_tier(ESTIMATE_TIER)
    preferred = [model for model in capable if model.provider == ESTIMATE_PROVIDER]
    candidates = preferred or capable
    return candidates[0] if candidates else None


def compare_modes(
    strategy: AuthStrategy,
    module_lines: int = SAMPLE_MODULE_LINES,
    *,
    registry: Registry,
) -> dict[AuthMode, ModeOption]:
    """The subscription / api / auto comparison for a module of ``module_lines`` lines.

    Returns:
        One ``ModeOption`` per mode, in menu order.
    """
    subscription = estimate_cost(strategy, module_lines, AuthMode.SUBSCRIPTION, registry=registry)
    api = estimate_cost(strategy, module_lines, AuthMode.API, registry=registry)
    auto = estimate_cost(strategy, module_lines, AuthMode.AUTO, registry=registry)
    tier = strategy.subscription_tier
    lines = f"{module_lines:,}-line module"
    on_model = f" on {api.model}" if api.model else ""
    api_cost = _usd(api.api_cost_usd)
    if subscription.context_window:
        fits = int(subscription.context_window / strategy.loc_to_tokens_multiplier)
        context_con = f"A module must fit one context window (about {fits:,} lines)"
    else:
        context_con = "A module must fit one context window"
    small, medium = strategy.small_module_threshold, strategy.medium_module_threshold
    routed = {size: _auto_mode(strategy, size) for size in ModuleSize}
    return {
        AuthMode.SUBSCRIPTION: ModeOption(
            AuthMode.SUBSCRIPTION,
            "Subscription",
            f"$0 per {lines}: spends about {subscription.input_tokens:,} tokens of quota",
            (
                ()
                if tier is tier.API_ONLY
                else (
                    "No per-token charge",
                    f"Uses the {tier.value} plan you already pay for",
                    "Nothing more to set up",
                )
            ),
            (
                ("You have no subscription (api_only): this mode cannot send anything",)
                if tier is tier.API_ONLY
                else ("Spends your plan's usage quota; its rate limits apply", context_con)
            ),
            subscription,
        ),
        AuthMode.API: ModeOption(
            AuthMode.API,
            "API",
            f"{api_cost} per {lines}{on_model}",
            (
                "No quota spent",
                "Billed per call, so cost is tracked per workflow",
                "API rate limits, usually higher than a plan's",
            ),
            ("Needs an API key", f"Pay per token: {api_cost} for this module"),
            api,
        ),
        AuthMode.AUTO: ModeOption(
            AuthMode.AUTO,
            "Auto",
            f"{_usd(auto.monetary_cost_usd)} per {lines} (goes to {auto.mode.value})",
            (
                f"Small modules (< {small:,} lines) → {routed[ModuleSize.SMALL]}",
                f"Medium ({small:,}–{medium - 1:,}) → {routed[ModuleSize.MEDIUM]}",
                f"Large (≥ {medium:,}) → {routed[ModuleSize.LARGE]}",
            ),
            ("Needs both a subscription and an API key",)
            + (("Medium modules pay per token",) if not strategy.prefer_subscription else ()),
            auto,
        ),
    }


def recommend(path: Path, strategy: AuthStrategy, registry: Registry) -> Recommendation:
    """Measure a file or folder and say which mode it should use and what it would cost.

    Raises:
        InputFileError: the path is missing, unreadable, binary, or a folder without source.
        ConfigError: ``auth.estimate_model`` names a model the registry does not know.
    """
    from attune_cli.core.linecount import count_lines_of_code

    count = count_lines_of_code(path)
    mode = strategy.get_recommended_mode(count.lines)
    return Recommendation(
        count=count,
        size_category=strategy.size_category(count.lines),
        recommended_mode=mode,
        estimate=estimate_cost(strategy, count.lines, mode, registry=registry),
        strategy=strategy,
    )


def _auto_mode(strategy: AuthStrategy, size: ModuleSize) -> str:
    """What ``auto`` would pick for ``size``, whatever the strategy's own mode."""
    auto = replace(strategy, default_mode=AuthMode.AUTO)
    sample = {
        ModuleSize.SMALL: 0,
        ModuleSize.MEDIUM: strategy.small_module_threshold,
        ModuleSize.LARGE: strategy.medium_module_threshold,
    }[size]
    return auto.get_recommended_mode(sample).value


def _round_usd(amount: float | None) -> float | None:
    # Sub-cent estimates matter (thousands of modules), so keep six decimals, not two.
    return None if amount is None else round(amount, 6)


def _usd(amount: float | None) -> str:
    return "unknown cost" if amount is None else format_usd(amount)
