"""How this process reaches each provider: base URL, key, and whether it counts as configured.

Apart from the adapters (``attune_cli.core.providers``) so that routing, which only asks which
providers are configured, does not import httpx.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from attune_cli.core.registry import Provider, Registry


@dataclass(frozen=True)
class Endpoint:
    """A provider as this process reaches it.

    Attributes:
        provider: the registry entry.
        base_url: the resolved base URL (environment variable > config > built-in), no trailing
            slash. For the Anthropic API it excludes ``/v1``; for OpenAI-compatible APIs it
            includes it, as the official SDKs read them.
        api_key: the key to send, None for servers that need none (a local Ollama).
        configured: whether the user set this provider up (a key, or an explicit base URL);
            fallback only goes to configured providers.
    """

    provider: Provider
    base_url: str
    api_key: str | None
    configured: bool

    @property
    def name(self) -> str:
        return self.provider.name


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
