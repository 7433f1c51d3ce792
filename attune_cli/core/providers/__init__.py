"""Provider adapters over httpx, and how this process reaches each provider.

``resolve_endpoints`` decides, per registry provider, the base URL (the ecosystem's environment
variable > ``config.toml`` > built-in), the key, and whether the provider counts as configured;
``adapter_for`` picks the adapter for the provider's API.
"""

from __future__ import annotations

from attune_cli.core.endpoints import Endpoint, resolve_endpoints
from attune_cli.core.providers.anthropic import AnthropicAdapter
from attune_cli.core.providers.base import (
    CallCancelled,
    CallFailed,
    ChatRequest,
    Completion,
    Message,
    ProviderAdapter,
)
from attune_cli.core.providers.openai import OpenAIAdapter

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
