"""What ``attune ask`` does: route (unless a model is named), then call through the executor.

``ask`` wires the store, the breaker, the router and the executor of a workspace together for one
prompt. The router is told which providers the executor can reach, so it only ever chooses a
callable model within the caps; when there is none, nobody is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from attune_cli.core.billing import Billing, BillingChoice
from attune_cli.core.errors import AttuneError, OperationError
from attune_cli.core.money import format_usd
from attune_cli.core.plans import AuthMode

# A reservation outlives its call's deadline by this much before it expires by itself.
HOLD_MARGIN_S = 60.0

if TYPE_CHECKING:
    import httpx

    from attune_cli.core.executor import ResilientExecutor
    from attune_cli.core.providers.base import Message
    from attune_cli.core.response import LLMResponse
    from attune_cli.core.routing.cache import PerformanceCache
    from attune_cli.core.spend.budgets import BudgetSettings
    from attune_cli.core.telemetry.sqlite import TelemetryStore
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
        mode: how the call is paid (``--mode``): ``subscription``, ``api`` or ``auto``;
            ``[auth] default_mode`` when None (``attune_cli.core.billing``).
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
    mode: str | None = None


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
    import sqlite3

    from attune_cli.core.breaker.state import BreakerSettings
    from attune_cli.core.executor import ResilientExecutor
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.telemetry.team import open_breaker, open_call_store

    breaker_settings = BreakerSettings.from_config(workspace.config, workspace.paths.config_file)
    path = workspace.paths.telemetry_db
    breaker_warning = on_notice or _silent
    try:
        # The team store when one is configured (the local spool while it cannot be reached).
        store = open_call_store(workspace, on_notice=on_notice)
    except (AttuneError, sqlite3.Error, OSError) as exc:
        # A broken store never blocks a call: no history to route by, no breakers (they live
        # in the same file), and the call's rows go to the spool; one notice says all that.
        reason = exc.message if isinstance(exc, AttuneError) else str(exc)
        store = TelemetryStore.unusable(path, f"{reason}; circuit breakers are off for this call")
        breaker_warning = _silent
    breaker = open_breaker(workspace, breaker_settings, on_warning=breaker_warning)
    try:
        with ResilientExecutor.from_workspace(
            workspace, breaker=breaker, store=store, environ=environ, client=client
        ) as executor:
            return route_and_call(
                workspace,
                executor,
                store,
                options,
                on_text=on_text,
                on_notice=on_notice,
                on_attempt=on_attempt,
            )
    finally:
        breaker.close()
        store.close()


def route_and_call(
    workspace: Workspace,
    executor: ResilientExecutor,
    store: TelemetryStore,
    options: AskOptions,
    *,
    on_text: Callable[[str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    on_attempt: Callable[[str, str], None] | None = None,
    messages: Sequence[Message] = (),
    cancelled: Callable[[], bool] | None = None,
    performance_cache: PerformanceCache | None = None,
) -> LLMResponse:
    """``ask`` over an executor and a store the caller keeps open (the gateway, ``Attune``).

    Routes unless ``options.model`` is given (then that model alone is called, no fallback),
    and calls through ``executor``, which records every attempt into its store.

    Args:
        workspace: paths, config and registry.
        executor: the executor to call through (its breaker and store are used).
        store: the telemetry store routing reads history from.
        options: the prompt and what ``attune ask`` was asked to do.
        on_text: called with each piece of the answer as it arrives.
        on_notice: called with one-line notes (routing, retries, fallback).
        on_attempt: told ``(provider, model)`` as each attempt begins.
        messages: a whole conversation instead of one user turn holding ``options.prompt``.
        cancelled: polled during the call; True abandons it (``CallCancelled``).
        performance_cache: routing reuses a stage's figures from it for a moment (a process
            routing many calls a second); None reads them from ``store`` each time.

    Returns:
        The envelope, successful or not.

    Raises:
        ConfigError: invalid ``[routing]`` settings.
        OperationError: no provider is configured, or no model is within the caps.
        UsageError: an unknown ``--model`` whose provider cannot be told.
        CallCancelled: ``cancelled`` turned True mid-call.
    """
    from attune_cli.core.providers.base import watching_attempts

    notice = on_notice or _silent
    choice = _billing_choice(workspace, executor, options, messages)
    if (
        choice.billing is Billing.SUBSCRIPTION
        and choice.mode is AuthMode.AUTO
        and options.model is not None
        and workspace.registry.provider_of(options.model) != "anthropic"
    ):
        # auto picks the plan for Anthropic models only; another model is paid per token.
        choice = replace(
            choice,
            billing=Billing.API,
            reason=f"API (auto: {options.model} is not an Anthropic model)",
        )
    configured = set(executor.configured_providers)
    if choice.billing is Billing.SUBSCRIPTION:
        # The subscription serves Anthropic models; the others only when the API may follow.
        configured = configured | {"anthropic"} if choice.api_fallback else {"anthropic"}
    if not configured:
        raise OperationError(
            "no provider is configured",
            hint="set ANTHROPIC_API_KEY or OPENAI_API_KEY, run `attune auth login "
            "PROVIDER`, or point OPENAI_BASE_URL at a local OpenAI-compatible server",
        )
    model = options.model
    admissible: Callable[[str], bool] | None = None
    if model is None:
        from attune_cli.core.routing import AdaptiveModelRouter, RoutingSettings
        from attune_cli.core.routing.explain import no_model_within_caps

        settings = workspace.settings(RoutingSettings)
        router = AdaptiveModelRouter(
            store,
            workspace.registry,
            settings,
            configured=frozenset(configured),
            cache=performance_cache,
        )
        decision = router.get_best_model(
            options.workflow,
            options.stage,
            max_cost=options.max_cost_usd,
            explore=settings.explore,
            tier=options.tier,
        )
        if decision.chosen is None:
            raise no_model_within_caps(decision)
        model = decision.chosen
        admissible = decision.admissible
        notice(f"routed to {model}: {decision.reason}")
    if choice.worth_saying or options.mode is not None:
        notice(f"billing: {choice.reason}")
    max_cost_usd = options.max_cost_usd
    budgeted = _within_budget(
        workspace, executor, store, options, model, admissible, notice, choice
    )
    api_fallback = choice.api_fallback
    paid_cap_usd: float | None = None
    if budgeted is not None:
        model = budgeted.model
        api_fallback = budgeted.api_fallback
        paid_cap_usd = budgeted.paid_cap_usd
        if budgeted.cap_usd < (max_cost_usd if max_cost_usd is not None else math.inf):
            max_cost_usd = budgeted.cap_usd
    watching: AbstractContextManager[None] = (
        watching_attempts(on_attempt) if on_attempt else nullcontext()
    )
    try:
        with watching:
            return executor.execute(
                options.prompt,
                model=model,
                workflow=options.workflow,
                stage=options.stage,
                system=options.system,
                max_tokens=options.max_tokens,
                fallback=options.model is None,
                max_cost_usd=max_cost_usd,
                admissible=admissible,
                admissible_cap="the routing caps and configured providers",
                stream=options.stream,
                on_text=on_text,
                on_notice=notice,
                deadline_s=options.timeout_s,
                messages=messages,
                cancelled=cancelled,
                billing=choice.billing,
                api_fallback=api_fallback,
                paid_cap_usd=paid_cap_usd,
            )
    finally:
        if budgeted is not None and budgeted.reservation_id is not None:
            # The call's rows (its real cost) are recorded by now; a reservation that cannot
            # be released expires by itself.
            with suppress(AttuneError, OSError, *_store_errors()):
                store.release_reservation(budgeted.reservation_id)


@dataclass(frozen=True)
class _Budgeted:
    """What the budgets let one call do.

    Attributes:
        model: the model to call first (a cheaper one when a budget downgraded the call).
        cap_usd: no attempt may cost more than this (inf: no budget cap on every attempt).
        paid_cap_usd: no pay-per-token attempt may cost more than this (a plan-covered call's
            fallback to the API; None: no such cap).
        api_fallback: whether a subscription call may still go on to the API.
        reservation_id: the reservation to release when the call ends (None: nothing held).
    """

    model: str
    cap_usd: float = math.inf
    paid_cap_usd: float | None = None
    api_fallback: bool = False
    reservation_id: str | None = None


def _within_budget(
    workspace: Workspace,
    executor: ResilientExecutor,
    store: TelemetryStore,
    options: AskOptions,
    model: str,
    admissible: Callable[[str], bool] | None,
    notice: Callable[[str], None],
    choice: BillingChoice,
) -> _Budgeted | None:
    """Check the workflow's budgets with the call's worst-case price and reserve it (None: no
    budget applies, or nothing is paid per token).

    A budget limits money paid per token. A call the subscription plan covers costs none:
    when every attempt it may make is on the plan, no budget is read and nothing reserved,
    even at a limit. When it may go on to the API (``[auth] api_fallback``), that fallback is
    budgeted as any paid call (``_paid_fallback``). Paid per token, the choices are the model
    asked for, then the models its fallback chain may reach within the other caps
    (``downgrade`` picks the cheapest of those that fit).

    Raises:
        BudgetExceeded: a call paid per token would go over a budget (nothing is called).
        ConfigError: invalid ``[budgets]``.
    """
    if "budgets" not in workspace.config:
        return None
    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.executor import worst_case_tokens
    from attune_cli.core.spend.budgets import BudgetSettings, admit

    settings = workspace.settings(BudgetSettings)
    if not settings.for_workflow(options.workflow):
        return None
    if getattr(store, "unusable_reason", None) is not None:
        notice(f"budgets of {options.workflow!r} not checked: the store cannot be used")
        return None
    tokens = worst_case_tokens(options.prompt, options.system, options.max_tokens)

    def worst_usd(model_id: str) -> float:
        return executor.registry.cost_usd(model_id, *tokens) or 0.0

    deadline_s = options.timeout_s if options.timeout_s is not None else executor.policy.deadline_s
    if choice.billing is Billing.SUBSCRIPTION:
        planned = executor.chain_for(
            model,
            fallback=options.model is None,
            max_cost_usd=options.max_cost_usd,
            worst_case_tokens=tokens,
            admissible=admissible,
            billing=choice.billing,
            api_fallback=choice.api_fallback,
        )
        paid = [t.model for t in planned.chain if not t.subscription]
        if any(t.subscription for t in planned.chain) or not planned.chain:
            if not paid:
                return None  # all on the plan: no money per token, nothing to reserve
            return _paid_fallback(
                store,
                workspace,
                settings,
                options.workflow,
                model,
                [(m, worst_usd(m)) for m in dict.fromkeys(paid)],
                deadline_s + HOLD_MARGIN_S,
                notice,
            )
    choices = [(model, worst_usd(model))]
    if options.model is None:
        plan = executor.chain_for(
            model,
            max_cost_usd=options.max_cost_usd,
            worst_case_tokens=tokens,
            admissible=admissible,
        )
        choices += [(t.model, worst_usd(t.model)) for t in plan.chain if t.model != model]
    admission = admit(
        store,
        workspace.registry,
        settings,
        options.workflow,
        choices,
        now=clock_now(),
        hold_s=deadline_s + HOLD_MARGIN_S,
    )
    if admission.downgraded_from is not None:
        asked_usd = worst_usd(admission.downgraded_from)
        notice(
            f"budget: {format_usd(admission.left_usd)} left, so {admission.model} instead of "
            f"{admission.downgraded_from} (which could cost {format_usd(asked_usd)})"
        )
    return _Budgeted(
        admission.model,
        admission.cap_usd,
        api_fallback=choice.api_fallback,
        reservation_id=admission.reservation_id,
    )


def _paid_fallback(
    store: TelemetryStore,
    workspace: Workspace,
    settings: BudgetSettings,
    workflow: str,
    model: str,
    choices: Sequence[tuple[str, float]],
    hold_s: float,
    notice: Callable[[str], None],
) -> _Budgeted:
    """Budget the pay-per-token fallback of a call the plan covers (``[auth] api_fallback``).

    The plan's attempts go ahead whatever the budgets say; the fallback's worst case is
    checked and reserved as a paid call's (``choices``: the paid models of its chain, first
    first). When it fits, each paid attempt is capped at what was reserved (``downgrade``:
    the dearest choice that fits, so the cheaper ones may still stand in); when it does not,
    the call stays on the plan with no fallback, and says so.
    """
    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.spend.budgets import BudgetExceeded, admit

    try:
        admission = admit(
            store, workspace.registry, settings, workflow, choices, now=clock_now(), hold_s=hold_s
        )
    except BudgetExceeded as exc:
        notice(
            "budget: the plan covers this call, so it goes ahead with no pay-per-token "
            f"fallback ({exc.message})"
        )
        return _Budgeted(model)
    if admission.downgraded_from is not None:
        notice(
            f"budget: {format_usd(admission.left_usd)} left, so a pay-per-token fallback may "
            f"use only models that could cost at most {format_usd(admission.cap_usd)}"
        )
    return _Budgeted(
        model,
        paid_cap_usd=admission.cap_usd,
        api_fallback=True,
        reservation_id=admission.reservation_id,
    )


def _store_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    return (sqlite3.Error,)


def _billing_choice(
    workspace: Workspace,
    executor: ResilientExecutor,
    options: AskOptions,
    messages: Sequence[Message],
) -> BillingChoice:
    """How this call is paid: ``--mode`` (else ``[auth] default_mode``) over what is sent.

    Raises:
        ConfigError: an invalid ``[auth]`` table.
        UsageError: an unknown ``--mode``.
        OperationError: mode subscription without a ``claude`` executable (and no
            ``api_fallback``).
    """
    from attune_cli.core.auth import AuthStrategy
    from attune_cli.core.billing import choose_billing
    from attune_cli.core.errors import UsageError
    from attune_cli.core.plans import AuthMode

    strategy = workspace.settings(AuthStrategy)
    mode = None
    if options.mode is not None:
        try:
            mode = AuthMode(options.mode)
        except ValueError:
            allowed = " | ".join(m.value for m in AuthMode)
            raise UsageError(f"--mode must be one of {allowed} (got {options.mode!r})") from None
    sent = [options.system or ""]
    sent += [m.content for m in messages] if messages else [options.prompt]
    return choose_billing(
        strategy,
        "\n".join(part for part in sent if part),
        mode=mode,
        subscription_available=executor.subscription is not None,
    )


def _silent(_text: str) -> None:
    """A notice nobody reads."""
