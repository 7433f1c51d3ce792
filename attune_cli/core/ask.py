"""What ``attune ask`` does: route (unless a model is named), then call through the executor.

The router knows history, not keys; the executor knows which providers this machine can reach.
``choose_model`` reconciles the two, ``ask`` wires the store, the breaker, the router and the
executor of a workspace together for one prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attune_cli.core.errors import OperationError

if TYPE_CHECKING:
    import httpx

    from attune_cli.core.executor import ResilientExecutor
    from attune_cli.core.response import LLMResponse
    from attune_cli.core.routing import RoutingDecision
    from attune_cli.core.workspace import Workspace


@dataclass(frozen=True)
class AskOptions:
    """What ``attune ask`` was asked to do.

    Attributes:
        prompt: the user message.
        workflow: recorded with every attempt; routing reads its history.
        stage: likewise; its default tier decides the registry default.
        model: a model to use instead of routing (no fallback then).
        tier: route within this tier only.
        system: an optional system prompt.
        max_tokens: the most output tokens.
        max_cost_usd: cap on the average cost per call when routing, and on fallbacks.
        stream: stream the answer as it arrives.
        timeout_s: the whole call's deadline (``--timeout``); ``[executor] deadline_s`` when
            None.
    """

    prompt: str
    workflow: str = "adhoc"
    stage: str = "general"
    model: str | None = None
    tier: str | None = None
    system: str | None = None
    max_tokens: int = 1024
    max_cost_usd: float | None = None
    stream: bool = True
    timeout_s: float | None = None


def choose_model(
    decision: RoutingDecision, configured: set[str], executor: ResilientExecutor, tier: str | None
) -> tuple[str, str]:
    """The model to ask first, and a note saying why.

    The router's choice when its provider is configured (and, with ``tier``, it is of that
    tier); else the best eligible candidate that qualifies; else the first registry model of
    the tier on a configured provider.

    Args:
        decision: the router's decision.
        configured: names of the providers with a key or an explicit base URL.
        executor: for the registry.
        tier: only models of this tier, when given.
    """

    def usable(provider: str | None, model_tier: str | None) -> bool:
        return provider in configured and (tier is None or model_tier == tier)

    if usable(decision.provider, decision.tier):
        return decision.chosen, f"routed to {decision.chosen}: {decision.reason}"
    why = (
        f"the router's pick {decision.chosen} is not of the {tier} tier"
        if tier is not None and decision.tier != tier
        else f"the router's pick {decision.chosen} is on {decision.provider}, not configured"
    )
    for candidate in decision.candidates:
        if candidate.eligible and usable(candidate.provider, candidate.tier):
            return candidate.model, f"routed to {candidate.model} ({why})"
    wanted_tier = tier or decision.tier or decision.default_tier
    models = executor.registry.by_tier(wanted_tier)
    for model in models:
        if model.provider in configured:
            return model.id, f"using {model.id}, the first {wanted_tier} model configured ({why})"
    model_id = models[0].id if models else decision.chosen
    return model_id, f"using {model_id} ({why})"


def ask(
    workspace: Workspace,
    options: AskOptions,
    *,
    on_text: Callable[[str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    on_attempt: Callable[[str, str], None] | None = None,
) -> LLMResponse:
    """Route (unless a model is given), call with the breaker, retries and fallback, record.

    Args:
        workspace: paths, config and registry.
        options: the prompt and the flags of ``attune ask``.
        on_text: called with each piece of the answer as it arrives.
        on_notice: called with one-line notes for the person (routing, retries, fallback).
        environ: the environment for keys and base URLs; ``os.environ`` when None.
        client: a shared httpx client (tests); a new one when None.
        on_attempt: told ``(provider, model)`` as each attempt begins, retries and fallbacks
            included (what a display of the model being waited on needs).

    Returns:
        The envelope, successful or not (``executor.failure_error`` makes the error to raise
        for a failed one).

    Raises:
        ConfigError: invalid ``[routing]``, ``[breaker]`` or ``[executor]`` settings.
        OperationError: no provider is configured for the chosen model's chain.
        UsageError: an unknown ``--model`` whose provider cannot be told.
    """
    from attune_cli.core.breaker import BreakerSettings, CircuitBreaker
    from attune_cli.core.executor import ResilientExecutor
    from attune_cli.core.providers.base import watching_attempts
    from attune_cli.core.telemetry import TelemetryStore

    notice = on_notice or (lambda _text: None)
    path = workspace.paths.config_file
    breaker_settings = BreakerSettings.from_config(workspace.config, path)
    store = TelemetryStore.open(workspace)
    breaker = CircuitBreaker(workspace.paths.telemetry_db, breaker_settings, on_warning=notice)
    try:
        with ResilientExecutor.from_workspace(
            workspace, breaker=breaker, store=store, environ=environ, client=client
        ) as executor:
            configured = set(executor.configured_providers)
            if not configured:
                raise OperationError(
                    "no provider is configured",
                    hint="set ANTHROPIC_API_KEY or OPENAI_API_KEY, run `attune auth login "
                    "PROVIDER`, or point OPENAI_BASE_URL at a local OpenAI-compatible server",
                )
            model = options.model
            if model is None:
                from attune_cli.core.routing import AdaptiveModelRouter

                router = AdaptiveModelRouter.from_workspace(workspace, store)
                decision = router.get_best_model(
                    options.workflow,
                    options.stage,
                    max_cost=options.max_cost_usd,
                    explore=router.settings.explore,
                )
                model, note = choose_model(decision, configured, executor, options.tier)
                notice(note)
            watching: AbstractContextManager[None] = (
                watching_attempts(on_attempt) if on_attempt else nullcontext()
            )
            with watching:
                return executor.execute(
                    options.prompt,
                    model=model,
                    workflow=options.workflow,
                    stage=options.stage,
                    system=options.system,
                    max_tokens=options.max_tokens,
                    fallback=options.model is None,
                    max_cost_usd=options.max_cost_usd,
                    stream=options.stream,
                    on_text=on_text,
                    on_notice=notice,
                    deadline_s=options.timeout_s,
                )
    finally:
        breaker.close()
        store.close()
