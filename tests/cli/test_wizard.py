"""The setup wizard driven through real questionary prompts on a prompt_toolkit pipe."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from attune_cli.cli.wizard import QuestionaryPrompter, SetupAnswers, missing_flags, run_setup
from attune_cli.core.auth import AuthMode, AuthStrategy, SubscriptionTier
from attune_cli.core.errors import UsageError
from attune_cli.core.registry import load_registry

DOWN, UP, ENTER, CTRL_C = "\x1b[B", "\x1b[A", "\r", "\x03"
KEY = "sk-ant-test-0123456789"
REGISTRY = load_registry({}, Path("config.toml"))


@pytest.fixture
def keys() -> Iterator[Any]:
    with create_pipe_input() as pipe:
        yield pipe


def wizard(pipe: Any, answers: SetupAnswers = SetupAnswers(), **kwargs: Any) -> tuple[Any, str]:
    screen = io.StringIO()
    result = run_setup(
        answers,
        prompter=QuestionaryPrompter(input=pipe, output=DummyOutput()),
        console=Console(file=screen, width=120, color_system=None),
        registry=REGISTRY,
        current=kwargs.pop("current", AuthStrategy()),
        config_file=Path("/home/me/.config/attune/config.toml"),
        environ=kwargs.pop("environ", {}),
        **kwargs,
    )
    return result, screen.getvalue()


def test_arrow_keys_enter_and_a_password_build_the_strategy(keys: Any) -> None:
    # tier: down once from the default "pro" → max; mode: up once from the recommended
    # auto → api; provider: Enter on the suggested anthropic; key; confirm with y.
    keys.send_text(DOWN + ENTER + UP + ENTER + ENTER + KEY + ENTER + "y")
    result, screen = wizard(keys)
    assert result.strategy.subscription_tier is SubscriptionTier.MAX
    assert result.strategy.default_mode is AuthMode.API
    assert result.strategy.setup_completed is True
    assert (result.provider, result.key) == ("anthropic", KEY)
    assert KEY not in repr(result)
    assert "Subscription, API or Auto: a 1,000-line module" in screen
    assert "claude-sonnet-4-5" in screen
    assert "sk-…6789" in screen
    assert KEY not in screen


def test_skipping_the_key_and_declining_returns_nothing_to_save(keys: Any) -> None:
    keys.send_text(ENTER + ENTER + UP + ENTER + "n")
    result, _ = wizard(keys, current=AuthStrategy(subscription_tier="max", setup_completed=True))
    assert result is None


def test_ctrl_c_raises_keyboard_interrupt_instead_of_answering_none(keys: Any) -> None:
    keys.send_text(DOWN + ENTER + CTRL_C)
    with pytest.raises(KeyboardInterrupt):
        wizard(keys)


def test_enter_alone_at_the_key_skips_it_without_ctrl_c(keys: Any) -> None:
    keys.send_text(ENTER + ENTER + "y")  # anthropic; Enter alone at the key; save
    result, screen = wizard(
        keys, answers=SetupAnswers(tier=SubscriptionTier.PRO, mode=AuthMode.API)
    )
    assert result is not None and result.strategy.default_mode is AuthMode.API
    assert (result.provider, result.key) == (None, None)
    assert "No key stored for anthropic" in screen


def test_the_current_strategy_is_the_default_answer(keys: Any) -> None:
    current = AuthStrategy(subscription_tier="enterprise", default_mode="api", setup_completed=True)
    keys.send_text(ENTER + ENTER + UP + ENTER + "y")  # Enter, Enter keeps both; skip the key
    result, _ = wizard(keys, current=current)
    assert result.strategy.subscription_tier is SubscriptionTier.ENTERPRISE
    assert result.strategy.default_mode is AuthMode.API


def test_a_key_in_the_environment_is_not_asked_for(keys: Any) -> None:
    keys.send_text("y")
    result, screen = wizard(
        keys,
        answers=SetupAnswers(SubscriptionTier.PRO, AuthMode.API, provider="anthropic"),
        environ={"ANTHROPIC_API_KEY": "sk-ant-env-0000"},
    )
    assert result.key is None
    assert "ANTHROPIC_API_KEY is set" in screen


def test_without_a_terminal_missing_answers_fail_at_once() -> None:
    with pytest.raises(UsageError) as caught:
        run_setup(
            SetupAnswers(provider="anthropic"),
            prompter=None,
            console=Console(file=io.StringIO()),
            registry=REGISTRY,
            current=AuthStrategy(),
            config_file=Path("config.toml"),
            environ={},
        )
    assert "--tier, --mode, --with-key-stdin and --yes" in str(caught.value)


@pytest.mark.parametrize(
    ("answers", "key_in_env", "expected"),
    [
        (SetupAnswers(), False, ["--tier", "--mode", "--yes"]),
        (SetupAnswers(SubscriptionTier.MAX, AuthMode.AUTO, yes=True), False, []),
        (SetupAnswers(SubscriptionTier.MAX, AuthMode.AUTO, "openai", yes=True), True, []),
        (
            SetupAnswers(SubscriptionTier.MAX, AuthMode.AUTO, "openai", yes=True),
            False,
            ["--with-key-stdin"],
        ),
    ],
)
def test_missing_flags(answers: SetupAnswers, key_in_env: bool, expected: list[str]) -> None:
    assert missing_flags(answers, key_in_env=key_in_env) == expected
