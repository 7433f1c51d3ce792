"""Which way a call is paid: the mode, the size of what is sent, and whether claude is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_cli.core.auth import AuthStrategy
from attune_cli.core.billing import Billing, choose_billing
from attune_cli.core.errors import OperationError
from attune_cli.core.plans import AuthMode, SubscriptionTier

MAX_AUTO = AuthStrategy(
    subscription_tier=SubscriptionTier.MAX,
    default_mode=AuthMode.AUTO,
    small_module_threshold=3,
    medium_module_threshold=6,
    prefer_subscription=False,
)


def lines(count: int) -> str:
    return "\n".join(f"x{i} = {i}" for i in range(count)) + "\n# a comment\n\n"


@pytest.mark.parametrize(
    ("count", "expected"),
    [(2, Billing.SUBSCRIPTION), (4, Billing.API), (9, Billing.API)],
)
def test_auto_follows_the_recommend_thresholds(count: int, expected: Billing) -> None:
    choice = choose_billing(MAX_AUTO, lines(count), subscription_available=True)

    assert choice.billing is expected and choice.lines == count
    assert MAX_AUTO.get_recommended_mode(count).value == expected.value


def test_auto_without_claude_says_it_uses_the_api() -> None:
    choice = choose_billing(MAX_AUTO, lines(1), subscription_available=False)

    assert choice.billing is Billing.API and "no claude executable" in choice.reason
    assert choice.worth_saying


def test_subscription_without_claude_refuses_unless_the_api_may_stand_in() -> None:
    strategy = AuthStrategy(
        subscription_tier=SubscriptionTier.MAX, default_mode=AuthMode.SUBSCRIPTION
    )
    with pytest.raises(OperationError, match="no `claude` executable") as caught:
        choose_billing(strategy, "hi", subscription_available=False)
    assert caught.value.hint is not None and "npm install" in caught.value.hint

    allowed = AuthStrategy(
        subscription_tier=SubscriptionTier.MAX,
        default_mode=AuthMode.SUBSCRIPTION,
        api_fallback=True,
    )
    choice = choose_billing(allowed, "hi", subscription_available=False)
    assert choice.billing is Billing.API and "api_fallback = true" in choice.reason


def test_the_mode_flag_wins_over_the_default_mode() -> None:
    choice = choose_billing(
        MAX_AUTO, lines(50), mode=AuthMode.SUBSCRIPTION, subscription_available=True
    )

    assert choice.billing is Billing.SUBSCRIPTION and choice.mode is AuthMode.SUBSCRIPTION


def test_an_api_only_setup_says_nothing_about_billing() -> None:
    pro = AuthStrategy()  # pro tier, auto: every size goes to the API

    choice = choose_billing(pro, "hi", subscription_available=True)

    assert choice.billing is Billing.API and not choice.worth_saying


def test_api_fallback_round_trips_through_config_toml(tmp_path: Path) -> None:
    from dataclasses import replace

    config = tmp_path / "config.toml"
    config.write_text('# mine\n[auth]\ndefault_mode = "subscription"\n', encoding="utf-8")

    assert AuthStrategy.load(config).api_fallback is False
    replace(AuthStrategy.load(config), api_fallback=True).save(config)
    assert AuthStrategy.load(config).api_fallback is True
    replace(AuthStrategy.load(config), api_fallback=False).save(config)

    assert AuthStrategy.load(config).api_fallback is False
    assert "# mine" in config.read_text(encoding="utf-8")
