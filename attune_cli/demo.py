"""The loop of ``attune demo``: route → call → record → learn, offline, on a throwaway home.

Three models answer a ``triage`` stage from the provider emulator on 127.0.0.1::

    gpt-5-mini        OpenAI API     healthy
    claude-haiku-4-5  Anthropic API  slow (a fraction of a second per answer)
    flaky-haiku       Anthropic API  fails in bursts (HTTP 503 with retry-after-ms)

The first calls ask each model in turn, as a team would while it has no history; the
remaining calls let the router choose from what was recorded. Every call goes through the real
executor, circuit breaker and telemetry store of the throwaway home. This module holds no
terminal code: ``attune_cli.cli.demo`` renders what it reports.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from attune_cli.emulator import Behaviour, ProviderEmulator, Reply

if TYPE_CHECKING:
    from attune_cli.core.response import LLMResponse
    from attune_cli.core.workspace import Workspace

DEMO_WORKFLOW = "demo"
DEMO_STAGE = "triage"
FLAKY_MODEL = "flaky-haiku"
SLOW_REPLY_S = 0.15
EXPLORE_SHARE = 0.7
"""The share of calls that ask each model in turn before the router takes over."""

PROMPTS = (
    "Triage: login page returns 500 after deploy",
    "Triage: typo in README install section",
    "Triage: memory grows 2 GB an hour in the worker",
    "Triage: flaky test test_parse_dates on CI",
    "Triage: feature request, dark mode for the dashboard",
)


@dataclass(frozen=True)
class DemoModel:
    """One emulated model and what it does."""

    model: str
    provider: str
    role: str
    behaviour: Behaviour


def demo_models() -> list[DemoModel]:
    """The three models of the demo, in the order the first calls visit them."""
    return [
        DemoModel("gpt-5-mini", "openai", "healthy", Behaviour.healthy()),
        DemoModel(
            "claude-haiku-4-5",
            "anthropic",
            f"slow, {SLOW_REPLY_S:g} s",
            Behaviour(then=Reply(delay_s=SLOW_REPLY_S)),
        ),
        DemoModel(
            FLAKY_MODEL,
            "anthropic",
            "503 bursts",
            Behaviour.bursts(ok=4, failing=8, status=503, retry_after_ms=40),
        ),
    ]


@dataclass
class ModelTally:
    """What happened to one model during the demo.

    Attributes:
        asked: calls that asked this model first.
        answered: answers it gave (its own calls, or as another model's fallback).
        fell_back: calls asked of it that another model answered.
        failed_attempts: attempts it failed (recorded as failures).
        rejected: attempts its open circuit refused without sending anything.
    """

    asked: int = 0
    answered: int = 0
    fell_back: int = 0
    failed_attempts: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class CallEvent:
    """One finished demo call, for a progress display."""

    index: int
    routed: bool
    asked: str
    response: LLMResponse


@dataclass
class DemoReport:
    """The outcome of the demo's calls."""

    home: Path
    calls: int
    tallies: dict[str, ModelTally] = field(default_factory=dict)
    unanswered: int = 0
    attempts_recorded: int = 0
    elapsed_s: float = 0.0
    routed_choices: Counter[str] = field(default_factory=Counter)


def write_demo_home(home: Path, emulator: ProviderEmulator) -> Workspace:
    """Point a fresh attune home at ``emulator``, with fake keys; return its workspace.

    The config names both providers' base URLs explicitly, so the environment of the person
    running the demo (``OPENAI_BASE_URL``, real keys) plays no part.
    """
    from attune_cli.core.credentials import store_key
    from attune_cli.core.paths import Paths, ensure_private_dir
    from attune_cli.core.workspace import Workspace

    paths = Paths(config_dir=home, data_dir=home)
    ensure_private_dir(home)
    paths.config_file.write_text(
        "# attune demo: a throwaway home; both providers are the local emulator.\n"
        "[providers.anthropic]\n"
        f'base_url = "{emulator.anthropic_base_url}"\n\n'
        "[providers.openai]\n"
        f'base_url = "{emulator.openai_base_url}"\n\n'
        f'[models."{FLAKY_MODEL}"]\n'
        'provider = "anthropic"\n'
        'tier = "cheap"\n'
        "input_usd_per_mtok = 1.0\n"
        "output_usd_per_mtok = 5.0\n"
        "context_window = 128000\n\n"
        "[routing]\n"
        "min_calls = 5\n"
        "explore = false\n\n"
        "[executor]\n"
        "max_retries = 1\n"
        "read_timeout_s = 10\n",
        encoding="utf-8",
    )
    for provider in ("anthropic", "openai"):
        store_key(paths, provider, f"demo-{provider}-key-not-a-secret")
    return Workspace.load(paths)


def run_demo(
    home: Path, *, calls: int = 50, on_call: Callable[[CallEvent], None] | None = None
) -> DemoReport:
    """Make ``calls`` calls through the executor against the emulator, in the home ``home``.

    Args:
        home: an empty folder to use as the attune home.
        calls: how many calls; the first ``EXPLORE_SHARE`` ask each model in turn, the rest
            are routed by the router from what was recorded.
        on_call: told after each call.

    Returns:
        Per-model tallies and totals.
    """
    from attune_cli.core.breaker.sqlite import CircuitBreaker
    from attune_cli.core.breaker.state import BreakerSettings
    from attune_cli.core.executor import ResilientExecutor, make_client
    from attune_cli.core.routing import AdaptiveModelRouter
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    models = demo_models()
    started = time.monotonic()
    with ProviderEmulator({m.model: m.behaviour for m in models}) as emulator:
        workspace = write_demo_home(home, emulator)
        report = DemoReport(home=home, calls=calls)
        report.tallies = {m.model: ModelTally() for m in models}
        store = TelemetryStore.open(workspace)
        breaker = CircuitBreaker(
            workspace.paths.telemetry_db,
            BreakerSettings.from_config(workspace.config, workspace.paths.config_file),
        )
        # No proxy settings from the environment: the emulator is on this machine.
        client = make_client(trust_env=False)
        try:
            executor = ResilientExecutor.from_workspace(
                workspace, breaker=breaker, store=store, environ={}, client=client
            )
            router = AdaptiveModelRouter.from_workspace(workspace, store)
            explore_calls = round(calls * EXPLORE_SHARE)
            for index in range(calls):
                routed = index >= explore_calls
                asked = models[index % len(models)].model
                if routed:
                    # The demo's models have no caps: the router always picks one of them.
                    asked = router.get_best_model(DEMO_WORKFLOW, DEMO_STAGE).chosen or asked
                response = executor.execute(
                    PROMPTS[index % len(PROMPTS)],
                    model=asked,
                    workflow=DEMO_WORKFLOW,
                    stage=DEMO_STAGE,
                    max_tokens=64,
                )
                _tally(report, asked, routed, response)
                if on_call:
                    on_call(CallEvent(index, routed, asked, response))
        finally:
            client.close()
            breaker.close()
            store.close()
    report.elapsed_s = time.monotonic() - started
    return report


def _tally(report: DemoReport, asked: str, routed: bool, response: LLMResponse) -> None:
    tallies = report.tallies
    tally = tallies.setdefault(asked, ModelTally())
    tally.asked += 1
    if routed:
        report.routed_choices[asked] += 1
    for attempt in response.attempts:
        other = tallies.setdefault(attempt.model, ModelTally())
        if not attempt.sent:
            other.rejected += 1
        elif not attempt.success:
            other.failed_attempts += 1
        if attempt.sent:
            report.attempts_recorded += 1
    if response.success:
        tallies.setdefault(response.model, ModelTally()).answered += 1
        if response.fallback_used:
            tally.fell_back += 1
    else:
        report.unanswered += 1
