"""The model registry: providers, models, tiers, prices and context windows.

Built-in entries cover current Anthropic and OpenAI models for each tier (list prices, USD per
million tokens, as published by the providers in late 2025). ``config.toml`` overrides and
extends them::

    [models."claude-sonnet-4-5"]
    input_usd_per_mtok = 3.0          # any field may be overridden alone

    [models."llama3.1:8b"]            # a new model: provider and tier are required
    provider = "ollama"
    tier = "cheap"
    input_usd_per_mtok = 0.0
    output_usd_per_mtok = 0.0
    context_window = 131072

    [providers.ollama]                # a new provider speaking an existing API
    api = "openai"
    base_url = "http://localhost:11434/v1"
    key_env = "OLLAMA_API_KEY"        # optional
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attune_cli.core.config import get_number, table
from attune_cli.core.errors import ConfigError

TIERS: tuple[str, ...] = ("cheap", "capable", "premium")
APIS: tuple[str, ...] = ("anthropic", "openai")


@dataclass(frozen=True)
class Provider:
    """A provider endpoint and how to authenticate to it."""

    name: str
    api: str
    base_url: str
    key_env: str | None
    base_url_env: str | None = None


@dataclass(frozen=True)
class Model:
    """One model: who serves it, its tier, prices and context window."""

    id: str
    provider: str
    tier: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    context_window: int

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """Price of a call with these token counts, in USD."""
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1_000_000


BUILTIN_PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "anthropic",
        api="anthropic",
        base_url="https://api.anthropic.com",
        key_env="ANTHROPIC_API_KEY",
        base_url_env="ANTHROPIC_BASE_URL",
    ),
    Provider(
        "openai",
        api="openai",
        base_url="https://api.openai.com/v1",
        key_env="OPENAI_API_KEY",
        base_url_env="OPENAI_BASE_URL",
    ),
)

BUILTIN_MODELS: tuple[Model, ...] = (
    Model("claude-haiku-4-5", "anthropic", "cheap", 1.0, 5.0, 200_000),
    Model("claude-sonnet-4-5", "anthropic", "capable", 3.0, 15.0, 200_000),
    Model("claude-opus-4-5", "anthropic", "premium", 5.0, 25.0, 200_000),
    Model("gpt-5-mini", "openai", "cheap", 0.25, 2.0, 400_000),
    Model("gpt-5", "openai", "capable", 1.25, 10.0, 400_000),
    Model("gpt-5-pro", "openai", "premium", 15.0, 120.0, 400_000),
)


def normalise_tier(value: str) -> str:
    """Lower-case a tier name (the older tool wrote ``CHEAP``); unknown names pass through."""
    return value.strip().lower()


def next_tier(tier: str) -> str | None:
    """The tier above ``tier``, or None at the top."""
    index = TIERS.index(tier)
    return TIERS[index + 1] if index + 1 < len(TIERS) else None


def previous_tier(tier: str) -> str | None:
    """The tier below ``tier``, or None at the bottom."""
    index = TIERS.index(tier)
    return TIERS[index - 1] if index > 0 else None


@dataclass(frozen=True)
class Registry:
    """Providers and models, built-in merged with the user's config."""

    providers: dict[str, Provider]
    models: dict[str, Model]

    def model(self, model_id: str) -> Model | None:
        """The model with this id, or None when the registry does not know it."""
        return self.models.get(model_id)

    def by_tier(self, tier: str) -> list[Model]:
        """Models of ``tier``, in registry order (built-ins first, then the user's)."""
        return [m for m in self.models.values() if m.tier == tier]

    def provider_of(self, model_id: str) -> str | None:
        """The provider serving ``model_id``, guessed from its name when unregistered."""
        known = self.models.get(model_id)
        if known:
            return known.provider
        lowered = model_id.lower()
        if lowered.startswith("claude"):
            return "anthropic"
        if lowered.startswith(("gpt-", "o1", "o3", "o4")):
            return "openai"
        return None

    def cost_usd(self, model_id: str, input_tokens: int, output_tokens: int) -> float | None:
        """Price of a call, or None when the model's prices are unknown."""
        known = self.models.get(model_id)
        return known.cost_usd(input_tokens, output_tokens) if known else None


def load_registry(config: dict[str, Any], path: Path) -> Registry:
    """Build the registry from the built-ins and ``config``'s ``[models]`` and ``[providers]``.

    Args:
        config: the parsed ``config.toml``.
        path: its location, for error messages.

    Raises:
        ConfigError: an entry with an unknown tier or API, a negative price, or a new model
            without provider and tier.
    """
    providers = {p.name: p for p in BUILTIN_PROVIDERS}
    for name, entry in table(config, path, "providers").items():
        if name == CLAUDE_CODE:
            continue  # not an HTTP provider: settings of the subscription path (claude -p)
        if not isinstance(entry, dict):
            raise ConfigError(path, "must be a table", key=f"providers.{name}", value=entry)
        base = providers.get(name)
        api = entry.get("api", base.api if base else None)
        if api not in APIS:
            raise ConfigError(
                path, f"must be one of {', '.join(APIS)}", key=f"providers.{name}.api", value=api
            )
        base_url = entry.get("base_url", base.base_url if base else None)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                path, "must be an http(s) URL", key=f"providers.{name}.base_url", value=base_url
            )
        key_env = entry.get("key_env", base.key_env if base else None)
        if key_env is not None and not isinstance(key_env, str):
            raise ConfigError(
                path,
                "must be the name of an environment variable",
                key=f"providers.{name}.key_env",
                value=key_env,
            )
        providers[name] = Provider(
            name,
            api=api,
            base_url=base_url.rstrip("/"),
            key_env=key_env,
            base_url_env=base.base_url_env if base else None,
        )

    models = {m.id: m for m in BUILTIN_MODELS}
    for model_id, entry in table(config, path, "models").items():
        models[model_id] = _model_entry(model_id, entry, models.get(model_id), providers, path)
    return Registry(providers=providers, models=models)


CLAUDE_CODE = "claude-code"
"""``[providers.claude-code]``: Claude Code's CLI, the subscription path
(``attune_cli.core.providers.claude_code``), not a registry provider."""


def _model_entry(
    model_id: str,
    entry: object,
    base: Model | None,
    providers: dict[str, Provider],
    path: Path,
) -> Model:
    prefix = f'models."{model_id}"'
    if not isinstance(entry, dict):
        raise ConfigError(path, "must be a table", key=prefix, value=entry)
    provider = entry.get("provider", base.provider if base else None)
    tier = entry.get("tier", base.tier if base else None)
    if provider is None or tier is None:
        raise ConfigError(path, "a model not built in needs both `provider` and `tier`", key=prefix)
    tier = normalise_tier(str(tier))
    if tier not in TIERS:
        raise ConfigError(
            path, f"must be one of {', '.join(TIERS)}", key=f"{prefix}.tier", value=tier
        )
    if not isinstance(provider, str) or provider not in providers:
        raise ConfigError(
            path,
            "names no known provider (add a [providers.NAME] table)",
            key=f"{prefix}.provider",
            value=provider,
        )

    def number(key: str, default: float, integer: bool = False) -> float:
        return get_number(entry, key, default, path=path, prefix=prefix, minimum=0, integer=integer)

    return Model(
        model_id,
        provider=provider,
        tier=tier,
        input_usd_per_mtok=number("input_usd_per_mtok", base.input_usd_per_mtok if base else 0.0),
        output_usd_per_mtok=number(
            "output_usd_per_mtok", base.output_usd_per_mtok if base else 0.0
        ),
        context_window=int(number("context_window", base.context_window if base else 0, True)),
    )
