"""The ``auth setup`` wizard: the questions, in order, with prompts that tests can replace.

Flow: (offer to import the older tool's strategy) → subscription tier → a comparison of
subscription / api / auto for a sample module → mode → optionally a provider and its key
(hidden) → summary → confirm. Every answer can also come from a flag; a question whose answer
was given is not asked, so with every flag given nothing is asked. Without a terminal, missing
answers are an immediate usage error naming the flags, never a prompt waiting on a closed stdin.

Nothing is written here: the command saves the returned ``SetupResult`` only after the final
confirm. Prompts use questionary's ``unsafe_ask`` so Ctrl-C raises ``KeyboardInterrupt`` (the
CLI turns it into exit 130, "nothing was saved") instead of quietly answering None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from attune_cli.core.auth import AuthStrategy
from attune_cli.core.errors import UsageError
from attune_cli.core.plans import AuthMode, SubscriptionTier, contradiction

if TYPE_CHECKING:
    from rich.console import Console

    from attune_cli.core.registry import Registry

SKIP = ""


class Prompter(Protocol):
    """The three kinds of question the wizard asks. Each may raise KeyboardInterrupt."""

    def select(
        self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None
    ) -> str:
        """Pick one of ``choices`` (title, value); return the value."""
        ...

    def confirm(self, message: str, default: bool = True) -> bool:
        """A yes/no question."""
        ...

    def password(self, message: str) -> str:
        """A hidden answer; empty when the person pressed Enter alone (to skip)."""
        ...


class QuestionaryPrompter:
    """``Prompter`` over questionary (arrow keys, Enter, hidden input).

    Args:
        input: a prompt_toolkit input (tests pass ``create_pipe_input()``); the terminal when None.
        output: a prompt_toolkit output (tests pass ``DummyOutput()``); the terminal when None.
    """

    def __init__(self, *, input: Any = None, output: Any = None) -> None:
        self._io = {k: v for k, v in (("input", input), ("output", output)) if v is not None}

    def select(
        self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None
    ) -> str:
        import questionary

        options = [questionary.Choice(title, value=value) for title, value in choices]
        answer: str = questionary.select(
            message, choices=options, default=default, **self._io
        ).unsafe_ask()
        return answer

    def confirm(self, message: str, default: bool = True) -> bool:
        import questionary

        answer: bool = questionary.confirm(message, default=default, **self._io).unsafe_ask()
        return answer

    def password(self, message: str) -> str:
        import questionary

        answer: str = questionary.password(message, **self._io).unsafe_ask()
        return answer


def make_prompter() -> Prompter:
    """The prompter for a real terminal (tests replace this function)."""
    return QuestionaryPrompter()


@dataclass(frozen=True)
class SetupAnswers:
    """The answers given as flags to ``auth setup`` (None / False: not given)."""

    tier: SubscriptionTier | None = None
    mode: AuthMode | None = None
    provider: str | None = None
    key_from_stdin: bool = False
    yes: bool = False


@dataclass(frozen=True)
class SetupResult:
    """What to save once the person has confirmed."""

    strategy: AuthStrategy
    provider: str | None = None
    key: str | None = field(default=None, repr=False)
    imported_from: Path | None = None


def missing_flags(answers: SetupAnswers, *, key_in_env: bool) -> list[str]:
    """The flags that must be given when there is no terminal to ask in."""
    missing = []
    if answers.tier is None:
        missing.append("--tier")
    if answers.mode is None:
        missing.append("--mode")
    if answers.provider and not answers.key_from_stdin and not key_in_env:
        missing.append("--with-key-stdin")
    if not answers.yes:
        missing.append("--yes")
    return missing


def run_setup(
    answers: SetupAnswers,
    *,
    prompter: Prompter | None,
    console: Console,
    registry: Registry,
    current: AuthStrategy,
    config_file: Path,
    legacy: AuthStrategy | None = None,
    environ: Mapping[str, str] | None = None,
    read_key: Callable[[], str] | None = None,
) -> SetupResult | None:
    """Ask what the flags did not answer and return the strategy (and key) to save.

    Args:
        answers: the flags given.
        prompter: asks the questions; None when there is no terminal.
        console: where tables and notes go.
        registry: providers (for the key question) and prices (for the comparison).
        current: the strategy in ``config.toml`` now; its thresholds are kept.
        config_file: where the result will be saved (shown in the summary).
        legacy: the older tool's strategy, offered for import when present.
        environ: the environment (is a provider's key variable already set?).
        read_key: reads the key from stdin, for ``--with-key-stdin``.

    Returns:
        The result to save, or None when the person declined at the final confirm.

    Raises:
        UsageError: no terminal and answers missing (naming the flags), an unknown provider,
            or an empty key on stdin.
        KeyboardInterrupt: Ctrl-C at any question.
    """
    environment: Mapping[str, str] = environ if environ is not None else {}
    provider = answers.provider
    key_env = registry.providers[provider].key_env if provider in registry.providers else None
    key_in_env = bool(key_env and environment.get(key_env, "").strip())
    if answers.tier is not None and answers.mode is not None:
        _refuse_contradiction(answers.tier, answers.mode, flags=True)
    if prompter is None:
        missing = missing_flags(answers, key_in_env=key_in_env)
        if missing:
            raise UsageError(
                f"no terminal to ask in: give {_join(missing)}",
                hint="for example: attune auth setup --tier max --mode auto --yes",
            )
    if prompter is not None and None in (answers.tier, answers.mode):
        console.print(_opening(current, config_file), highlight=False)

    strategy = current
    imported_from = None
    if prompter is not None and legacy is not None and None in (answers.tier, answers.mode):
        console.print(
            f"Found the older attune tool's settings in {legacy.source}: "
            f"tier [bold]{legacy.subscription_tier.value}[/bold], "
            f"mode [bold]{legacy.default_mode.value}[/bold]."
        )
        if prompter.confirm("Import them?", default=True):
            strategy, imported_from = legacy, legacy.source

    tier = answers.tier
    if tier is None and imported_from is None:
        tier = _ask_tier(_need(prompter), current)
    strategy = replace(strategy, subscription_tier=tier or strategy.subscription_tier)

    mode = answers.mode
    if mode is not None:
        _refuse_contradiction(strategy.subscription_tier, mode, flags=answers.tier is not None)
    if mode is None and imported_from is None:
        mode = _ask_mode(_need(prompter), console, strategy, registry, current)
    strategy = replace(strategy, default_mode=mode or strategy.default_mode, setup_completed=True)

    if provider is None and prompter is not None and not answers.yes:
        provider = _ask_provider(prompter, registry, strategy, environment) or None
        key_env = registry.providers[provider].key_env if provider else None
        key_in_env = bool(key_env and environment.get(key_env, "").strip())

    key = None
    key_text = None
    if provider is not None:
        if answers.key_from_stdin:
            key = (read_key() if read_key else "").strip()
            if not key:
                raise UsageError("--with-key-stdin: no key on stdin; nothing was saved")
        elif not key_in_env:
            key = (
                _need(prompter)
                .password(f"API key for {provider} (input hidden; Enter alone skips):")
                .strip()
            )
            if not key:
                console.print(
                    f"No key stored for {provider}: add one later with "
                    f"`attune auth login {provider}`.",
                    markup=False,
                    highlight=False,
                )
                provider, key = None, None
    if provider is not None:
        if key_in_env:
            console.print(
                f"${key_env} is set in your environment: it wins over a stored key"
                + (" while it is set." if key else "; no key stored.")
            )
        if key:
            from attune_cli.core.credentials import key_hint

            key_text = f"{key_hint(key)} (to be stored in credentials.toml, mode 600)"
        else:
            key_text = f"from ${key_env}"

    if prompter is not None:
        from attune_cli.cli.auth_views import summary_view

        console.print(summary_view(strategy, config_file, provider, key_text, imported_from))
    if not answers.yes and not _need(prompter).confirm(f"Save to {config_file}?", default=True):
        return None
    return SetupResult(strategy=strategy, provider=provider, key=key, imported_from=imported_from)


def _opening(current: AuthStrategy, config_file: Path) -> Any:
    """The wizard's first line: what it sets up and where, or what is set up already."""
    from rich.text import Text

    from attune_cli.core.safe_text import visible

    if current.setup_completed:
        return Text(
            f"attune is already set up (tier {current.subscription_tier.value}, mode "
            f"{current.default_mode.value}); Enter keeps each answer. "
            f"Saved in {visible(str(config_file))}."
        )
    return Text(
        "This sets up how attune reaches Claude: your subscription tier, how work is sent "
        "(subscription, API or auto) and, if you like, an API key. It is saved in "
        f"{visible(str(config_file))}; keys go to credentials.toml (mode 600)."
    )


def _refuse_contradiction(tier: SubscriptionTier, mode: AuthMode, *, flags: bool) -> None:
    why = contradiction(tier, mode)
    if why is None:
        return
    if flags:
        why = why.replace("tier ", "--tier ", 1).replace("mode ", "--mode ")
    raise UsageError(why + "; nothing was saved")


def _ask_tier(prompter: Prompter, current: AuthStrategy) -> SubscriptionTier:
    choices = [(f"{tier.value:<11} {tier.description}", tier.value) for tier in SubscriptionTier]
    # The default agrees with `auth status`: the tier in force now (pro before any setup).
    default = current.subscription_tier.value
    return SubscriptionTier(
        prompter.select("Which Claude subscription do you have?", choices, default)
    )


def _ask_mode(
    prompter: Prompter,
    console: Console,
    strategy: AuthStrategy,
    registry: Registry,
    current: AuthStrategy,
) -> AuthMode:
    from attune_cli.cli.auth_views import comparison_view
    from attune_cli.core.estimate import SAMPLE_MODULE_LINES, compare_modes

    options = compare_modes(strategy, SAMPLE_MODULE_LINES, registry=registry)
    recommended = _recommended_mode(strategy)
    tier = strategy.subscription_tier
    # A mode that contradicts the tier is not offered (the table says why).
    offered = [mode for mode in AuthMode if contradiction(tier, mode) is None]
    console.print(comparison_view(options, SAMPLE_MODULE_LINES, recommended, console.width))
    choices = [
        (mode.description + (" (recommended)" if mode is recommended else ""), mode.value)
        for mode in offered
    ]
    default = recommended.value
    if current.setup_completed and current.default_mode in offered:
        default = current.default_mode.value
    return AuthMode(prompter.select("How should attune send work?", choices, default))


def _recommended_mode(strategy: AuthStrategy) -> AuthMode:
    # Without a subscription there is nothing to route to: say so rather than suggest auto.
    if strategy.subscription_tier is SubscriptionTier.API_ONLY:
        return AuthMode.API
    return AuthMode.AUTO


def _ask_provider(
    prompter: Prompter,
    registry: Registry,
    strategy: AuthStrategy,
    environ: Mapping[str, str],
) -> str:
    choices = [("Skip: no API key now (add one later with `attune auth login`)", SKIP)]
    for name, provider in registry.providers.items():
        in_env = provider.key_env and environ.get(provider.key_env, "").strip()
        note = f" (${provider.key_env} is already set)" if in_env else ""
        choices.append((f"{name}{note}", name))
    wants_api = strategy.default_mode is not AuthMode.SUBSCRIPTION
    default = "anthropic" if wants_api and "anthropic" in registry.providers else SKIP
    return prompter.select("Store an API key for a provider?", choices, default)


def _need(prompter: Prompter | None) -> Prompter:
    # run_setup checked the flags up front, so a question is only reached with a terminal.
    if prompter is None:
        raise UsageError("no terminal to ask in")
    return prompter


def _join(flags: list[str]) -> str:
    return flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " and " + flags[-1]
