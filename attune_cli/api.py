"""``Attune``: attune for code that would rather import than shell out or speak HTTP.

    from attune_cli import Attune

    attune = Attune()                       # the same files as the CLI (ATTUNE_HOME, XDG)
    response = attune.ask("Summarise this diff", workflow="ci", stage="triage")
    decision = attune.route("triage", workflow="ci")
    attune.record(workflow="ci", stage="triage", model="gpt-5-mini", success=True,
                  latency_ms=420)

Each method does what its command does (``attune ask``, ``attune route best``, ``attune
telemetry record``) with no terminal: nothing is printed, nothing prompts, errors are raised as
attune's own (``attune_cli.core.errors``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attune_cli.core.response import LLMResponse
    from attune_cli.core.routing import RoutingDecision
    from attune_cli.core.telemetry.records import CallRecord
    from attune_cli.core.workspace import Workspace

__all__ = ["Attune"]


class Attune:
    """attune's loop (call, record, learn, route) as methods.

    Args:
        home: a folder holding everything (as ``ATTUNE_HOME``); the CLI's locations when None.
        environ: the environment for keys and base URLs; ``os.environ`` when None.

    Raises:
        ConfigError: ``config.toml`` exists but is invalid.
    """

    def __init__(
        self, home: str | Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        from attune_cli.core.paths import resolve_paths
        from attune_cli.core.workspace import Workspace

        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        paths_env = dict(self.environ)
        if home is not None:
            paths_env["ATTUNE_HOME"] = str(home)
        self.workspace: Workspace = Workspace.load(resolve_paths(paths_env))

    def ask(
        self,
        prompt: str,
        *,
        workflow: str = "adhoc",
        stage: str = "general",
        model: str | None = None,
        tier: str | None = None,
        system: str | None = None,
        max_tokens: int = 1024,
        max_cost_usd: float | None = None,
        timeout_s: float | None = None,
        on_text: Callable[[str], None] | None = None,
        mode: str | None = None,
    ) -> LLMResponse:
        """Route (unless ``model`` is given), call with breaker, retries and fallback, record.

        Args:
            prompt: the user message.
            workflow: recorded with every attempt; routing reads its history.
            stage: likewise; its default tier decides the registry default.
            model: call this model as asked (no routing, no fallback).
            tier: route within this tier only.
            system: an optional system prompt.
            max_tokens: the most output tokens.
            max_cost_usd: a cap on cost, fallbacks included.
            timeout_s: the whole call's deadline; ``[executor] deadline_s`` when None.
            on_text: called with each piece of the answer as it arrives (streams the call).
            mode: how the call is paid: ``subscription`` (Anthropic models through Claude
                Code's ``claude -p``), ``api`` or ``auto``; ``[auth] default_mode`` when None.
                The envelope's ``billing`` says which way it went.

        Returns:
            The envelope; ``success`` is False when no model could answer (``error`` says
            what was tried, ``retry_after_s`` when to retry).

        Raises:
            OperationError: no provider is configured, or no model is within the caps.
            UsageError: an unknown ``model`` whose provider cannot be told.
            ConfigError: invalid settings in ``config.toml``.
        """
        from attune_cli.core.ask import AskOptions, ask

        options = AskOptions(
            prompt=prompt,
            workflow=workflow,
            stage=stage,
            model=model,
            tier=tier,
            system=system,
            max_tokens=max_tokens,
            max_cost_usd=max_cost_usd,
            stream=on_text is not None,
            timeout_s=timeout_s,
            mode=mode,
        )
        return ask(self.workspace, options, on_text=on_text, environ=self.environ)

    def route(
        self,
        stage: str,
        *,
        workflow: str | None = None,
        max_cost_usd: float | None = None,
        max_latency_ms: float | None = None,
        min_success_rate: float | None = None,
        days: int | None = None,
        any_provider: bool = False,
    ) -> RoutingDecision:
        """The routing decision ``attune route best`` / ``explain`` would make now.

        Returns:
            The decision: ``chosen`` (None when nothing fits the caps), ``reason``,
            ``fallback``, ``candidates``.

        Raises:
            UsageError: a negative cap, a minimum outside 0..1, a window under one day.
            ConfigError: invalid ``[routing]`` settings.
        """
        from attune_cli.core.routing import AdaptiveModelRouter
        from attune_cli.core.telemetry.sqlite import TelemetryStore

        with TelemetryStore.open(self.workspace) as store:
            router = AdaptiveModelRouter.from_workspace(self.workspace, store, environ=self.environ)
            return router.get_best_model(
                workflow,
                stage,
                max_cost=max_cost_usd,
                max_latency_ms=max_latency_ms,
                min_success_rate=min_success_rate,
                days=days,
                any_provider=any_provider,
            )

    def record(
        self,
        *,
        workflow: str,
        stage: str,
        model: str,
        success: bool,
        latency_ms: float | None = None,
        cost_usd: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        provider: str | None = None,
        tier: str | None = None,
        error_kind: str | None = None,
        status: int | None = None,
    ) -> CallRecord:
        """Record a call made elsewhere, as ``attune telemetry record`` does.

        Provider, tier and cost are filled in from the registry when not given.

        Returns:
            The record as stored.

        Raises:
            UsageError: an empty name, or one holding control or bidirectional characters.
        """
        from attune_cli.core.telemetry.records import (
            CallRecord,
            validate_label,
            with_registry_defaults,
        )
        from attune_cli.core.telemetry.sqlite import TelemetryStore

        call = CallRecord(
            workflow=validate_label("workflow", workflow),
            stage=validate_label("stage", stage),
            model=validate_label("model", model),
            success=success,
            provider=validate_label("provider", provider) if provider is not None else None,
            tier=tier,
            error_kind=validate_label("error-kind", error_kind) if error_kind else None,
            status=status,
            latency_ms=latency_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
        )
        call = with_registry_defaults(call, self.workspace.registry)
        with TelemetryStore.open(self.workspace) as store:
            store.record(call)
        return call
