"""Provider adapters over httpx, and how this process reaches each provider.

``resolve_endpoints`` decides, per registry provider, the base URL (the ecosystem's environment
variable > ``config.toml`` > built-in), the key, and whether the provider counts as configured;
``adapter_for`` picks the adapter for the provider's API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attune_cli.core.providers.anthropic import AnthropicAdapter
from attune_cli.core.providers.base import (
    CallCancelled,
    CallFailed,
    ChatRequest,
    Completion,
    Endpoint,
    Message,
    ProviderAdapter,
)
from attune_cli.core.providers.openai import OpenAIAdapter
from attune_cli.core.registry import Provider, Registry

__all__ = [
    "AnthropicAdapter",
    "CallCancelled",
    "CallFailed",
    "ChatRequest",
    "Completion",
    "Endpoint",
    "Message",
    "OpenAIAdapter",
    "ProviderAdapter",
    "adapter_for",
    "resolve_endpoints",
]

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "anthropic": AnthropicAdapter,
    "openai": OpenAIAdapter,
}


def adapter_for(endpoint: Endpoint) -> ProviderAdapter:
    """The adapter speaking ``endpoint``'s API."""
    return ADAPTERS[endpoint.provider.api](endpoint)


def resolve_endpoints(
    registry: Registry,
    config: Mapping[str, Any],
    environ: Mapping[str, str],
    key_for: Callable[[Provider], str | None],
) -> dict[str, Endpoint]:
    """How this process reaches each provider of the registry.

    Args:
        registry: providers and their built-in or configured base URLs.
        config: the parsed ``config.toml`` (to tell an explicit ``base_url`` from a built-in).
        environ: the environment (``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL`` …).
        key_for: the key of a provider, None when it has none (credentials layer).

    Returns:
        ``{provider name: Endpoint}``. A provider is *configured* when it has a key, or when its
        base URL was set explicitly (config or environment): a local server needs no key.
    """
    providers_config = config.get("providers", {})
    endpoints = {}
    for name, provider in registry.providers.items():
        env_url = environ.get(provider.base_url_env or "", "").strip()
        explicit = isinstance(providers_config, dict) and "base_url" in (
            providers_config.get(name) or {}
        )
        key = key_for(provider)
        endpoints[name] = Endpoint(
            provider=provider,
            base_url=(env_url or provider.base_url).rstrip("/"),
            api_key=key,
            configured=bool(key) or bool(env_url) or explicit,
        )
    return endpoints
