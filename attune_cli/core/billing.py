"""Which way a call is paid: on the subscription (through Claude Code) or per token (API keys).

The auth mode decides, per call::

    subscription   Anthropic models go through ``claude -p``; nothing goes to a pay-per-token
                   API unless ``[auth] api_fallback = true`` (then after the subscription
                   could not answer, e.g. its usage limit was reached)
    api            provider keys only
    auto           by the size of what is sent, with ``auth recommend``'s thresholds
                   (``AuthStrategy.get_recommended_mode`` over ``count_text_lines``): small
                   and medium to the subscription, large to the API; to the API after a
                   reached usage limit when ``api_fallback`` allows

``subscription`` without a ``claude`` executable is an error (what to install), never a quiet
switch to the API; ``auto`` then says it uses the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from attune_cli.core.errors import OperationError
from attune_cli.core.plans import AuthMode

if TYPE_CHECKING:
    from attune_cli.core.auth import AuthStrategy


_API_ONLY_TIERS = ("pro", "api_only")
"""Tiers whose ``auto`` mode sends every size to the API."""


class Billing(StrEnum):
    """How one call is paid (``billing`` in ``ask --json`` and in telemetry rows)."""

    SUBSCRIPTION = "subscription"
    API = "api"


@dataclass(frozen=True)
class BillingChoice:
    """The billing path of one call, and why.

    Attributes:
        billing: the path the call starts on.
        mode: the mode that decided it (``--mode``, else ``[auth] default_mode``).
        api_fallback: whether the call may go on to the pay-per-token API when the
            subscription cannot answer.
        lines: the size of what is sent in lines of code (as ``auth recommend`` counts).
        reason: one line for the person.
        tier: the subscription tier of ``[auth]``.
    """

    billing: Billing
    mode: AuthMode
    api_fallback: bool
    lines: int
    reason: str
    tier: str

    @property
    def worth_saying(self) -> bool:
        """Whether the person learns something from ``reason``: not for a setup that only
        ever uses the API (mode api, or auto on a tier that sends every size to it)."""
        return self.billing is Billing.SUBSCRIPTION or not (
            self.mode is AuthMode.API or self.every_size_to_api
        )

    @property
    def every_size_to_api(self) -> bool:
        """Mode auto on a tier with no subscription worth using (``pro``, ``api_only``)."""
        return self.mode is AuthMode.AUTO and self.tier in _API_ONLY_TIERS


def choose_billing(
    strategy: AuthStrategy,
    text: str,
    *,
    mode: AuthMode | None = None,
    subscription_available: bool,
) -> BillingChoice:
    """Decide how a call sending ``text`` is paid.

    Args:
        strategy: the ``[auth]`` settings (thresholds, tier, ``api_fallback``).
        text: everything sent (system prompt and conversation included).
        mode: ``ask --mode``; ``strategy.default_mode`` when None.
        subscription_available: whether a ``claude`` executable was found.

    Returns:
        The choice.

    Raises:
        OperationError: the subscription is asked for, ``claude`` is missing and the API
            may not stand in for it (exit 1, saying what to install).
    """
    from dataclasses import replace

    from attune_cli.core.claude_cli import INSTALL_HINT
    from attune_cli.core.linecount import count_text_lines

    chosen_mode = mode or strategy.default_mode
    lines = count_text_lines(text)
    decided = replace(strategy, default_mode=chosen_mode).get_recommended_mode(lines)
    fallback = strategy.api_fallback
    tier = strategy.subscription_tier.value
    if decided is AuthMode.API:
        why = "mode api" if chosen_mode is AuthMode.API else _auto_reason(strategy, lines)
        return BillingChoice(Billing.API, chosen_mode, fallback, lines, f"API ({why})", tier)
    if subscription_available:
        why = "mode subscription" if chosen_mode is AuthMode.SUBSCRIPTION else ""
        why = why or _auto_reason(strategy, lines)
        return BillingChoice(
            Billing.SUBSCRIPTION, chosen_mode, fallback, lines, f"subscription ({why})", tier
        )
    if chosen_mode is AuthMode.AUTO:
        return BillingChoice(
            Billing.API,
            chosen_mode,
            fallback,
            lines,
            "API (auto would use the subscription, but no claude executable was found)",
            tier,
        )
    if fallback:
        return BillingChoice(
            Billing.API,
            chosen_mode,
            fallback,
            lines,
            "API (mode subscription, but no claude executable was found; "
            "[auth] api_fallback = true lets the API stand in)",
            tier,
        )
    raise OperationError(
        "mode subscription sends Anthropic calls through Claude Code, and no `claude` "
        "executable was found on PATH",
        hint=INSTALL_HINT,
    )


def _auto_reason(strategy: AuthStrategy, lines: int) -> str:
    size = strategy.size_category(lines)
    tier = strategy.subscription_tier.value
    if tier in _API_ONLY_TIERS:
        return f"auto: tier {tier} sends every size to the API"
    return f"auto: {lines:,} lines, a {size.value} module"
