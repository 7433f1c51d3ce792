"""The names a person chooses in ``auth setup``: subscription tiers and auth modes.

Kept apart from ``attune_cli.core.auth`` because the CLI's ``--tier`` and ``--mode`` flags need
them at import time, and every start of ``attune`` (even ``--help``) pays for what it imports.
``attune_cli.core.auth`` re-exports both.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriptionTier(StrEnum):
    """The Claude plan a person pays for, or ``api_only`` for none."""

    FREE = "free"
    PRO = "pro"
    MAX = "max"
    ENTERPRISE = "enterprise"
    API_ONLY = "api_only"

    @property
    def description(self) -> str:
        """A few words for menus and tables."""
        return _TIER_DESCRIPTIONS[self]


_TIER_DESCRIPTIONS = {
    SubscriptionTier.FREE: "Claude Free: limited usage",
    SubscriptionTier.PRO: "Claude Pro: a personal plan with a modest quota",
    SubscriptionTier.MAX: "Claude Max: a large quota",
    SubscriptionTier.ENTERPRISE: "Claude Team / Enterprise: an organisation's plan",
    SubscriptionTier.API_ONLY: "No subscription: API key only",
}


class AuthMode(StrEnum):
    """How a module is sent: on the subscription, through the paid API, or chosen by size."""

    SUBSCRIPTION = "subscription"
    API = "api"
    AUTO = "auto"

    @property
    def description(self) -> str:
        """A few words for menus and tables."""
        return _MODE_DESCRIPTIONS[self]


_MODE_DESCRIPTIONS = {
    AuthMode.SUBSCRIPTION: "Subscription: spend my plan's quota, no per-token charge",
    AuthMode.API: "API: pay per token with an API key",
    AuthMode.AUTO: "Auto: choose per module by its size",
}


def contradiction(tier: SubscriptionTier, mode: AuthMode) -> str | None:
    """Why ``tier`` and ``mode`` cannot go together, or None when they can."""
    if tier is SubscriptionTier.API_ONLY and mode is AuthMode.SUBSCRIPTION:
        return (
            "tier api_only has no subscription to spend, so mode subscription could send "
            "nothing: choose mode api (or auto, which then uses the API)"
        )
    return None


class ModuleSize(StrEnum):
    """Size category of a module, from the strategy's thresholds."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
