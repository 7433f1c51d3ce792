"""``ResilientExecutor``: one call that survives provider failures, and every attempt recorded.

For one prompt the executor plans a chain of models and walks it::

    chain    = the model asked for
             + the same tier on the other configured providers
             + the cheaper tiers, down to the cheapest
             + the dearer tiers, only with [executor] escalate = true
             (a provider is configured when it has a key or an explicit base URL; within a
             tier other providers come first; no model over max_cost_usd's worst case or
             refused by the caller's ``admissible`` is ever in it, the first one included)
    per model: endpoint breaker → model breaker → one HTTP attempt → both told the outcome
             → telemetry row
             → on a transient failure before the first streamed token: wait, try again
             → when retries are used up, or a breaker is open: the next model of the chain
    stop     : a full answer; a caller error (400/401/403/404/413/422 are never retried, and
               another model would refuse the same request); a failure after text was streamed
               (the reader has seen it: nothing is retried or replaced); the overall deadline;
               ``[executor] max_attempts`` network attempts (6 by default) in the whole call.

A base URL that cannot be reached (connection refused, DNS, connect timeout) costs one attempt:
its endpoint circuit opens and every model behind it is skipped, the current model's retries
included. A rate limit (429, whatever the body says) waits only as long as the server asks,
when that fits the deadline; otherwise the next model of the chain is tried, since a back-off
guessed by the client only adds load to a provider asking for less. The breaker's verdict on an
outcome comes from ``failures.classify``: outages count, caller errors and rate limits do not.

Retries follow the official SDKs: 408, 409, 429, 5xx, 529, timeouts and connection errors are
retried, an ``x-should-retry: true|false`` header overrides that verdict (except that a caller
error is never retried); the wait is the server's ``retry-after-ms`` or ``retry-after`` (seconds
or an HTTP date) when it is positive and at most 60 s, otherwise ``min(0.5 · 2ⁿ, 8) s`` less up
to 25 % jitter (0.5 s is ``[executor] retry_delay_s``). A wait that would end past the overall
deadline is not slept: the executor moves on to the next model instead, or stops when the
deadline has passed.

Time, sleep and randomness are injected, so tests check every delay without sleeping.
"""

from __future__ import annotations

import email.utils
import math
import random
import sqlite3
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from attune_cli.core.billing import Billing
from attune_cli.core.breaker.state import breaker_key, counts_as_failure, endpoint_key
from attune_cli.core.config import get_number, table
from attune_cli.core.errors import (
    AttuneError,
    BreakerOpenError,
    OperationError,
    ProviderError,
    UsageError,
)
from attune_cli.core.failures import FailureClass, clamp_retry_after_s, classify
from attune_cli.core.money import format_usd
from attune_cli.core.notices import Caution
from attune_cli.core.providers import (
    CallCancelled,
    CallFailed,
    ChatRequest,
    Completion,
    Endpoint,
    Message,
    adapter_for,
    resolve_endpoints,
)
from attune_cli.core.providers.base import USER_AGENT
from attune_cli.core.providers.deadline import AttemptLimits, install
from attune_cli.core.registry import CLAUDE_CODE, TIERS, Registry, next_tier, previous_tier
from attune_cli.core.response import BREAKER_OPEN, Attempt, LLMResponse
from attune_cli.core.telemetry.records import CallRecord

if TYPE_CHECKING:
    from attune_cli.core.providers.claude_code import ClaudeCodeAdapter
    from attune_cli.core.workspace import Workspace

__all__ = [
    "Plan",
    "ResilientExecutor",
    "RetryPolicy",
    "Target",
    "Timeouts",
    "failure_error",
    "make_client",
    "retry_after_s",
]

CANCELLED = "cancelled"
"""The ``error_kind`` of an attempt abandoned because the caller stopped waiting."""

CHARS_PER_TOKEN = 4
"""A rough prompt-size estimate, used only to keep fallbacks under ``max_cost_usd``."""


def worst_case_tokens(prompt: str, system: str | None, max_tokens: int) -> tuple[int, int]:
    """(input, output) tokens a call may be billed at most: the prompt's size estimate and
    ``max_tokens`` (what cost caps and budgets hold a call to)."""
    return len(prompt + (system or "")) // CHARS_PER_TOKEN + 1, max_tokens


class Breaker(Protocol):
    """What the executor needs of a circuit breaker (``attune_cli.core.breaker``)."""

    def before_call(self, key: str) -> Any: ...

    def after_call(
        self, permit: Any, *, failure: bool | None, retry_after_s: float | None = None
    ) -> None: ...


class Recorder(Protocol):
    """What the executor needs of a telemetry store (``attune_cli.core.telemetry``)."""

    def record(self, call: CallRecord) -> object:
        """Store ``call``; a non-None result is a note (it was spooled instead: say so once)."""
        ...


def retry_after_s(headers: Mapping[str, str], now_s: float) -> float | None:
    """The server's retry hint in seconds: ``retry-after-ms``, else ``retry-after``.

    Args:
        headers: response headers (lower-case names).
        now_s: epoch seconds now, to turn an HTTP date into a wait.

    Returns:
        The wait the server asked for, clamped to ``[0, 1 h]`` (``clamp_retry_after_s``: a
        date in the past is 0, ``Retry-After: 1000000000`` is an hour), or None when it gave
        none or nothing readable.
    """
    return clamp_retry_after_s(_server_hint_s(headers, now_s))


def _server_hint_s(headers: Mapping[str, str], now_s: float) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
            if math.isfinite(value):
                return value
        except ValueError:
            pass
    text = headers.get("retry-after", "").strip()
    if not text:
        return None
    try:
        value = float(text)
        return value if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.timestamp() - now_s


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a model again (``[executor]`` in config.toml).

    Attributes:
        max_retries: retries per model after its first attempt.
        base_delay_s: the first back-off, doubled on each retry (``retry_delay_s``).
        max_delay_s: the longest back-off.
        max_retry_after_s: the longest server-requested wait honoured as given.
        jitter: the share of a back-off randomly taken off (spreads synchronised clients).
        deadline_s: the whole call, every model and wait included, ends by then.
        max_attempts: network attempts per call, every model and retry of the chain included.
        escalate: whether the chain may go on to a dearer tier once its tier and the cheaper
            ones are exhausted (still within ``max_cost_usd``).
    """

    max_retries: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0
    jitter: float = 0.25
    deadline_s: float = 300.0
    max_attempts: int = 6
    escalate: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path) -> RetryPolicy:
        """Read ``[executor]``: ``max_retries``, ``retry_delay_s``, ``deadline_s``,
        ``max_attempts``, ``escalate``.

        Raises:
            ConfigError: a value of the wrong type or out of range, naming ``executor.KEY``.
        """
        section = table(config, path, "executor")
        defaults = cls()
        return cls(
            max_retries=int(
                get_number(
                    section,
                    "max_retries",
                    defaults.max_retries,
                    path=path,
                    prefix="executor",
                    minimum=0,
                    maximum=10,
                    integer=True,
                )
            ),
            base_delay_s=get_number(
                section,
                "retry_delay_s",
                defaults.base_delay_s,
                path=path,
                prefix="executor",
                minimum=0,
                maximum=defaults.max_delay_s,
            ),
            deadline_s=get_number(
                section, "deadline_s", defaults.deadline_s, path=path, prefix="executor", minimum=1
            ),
            max_attempts=int(
                get_number(
                    section,
                    "max_attempts",
                    defaults.max_attempts,
                    path=path,
                    prefix="executor",
                    minimum=1,
                    maximum=100,
                    integer=True,
                )
            ),
            escalate=_get_bool(section, "escalate", defaults.escalate, path=path),
        )

    def retryable(self, failure: CallFailed) -> bool:
        """Whether the same model should be tried again after ``failure``."""
        if failure.caller_error:
            return False
        verdict = failure.should_retry_header
        if verdict is not None:
            return verdict
        status = failure.status
        if status is not None and status != 200:
            return status in (408, 409, 429) or status >= 500
        return failure.kind in ("timeout", "connection", "rate_limit", "overloaded", "server_error")

    def delay_s(self, retry_index: int, hint_s: float | None, rand: float) -> float:
        """The wait before retry number ``retry_index`` (0 for the first retry).

        Args:
            retry_index: how many retries of this model came before.
            hint_s: the server's wait (``retry_after_s``), None when it gave none.
            rand: a uniform random number in [0, 1) for the jitter.
        """
        if hint_s is not None and 0 < hint_s <= self.max_retry_after_s:
            return hint_s
        backoff_s = min(self.base_delay_s * 2.0**retry_index, self.max_delay_s)
        return backoff_s * (1 - self.jitter * rand)


@dataclass(frozen=True)
class Timeouts:
    """Per-attempt HTTP timeouts (``[executor]`` in config.toml), capped by the deadline.

    Every socket read of an attempt waits at most the phase's limit and never past the
    overall deadline (``RetryPolicy.deadline_s`` or ``ask --timeout``), however slowly the
    server sends (``attune_cli.core.providers.deadline``).

    Attributes:
        connect_s: to open a connection.
        first_byte_s: from the request sent to the first bytes of the answer (its headers).
        read_s: between two reads of the answer (for a stream: between two chunks).
        write_s: to send the request.
    """

    connect_s: float = 10.0
    first_byte_s: float = 60.0
    read_s: float = 60.0
    write_s: float = 30.0

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path) -> Timeouts:
        """Read ``connect_timeout_s``, ``first_byte_timeout_s`` and ``read_timeout_s``.

        ``first_byte_timeout_s`` defaults to ``read_timeout_s`` when only that one is set, as
        it covered the wait for the first byte before the two were told apart.

        Raises:
            ConfigError: a value that is not a positive number, naming ``executor.KEY``.
        """
        section = table(config, path, "executor")
        defaults = cls()

        def number(key: str, default: float) -> float:
            return get_number(section, key, default, path=path, prefix="executor", minimum=0.01)

        read_s = number("read_timeout_s", defaults.read_s)
        first_byte_default = read_s if "read_timeout_s" in section else defaults.first_byte_s
        return cls(
            connect_s=number("connect_timeout_s", defaults.connect_s),
            first_byte_s=number("first_byte_timeout_s", first_byte_default),
            read_s=read_s,
        )

    def for_attempt(self, remaining_s: float) -> AttemptLimits:
        """These timeouts for one attempt with ``remaining_s`` left to the deadline."""
        return AttemptLimits(
            connect_s=self.connect_s,
            first_byte_s=self.first_byte_s,
            between_reads_s=self.read_s,
            write_s=self.write_s,
            total_s=max(remaining_s, 0.001),
        )

    def capped(self, remaining_s: float) -> httpx.Timeout:
        """These timeouts as httpx's, none longer than ``remaining_s``."""
        return self.for_attempt(remaining_s).httpx_timeout()


@dataclass(frozen=True)
class Target:
    """One model of a fallback chain and the endpoint that serves it.

    ``billing`` is ``subscription`` for a model called through Claude Code (its endpoint is
    the ``claude-code:`` one, its breaker ``claude-code/MODEL``), else ``api``.
    """

    model: str
    endpoint: Endpoint
    tier: str | None
    billing: Billing = Billing.API

    @property
    def provider(self) -> str:
        return self.endpoint.name

    @property
    def subscription(self) -> bool:
        return self.billing is Billing.SUBSCRIPTION

    @property
    def label(self) -> str:
        via = ", subscription" if self.subscription else ""
        return f"{self.model} ({self.provider}{via})"

    @property
    def breaker_key(self) -> str:
        """The model's circuit; the subscription path has its own."""
        return breaker_key(CLAUDE_CODE if self.subscription else self.provider, self.model)


@dataclass(frozen=True)
class Plan:
    """The chain ``execute`` walks for one prompt, and what it left out.

    Attributes:
        chain: the models to try, in order.
        unconfigured: models of the chain whose provider is not configured.
        over_caps: models the caps ruled out, each with a few words saying which cap and why.
    """

    chain: tuple[Target, ...]
    unconfigured: tuple[Target, ...] = ()
    over_caps: tuple[tuple[Target, str], ...] = ()


@dataclass
class _Tried:
    """What happened to one model of the chain, for the closing message.

    ``cut_short`` says why its tries ended early: ``caller_error``, ``streamed``, ``deadline``,
    ``attempts`` (the call's attempt budget), ``rate_limit`` (moved on rather than waited) or
    ``unreachable`` (its endpoint could not be reached).
    """

    target: Target
    sent: int = 0
    last: CallFailed | None = None
    open_for_s: float | None = None
    server_wait_s: float | None = None
    cut_short: str | None = None
    endpoint_skipped: bool = False

    @property
    def wait_s(self) -> float | None:
        """When this model may answer again: its open circuit, else the server's last hint."""
        return self.open_for_s if self.open_for_s is not None else self.server_wait_s


@dataclass
class _Call:
    """The state of one ``execute`` call."""

    request: ChatRequest
    workflow: str
    stage: str
    budget_s: float
    started: float
    on_text: Callable[[str], None] | None
    notice: Callable[[str], None]
    max_attempts: int = 6
    cancelled: Callable[[], bool] | None = None
    streamed: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    tried: list[_Tried] = field(default_factory=list)
    # Base URLs found unreachable in this call (value: when their circuit lets calls through,
    # when known). Consulted before the breaker, so they hold even without one.
    down: dict[str, float | None] = field(default_factory=dict)

    @property
    def deadline(self) -> float:
        return self.started + self.budget_s

    @property
    def sent(self) -> int:
        """Network attempts made so far, every model included."""
        return sum(t.sent for t in self.tried)

    @property
    def attempts_left(self) -> bool:
        return self.sent < self.max_attempts

    @property
    def retry_after_s(self) -> float | None:
        """The soonest any model of the chain may answer again, when known."""
        waits = [t.wait_s for t in self.tried if t.wait_s is not None]
        return min(waits) if waits else None

    def emit(self, text: str) -> None:
        self.streamed.append(text)
        if self.on_text:
            self.on_text(text)
        self.check_cancelled()

    def check_cancelled(self) -> None:
        """Raise ``CallCancelled`` once the caller has stopped waiting."""
        if self.cancelled is not None and self.cancelled():
            raise CallCancelled("the caller stopped waiting")


class ResilientExecutor:
    """Calls models through the circuit breaker, with retries, fallback and telemetry.

    Usage::

        with ResilientExecutor.from_workspace(workspace, store=store, breaker=breaker) as ex:
            response = ex.execute("Summarise this diff", model="claude-haiku-4-5",
                                  workflow="review", stage="triage", on_text=print_piece)

    Args:
        registry: models, tiers and prices.
        endpoints: how to reach each provider (``resolve_endpoints``).
        breaker: the circuit breaker; None calls without one.
        store: where each attempt is recorded; None records nothing.
        client: the shared httpx client; one with keep-alive is made (and closed) when None.
        policy: retries and the overall deadline.
        timeouts: per-attempt HTTP timeouts.
        clock: monotonic seconds, for latency and the deadline.
        wall_clock: epoch seconds, for ``retry-after`` HTTP dates.
        sleep: how to wait between retries.
        rand: uniform [0, 1) numbers for the back-off jitter.
        subscription: the Claude Code adapter subscription calls go through; None when no
            ``claude`` executable was found.
    """

    def __init__(
        self,
        registry: Registry,
        endpoints: Mapping[str, Endpoint],
        *,
        breaker: Breaker | None = None,
        store: Recorder | None = None,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        subscription: ClaudeCodeAdapter | None = None,
    ) -> None:
        self.registry = registry
        self.subscription = subscription
        self.endpoints = dict(endpoints)
        self.breaker = breaker
        self.store = store
        self.policy = policy or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self._owns_client = client is None
        self.client = client or make_client(self.timeouts)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rand = rand
        self._adapters = {name: adapter_for(endpoint) for name, endpoint in self.endpoints.items()}
        self._store_warned = False

    @classmethod
    def from_workspace(
        cls,
        workspace: Workspace,
        *,
        breaker: Breaker | None = None,
        store: Recorder | None = None,
        environ: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
    ) -> ResilientExecutor:
        """An executor with the workspace's registry, keys, base URLs and ``[executor]`` settings.

        Args:
            workspace: paths, config and registry.
            breaker: the circuit breaker to consult (None: none).
            store: the telemetry store to record into (None: nothing recorded).
            environ: the environment for keys and base URLs; ``os.environ`` when None.
            client: a shared httpx client; a new one when None.

        Raises:
            ConfigError: an invalid ``[executor]`` or credentials file.
            PermissionsError: ``credentials.toml`` is readable by others.
        """
        import os

        from attune_cli.core.credentials import resolve_key

        environment = os.environ if environ is None else environ
        path = workspace.paths.config_file

        def key_for(provider: Any) -> str | None:
            resolved = resolve_key(provider, workspace.paths, environment)
            return resolved.value if resolved else None

        endpoints = resolve_endpoints(workspace.registry, workspace.config, environment, key_for)
        return cls(
            workspace.registry,
            endpoints,
            breaker=breaker,
            store=store,
            client=client,
            policy=RetryPolicy.from_config(workspace.config, path),
            timeouts=Timeouts.from_config(workspace.config, path),
            subscription=subscription_adapter(workspace, endpoints, environment),
        )

    def __enter__(self) -> ResilientExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this executor made it."""
        if self._owns_client:
            self.client.close()

    @property
    def configured_providers(self) -> list[str]:
        """Names of the providers with a key or an explicit base URL."""
        return [name for name, endpoint in self.endpoints.items() if endpoint.configured]

    def target(self, model: str) -> Target:
        """The target for ``model``: its registry provider, or the one guessed from its name.

        A model the registry does not know goes to the only configured provider when there is
        exactly one (``--model llama3.1:8b`` with ``OPENAI_BASE_URL`` pointing at Ollama).

        Raises:
            UsageError: the provider of an unknown model cannot be told.
        """
        known = self.registry.model(model)
        provider = self.registry.provider_of(model)
        if provider is None and len(self.configured_providers) == 1:
            provider = self.configured_providers[0]
        if provider is None or provider not in self.endpoints:
            raise UsageError(
                f"model {model!r} is not in the registry and its provider cannot be told "
                "from its name",
                hint=f'add [models."{model}"] with provider and tier to config.toml',
            )
        return Target(model, self.endpoints[provider], known.tier if known else None)

    def chain_for(
        self,
        model: str,
        *,
        fallback: bool = True,
        max_cost_usd: float | None = None,
        worst_case_tokens: tuple[int, int] = (0, 0),
        admissible: Callable[[str], bool] | None = None,
        admissible_cap: str = "the routing caps",
        billing: Billing = Billing.API,
        api_fallback: bool = False,
        paid_cap_usd: float | None = None,
    ) -> Plan:
        """The chain of models to try for ``model``: the model, then its fallbacks, within the caps.

        Fallbacks: the same tier on the other configured providers, then the cheaper tiers,
        then (only with ``[executor] escalate = true``) the dearer ones; within a tier, other
        providers before ``model``'s own (the provider that just failed is the likeliest to
        fail again). Caps apply to every model, ``model`` included.

        Args:
            model: the model asked for; first when its provider is configured and it is within
                the caps.
            fallback: whether to add the rest of the chain.
            max_cost_usd: models whose worst-case price is above this are left out.
            worst_case_tokens: (input, output) tokens for that worst case.
            admissible: models for which this returns False are left out (e.g. the router's
                latency cap); None admits every model.
            admissible_cap: what ``admissible`` enforces, in a few words for messages.
            billing: ``subscription`` sends the chain's Anthropic models through Claude Code
                (and only them, unless ``api_fallback``).
            api_fallback: after the subscription targets, the chain goes on through the
                pay-per-token APIs.
            paid_cap_usd: pay-per-token models whose worst-case price is above this are left
                out (what a budget reserved for them); models on the subscription are not.

        Raises:
            OperationError: ``fallback`` is off and the model's provider is not configured;
                the subscription serves none of the chain's models and the API may not
                stand in.
            UsageError: the provider of an unknown model cannot be told.
        """
        first = self.target(model)
        subscribed = billing is Billing.SUBSCRIPTION
        if not fallback and not first.endpoint.configured and not subscribed:
            raise _not_configured(first)
        candidates = [first]
        if fallback and first.tier in TIERS:
            candidates += self._fallbacks(first, escalate=self.policy.escalate)
        if subscribed:
            candidates = self._subscription_chain(candidates, first, api_fallback=api_fallback)
        chain: list[Target] = []
        over_caps: list[tuple[Target, str]] = []
        for target in candidates:
            if not target.endpoint.configured:
                continue
            cost_usd = self._worst_case_usd(target, worst_case_tokens)
            if max_cost_usd is not None and cost_usd > max_cost_usd:
                over_caps.append(
                    (
                        target,
                        f"could cost {format_usd(cost_usd)}, over the cost cap "
                        f"{format_usd(max_cost_usd)}",
                    )
                )
            elif admissible is not None and not admissible(target.model):
                over_caps.append((target, f"ruled out by {admissible_cap}"))
            elif paid_cap_usd is not None and not target.subscription and cost_usd > paid_cap_usd:
                over_caps.append(
                    (
                        target,
                        f"could cost {format_usd(cost_usd)} per token, over what the budget "
                        f"holds for it ({format_usd(paid_cap_usd)})",
                    )
                )
            else:
                chain.append(target)
        return Plan(
            tuple(chain),
            tuple(t for t in candidates if not t.endpoint.configured),
            tuple(over_caps),
        )

    def _subscription_chain(
        self, candidates: list[Target], first: Target, *, api_fallback: bool
    ) -> list[Target]:
        """``candidates`` with their Anthropic models on the subscription, first."""
        adapter = self.subscription
        if adapter is None:
            from attune_cli.core.claude_cli import INSTALL_HINT

            raise OperationError(
                "the subscription is called through Claude Code, and no `claude` executable "
                "was found on PATH",
                hint=INSTALL_HINT,
            )
        on_plan = [
            Target(t.model, adapter.endpoint, t.tier, Billing.SUBSCRIPTION)
            for t in candidates
            if t.endpoint.provider.api == "anthropic"
        ]
        if api_fallback:
            return on_plan + candidates
        if not on_plan:
            raise OperationError(
                f"{first.model} is not an Anthropic model, so the subscription cannot serve it, "
                "and nothing goes to a pay-per-token API in mode subscription",
                hint="use --mode api, or set [auth] api_fallback = true",
            )
        return on_plan

    def execute(
        self,
        prompt: str,
        *,
        model: str,
        workflow: str = "adhoc",
        stage: str = "general",
        system: str | None = None,
        max_tokens: int = 1024,
        fallback: bool = True,
        max_cost_usd: float | None = None,
        admissible: Callable[[str], bool] | None = None,
        admissible_cap: str = "the routing caps",
        stream: bool = True,
        on_text: Callable[[str], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        deadline_s: float | None = None,
        messages: Sequence[Message] = (),
        cancelled: Callable[[], bool] | None = None,
        billing: Billing = Billing.API,
        api_fallback: bool = False,
        paid_cap_usd: float | None = None,
    ) -> LLMResponse:
        """Ask ``model`` (then its fallbacks) for an answer to ``prompt``.

        Args:
            prompt: the user message.
            model: the model to ask first.
            workflow: recorded with every attempt.
            stage: recorded with every attempt.
            system: an optional system prompt.
            max_tokens: the most output tokens.
            fallback: whether other models may answer when this one cannot.
            max_cost_usd: no model whose worst-case price (prompt estimate + ``max_tokens``)
                is above this is called, ``model`` included.
            admissible: no model for which this returns False is called (the caller builds
                it from its routing decision, e.g. a latency cap); None admits every model.
            admissible_cap: what ``admissible`` enforces, for messages
                (``"--max-latency 800 ms"``).
            stream: stream the answer (``on_text`` gets it piece by piece).
            on_text: called with each piece of text as it arrives.
            on_notice: called with one-line notes for the person (retrying, falling back).
            deadline_s: the whole call's budget; ``policy.deadline_s`` when None.
            messages: a whole conversation to send instead of one user turn holding
                ``prompt`` (the gateway's clients send these); ``prompt`` then only sizes
                the worst-case cost.
            cancelled: polled before each attempt and after each streamed piece; once it
                returns True the attempt in flight is abandoned (its connection closed),
                recorded with the error kind ``cancelled`` and ``CallCancelled`` raised.
            billing: how the call is paid (``attune_cli.core.billing``); ``subscription``
                calls Anthropic models through Claude Code.
            api_fallback: a subscription call may go on to the pay-per-token APIs.
            paid_cap_usd: no pay-per-token model whose worst-case price is above this is
                called (a budget's reservation); subscription attempts are not capped by it.

        Returns:
            The envelope; ``success`` is False when no model could answer, and ``error`` then
            says what was tried and when to retry (``failure_error`` turns it into the error
            to raise).

        Raises:
            OperationError: no configured provider can serve the chain, or no model is within
                the caps ("no model within the caps"); nothing was sent.
            UsageError: the provider of an unknown model cannot be told.
            CallCancelled: ``cancelled`` turned True; the attempt in flight was recorded.
        """
        worst_case = worst_case_tokens(prompt, system, max_tokens)
        planned = self.chain_for(
            model,
            fallback=fallback,
            max_cost_usd=max_cost_usd,
            worst_case_tokens=worst_case,
            admissible=admissible,
            admissible_cap=admissible_cap,
            billing=billing,
            api_fallback=api_fallback,
            paid_cap_usd=paid_cap_usd,
        )
        chain, skipped = planned.chain, planned.unconfigured
        notice = on_notice or (lambda _text: None)
        if not chain and planned.over_caps:
            ruled_out = "; ".join(f"{t.label} {why}" for t, why in planned.over_caps)
            raise OperationError(
                f"no model within the caps: {ruled_out}",
                hint="raise the cap, lower --max-tokens, or shorten the prompt",
            )
        if not chain:
            raise _not_configured(skipped[0] if skipped else self.target(model))
        if skipped and skipped[0].model == model:
            notice(f"{skipped[0].label} skipped: {skipped[0].provider} is not configured")
        for target, why in planned.over_caps:
            if target.model == model:
                notice(f"{target.label} skipped: it {why}")
        started = self._clock()
        call = _Call(
            request=ChatRequest(
                model, prompt, system=system, max_tokens=max_tokens, messages=tuple(messages)
            ),
            workflow=workflow,
            stage=stage,
            budget_s=deadline_s if deadline_s is not None else self.policy.deadline_s,
            started=started,
            on_text=on_text,
            notice=notice,
            max_attempts=self.policy.max_attempts,
            cancelled=cancelled,
        )
        for index, target in enumerate(chain):
            if index and (self._clock() >= call.deadline or not call.attempts_left):
                break
            tried = _Tried(target)
            call.tried.append(tried)
            if target.endpoint.base_url in call.down:
                self._skip_endpoint(call, tried, call.down[target.endpoint.base_url])
                continue
            if index:
                paid = chain[index - 1].subscription and not target.subscription
                notice(
                    f"falling back to {target.label}"
                    + (": billed per token ([auth] api_fallback = true)" if paid else "")
                )
            more = any(t.endpoint.base_url not in call.down for t in chain[index + 1 :])
            completion = self._try_model(call, tried, stream, more_models=more)
            if completion is not None:
                used = index > 0 or target.model != model
                return self._success(call, target, completion, fallback_used=used)
            if tried.cut_short in ("caller_error", "streamed"):
                break
        return self._failure(call, chain[0])

    def _try_model(
        self, call: _Call, tried: _Tried, stream: bool, *, more_models: bool
    ) -> Completion | None:
        """Try one model until it answers, fails for good, or the call's budgets run out.

        Args:
            call: the call's state.
            tried: this model's record.
            stream: stream the answer.
            more_models: whether a later model of the chain could still be tried (a rate
                limit with no usable wait moves on instead of backing off).
        """
        target = tried.target
        adapter: Any = self.subscription if target.subscription else self._adapters[target.provider]
        request = ChatRequest(
            target.model,
            call.request.prompt,
            system=call.request.system,
            max_tokens=call.request.max_tokens,
            messages=call.request.messages,
        )
        key = target.breaker_key
        endpoint = endpoint_key(target.endpoint.base_url)
        retries = 0
        delay_s = 0.0
        while True:
            call.check_cancelled()
            if call.deadline - self._clock() <= 0:
                tried.cut_short = "deadline"
                return None
            if not call.attempts_left:
                tried.cut_short = "attempts"
                return None
            # Ask the breaker before waiting: a failure just recorded may have opened it, and
            # then the wait would only end in a refusal.
            permits = self._permits(call, tried, key, endpoint)
            if permits is None:
                return None
            permit, endpoint_permit = permits
            began = self._clock()
            try:
                if delay_s:
                    self._sleep(delay_s)
                    began = self._clock()
                completion: Completion = adapter.call(
                    self.client,
                    request,
                    stream=stream,
                    on_text=call.emit,
                    limits=self.timeouts.for_attempt(call.deadline - began),
                    expired=lambda: self._expired(call),
                )
            except CallFailed as failure:
                latency_ms = (self._clock() - began) * 1000
                hint_s = retry_after_s(failure.headers, self._wall_clock())
                # An endpoint that cannot be reached is its own circuit's failure, not the
                # model's (no request reached it); the endpoint hears only reachability.
                verdict = counts_as_failure(failure.kind, failure.status)
                self._settle(permit, None if failure.unreachable else verdict, hint_s)
                self._settle(
                    endpoint_permit,
                    None if failure.exhausts_endpoint else failure.unreachable,
                    None,
                )
                tried.sent += 1
                tried.last = failure
                if hint_s is not None and hint_s > 0:
                    tried.server_wait_s = hint_s
                self._attempted(call, target, failure.status, failure.kind, latency_ms)
                if failure.unreachable:
                    # Every model behind this base URL would fail the same way, retries included.
                    tried.cut_short = "unreachable"
                    call.down[target.endpoint.base_url] = None
                    call.notice(
                        f"{target.endpoint.base_url} cannot be reached: skipping every model "
                        "behind it"
                    )
                    return None
                if failure.exhausts_endpoint:
                    # A reached usage limit or a missing login: every model on the
                    # subscription would answer the same until it is lifted.
                    tried.cut_short = "exhausted"
                    call.down[target.endpoint.base_url] = hint_s
                    if not call.streamed:
                        return None
                if call.streamed:
                    tried.cut_short = "streamed"
                    return None
                if failure.caller_error:
                    tried.cut_short = "caller_error"
                    return None
                if not self.policy.retryable(failure) or retries >= self.policy.max_retries:
                    return None
                if not call.attempts_left:
                    tried.cut_short = "attempts"
                    return None
                if more_models and self._move_on_from_rate_limit(call, tried, failure, hint_s):
                    tried.cut_short = "rate_limit"
                    return None
                delay_s = self.policy.delay_s(retries, hint_s, self._rand())
                if self._clock() + delay_s >= call.deadline:
                    tried.cut_short = "deadline"
                    return None
                retries += 1
                call.notice(
                    f"{target.label}: {_status_text(failure)}; retrying in {delay_s:.2g} s "
                    f"(retry {retries} of {self.policy.max_retries})"
                )
                continue
            except CallCancelled:
                # The caller went away: the provider did nothing wrong. The attempt is a row
                # (kind ``cancelled``, counted against no model) and the probe lease goes back.
                self._settle(permit, None, None)
                self._settle(endpoint_permit, None, None)
                tried.sent += 1
                latency_ms = (self._clock() - began) * 1000
                self._attempted(call, target, None, CANCELLED, latency_ms)
                raise
            except BaseException:
                # Cancelled (Ctrl-C): the provider did nothing wrong; hand back a probe lease.
                self._settle(permit, None, None)
                self._settle(endpoint_permit, None, None)
                raise
            latency_ms = (self._clock() - began) * 1000
            self._settle(permit, False, None)
            self._settle(endpoint_permit, False, None)
            tried.sent += 1
            self._attempted(call, target, completion.status, None, latency_ms, completion)
            return completion

    def _expired(self, call: _Call) -> bool:
        """Polled between streamed events: the deadline passed (raises once cancelled)."""
        call.check_cancelled()
        return self._clock() >= call.deadline

    def _permits(
        self, call: _Call, tried: _Tried, key: str, endpoint: str
    ) -> tuple[Any, Any] | None:
        """Leave from the endpoint's breaker and the model's, or None when either refused."""
        if self.breaker is None:
            return None, None
        target = tried.target
        try:
            endpoint_permit = self.breaker.before_call(endpoint)
        except BreakerOpenError as exc:
            call.down[target.endpoint.base_url] = exc.retry_after_s
            call.notice(
                f"{target.endpoint.base_url}: circuit open, retry in {exc.retry_after_s:.0f} s; "
                "skipping every model behind it"
            )
            self._skip_endpoint(call, tried, exc.retry_after_s)
            return None
        try:
            permit = self.breaker.before_call(key)
        except BreakerOpenError as exc:
            self._settle(endpoint_permit, None, None)
            tried.open_for_s = exc.retry_after_s
            call.attempts.append(Attempt(target.model, target.provider, None, BREAKER_OPEN, 0))
            call.notice(f"{target.label}: circuit open, retry in {exc.retry_after_s:.0f} s")
            return None
        return permit, endpoint_permit

    def _skip_endpoint(self, call: _Call, tried: _Tried, open_for_s: float | None) -> None:
        """Record a model skipped because its endpoint cannot be reached; nothing is sent."""
        tried.endpoint_skipped = True
        tried.open_for_s = open_for_s
        target = tried.target
        call.attempts.append(Attempt(target.model, target.provider, None, BREAKER_OPEN, 0))

    def _move_on_from_rate_limit(
        self, call: _Call, tried: _Tried, failure: CallFailed, hint_s: float | None
    ) -> bool:
        """Whether a rate-limited model should give way to the next one instead of a retry.

        It waits only when the server said how long and the wait fits the policy and the
        deadline; guessing with a back-off would add load to a provider asking for less.
        """
        if classify(failure.status, failure.kind) is not FailureClass.RATE_LIMIT:
            return False
        fits = (
            hint_s is not None
            and 0 < hint_s <= self.policy.max_retry_after_s
            and self._clock() + hint_s < call.deadline
        )
        if fits:
            return False
        wait = f" for {hint_s:.0f} s" if hint_s is not None and hint_s > 0 else ""
        call.notice(f"{tried.target.label}: rate limited{wait}; trying the next model instead")
        return True

    def _settle(self, permit: Any, failure: bool | None, retry_after_s: float | None) -> None:
        if permit is not None and self.breaker is not None:
            self.breaker.after_call(permit, failure=failure, retry_after_s=retry_after_s)

    def _attempted(
        self,
        call: _Call,
        target: Target,
        status: int | None,
        error_kind: str | None,
        latency_ms: float,
        completion: Completion | None = None,
    ) -> None:
        call.attempts.append(Attempt(target.model, target.provider, status, error_kind, latency_ms))
        if self.store is None:
            return
        input_tokens = completion.input_tokens if completion else None
        output_tokens = completion.output_tokens if completion else None
        record = CallRecord(
            billing=target.billing.value,
            workflow=call.workflow,
            stage=call.stage,
            model=target.model,
            success=error_kind is None,
            provider=target.provider,
            tier=target.tier,
            error_kind=error_kind,
            status=status,
            latency_ms=round(latency_ms, 3),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self._attempt_cost_usd(target.model, completion),
            attempt=sum(1 for a in call.attempts if a.sent),
        )
        try:
            spooled = self.store.record(record)
        except (sqlite3.Error, OSError, AttuneError) as exc:
            # Losing a telemetry row must not lose the answer the person is waiting for.
            if not self._store_warned:
                self._store_warned = True
                call.notice(Caution(f"telemetry not recorded ({exc}); the call is unaffected"))
            return
        if spooled is not None and not self._store_warned:
            self._store_warned = True
            call.notice(Caution(f"telemetry: {spooled}; the call itself is unaffected"))

    def _success(
        self, call: _Call, target: Target, completion: Completion, *, fallback_used: bool
    ) -> LLMResponse:
        return LLMResponse(
            content=completion.content,
            model=target.model,
            provider=target.provider,
            tier=target.tier,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cost_usd=self._attempt_cost_usd(target.model, completion),
            latency_ms=(self._clock() - call.started) * 1000,
            success=True,
            attempts=tuple(call.attempts),
            fallback_used=fallback_used,
            billing=target.billing.value,
        )

    def _failure(self, call: _Call, first: Target) -> LLMResponse:
        last = next((t.last for t in reversed(call.tried) if t.last is not None), None)
        all_open = all(t.sent == 0 and t.open_for_s is not None for t in call.tried)
        if last is not None and any(t.cut_short == "caller_error" for t in call.tried):
            error = f"{last.message} (not retried: the request itself was refused)"
            kind = last.kind
        elif last is not None and any(t.cut_short == "streamed" for t in call.tried):
            error = f"the answer broke off after it had started: {last.message}"
            kind = last.kind
        elif last is not None and last.exhausts_endpoint:
            # The subscription could not take the call and nothing else was allowed to.
            error = last.message
            kind = last.kind
        else:
            kind = BREAKER_OPEN if all_open or last is None else last.kind
            error = self._exhausted_message(call)
        refused = last is not None and last.caller_error
        wait_s = None if refused else call.retry_after_s
        return LLMResponse(
            content="".join(call.streamed),
            model=first.model,
            provider=first.provider,
            tier=first.tier,
            input_tokens=None,
            output_tokens=None,
            cost_usd=None,
            latency_ms=(self._clock() - call.started) * 1000,
            success=False,
            error=error,
            attempts=tuple(call.attempts),
            fallback_used=False,
            error_kind=kind,
            retry_after_s=wait_s,
            billing=first.billing.value,
        )

    def _exhausted_message(self, call: _Call) -> str:
        parts = []
        for tried in call.tried:
            url = tried.target.endpoint.base_url
            if tried.endpoint_skipped and tried.target.subscription:
                parts.append(f"{tried.target.label}: skipped, the subscription cannot answer")
                continue
            if tried.endpoint_skipped:
                state = "circuit open" if tried.open_for_s is not None else "unreachable"
                parts.append(f"{tried.target.label}: skipped, {url} {state}")
                continue
            if tried.sent == 0 and tried.open_for_s is not None:
                parts.append(f"{tried.target.label}: circuit open")
                continue
            if tried.sent == 0:
                parts.append(f"{tried.target.label}: not tried, the deadline had passed")
                continue
            attempts = "1 attempt" if tried.sent == 1 else f"{tried.sent} attempts"
            last = f", last {_status_text(tried.last)}" if tried.last else ""
            opened = ", then its circuit opened" if tried.open_for_s is not None else ""
            if tried.cut_short == "rate_limit":
                opened = ", moved on"
            parts.append(f"{tried.target.label}: {attempts}{last}{opened}")
        message = "no model could answer; tried " + "; ".join(parts)
        if any(t.cut_short == "attempts" for t in call.tried) or not call.attempts_left:
            message += (
                f" (stopped after {call.sent} attempts, [executor] max_attempts = "
                f"{call.max_attempts})"
            )
        if any(t.cut_short == "deadline" for t in call.tried) or (
            len(call.tried) and self._clock() >= call.deadline
        ):
            message += f" (stopped at the {call.budget_s:g} s deadline)"
        wait_s = call.retry_after_s
        if wait_s is not None:
            message += f". Retry in {max(1, math.ceil(wait_s))} s"
        else:
            message += ". Retry later"
        return message

    def _fallbacks(self, first: Target, *, escalate: bool) -> list[Target]:
        chain: list[Target] = []
        seen = {first.model}

        def add_tier(tier: str) -> None:
            # Other providers first: the one that just failed is the likeliest to fail again.
            for other in sorted(
                self.registry.by_tier(tier), key=lambda m: m.provider == first.provider
            ):
                if other.id not in seen and other.provider in self.endpoints:
                    seen.add(other.id)
                    chain.append(Target(other.id, self.endpoints[other.provider], other.tier))

        assert first.tier is not None
        add_tier(first.tier)
        tier = previous_tier(first.tier)
        while tier is not None:
            add_tier(tier)
            tier = previous_tier(tier)
        if escalate:
            tier = next_tier(first.tier)
            while tier is not None:
                add_tier(tier)
                tier = next_tier(tier)
        return chain

    def _worst_case_usd(self, target: Target, tokens: tuple[int, int]) -> float:
        cost = self.registry.cost_usd(target.model, *tokens)
        return cost if cost is not None else 0.0

    def _attempt_cost_usd(self, model: str, completion: Completion | None) -> float | None:
        """The price of an attempt: registry prices × tokens, else what the provider reported.

        A subscription call costs the plan nothing per token; its price here is what the same
        tokens would have cost on the API (``billing`` says the plan covered it).
        """
        if completion is None:
            return None
        cost = self._cost_usd(model, completion.input_tokens, completion.output_tokens)
        return cost if cost is not None else completion.reported_cost_usd

    def _cost_usd(
        self, model: str, input_tokens: int | None, output_tokens: int | None
    ) -> float | None:
        if input_tokens is None or output_tokens is None:
            return None
        return self.registry.cost_usd(model, input_tokens, output_tokens)


def make_client(
    timeouts: Timeouts | None = None,
    *,
    trust_env: bool = True,
    max_connections: int = 20,
    keep_cookies: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """The shared HTTP client: keep-alive pool, explicit timeouts, no redirects, and deadlines
    that hold on every socket read (``attune_cli.core.providers.deadline``).

    Args:
        timeouts: defaults for requests that do not bring their own.
        trust_env: whether proxy settings and certificates come from the environment.
        max_connections: connections open at once (a gateway serving many callers needs
            one per call in flight; more wait for a free one).
        keep_cookies: keep the cookies responses set and send them back. Provider APIs
            authenticate by key; a gateway's client serves many callers, who must not send
            one another's cookies (and reading ``Set-Cookie`` costs a tenth of a call's CPU).
        ssl_context: the TLS settings to use (clients made by the same process can share one
            instead of each loading the CA bundle); made from the environment when None.
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max(10, max_connections // 2),
        keepalive_expiry=60,
    )
    timeouts = timeouts or Timeouts()
    client = httpx.Client(
        timeout=httpx.Timeout(
            connect=timeouts.connect_s,
            read=max(timeouts.first_byte_s, timeouts.read_s),
            write=timeouts.write_s,
            pool=timeouts.connect_s,
        ),
        limits=limits,
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
        trust_env=trust_env,
        verify=ssl_context if ssl_context is not None else True,
    )
    if not keep_cookies:
        if not isinstance(getattr(client, "_cookies", None), httpx.Cookies):
            raise RuntimeError("cannot turn off the cookie jar of this httpx release")
        client._cookies = _NoCookies()
    return install(client)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing a response sets."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def failure_error(response: LLMResponse) -> ProviderError:
    """The error to raise for a failed envelope: what was tried, when to retry, what to run."""
    kind = response.error_kind or "server_error"
    if response.content:
        hint = "the answer above is incomplete; ask again"
    elif response.billing == Billing.SUBSCRIPTION and kind in _SUBSCRIPTION_HINTS:
        hint = _SUBSCRIPTION_HINTS[kind]
    else:
        hint = _HINTS.get(kind, "`attune route breakers` shows which circuits are open")
    return ProviderError(
        response.error or "the call failed",
        kind=kind,
        retry_after_s=response.retry_after_s,
        hint=hint,
    )


_HINTS = {
    BREAKER_OPEN: "`attune route breakers` shows each circuit and when it closes",
    "auth": "check the key: `attune auth status`",
    "permission": "check the key's permissions: `attune auth status`",
    "not_found": "check the model name and the provider's base URL",
    "too_large": "shorten the prompt or lower --max-tokens",
    "bad_request": "the provider refused the request as malformed; see the message above",
    "billing": "check the provider account's credit",
    "connection": "is the server running at that URL? `attune auth status` shows each base URL",
    "timeout": "the provider was too slow; retry, or allow more time with --timeout S "
    "([executor] deadline_s, read_timeout_s)",
}


_SUBSCRIPTION_HINTS = {
    "auth": "run `claude` once and log in (/login), or use --mode api",
    "rate_limit": "wait for the window to reset (`attune auth status` shows when), use "
    "--mode api, or set [auth] api_fallback = true",
    "connection": "is `claude` still installed? `attune auth test claude-code` checks it",
}


def _status_text(failure: CallFailed | None) -> str:
    if failure is None:
        return "failed"
    if failure.status is not None and failure.status != 200:
        return f"HTTP {failure.status} {failure.kind}"
    if failure.kind in ("connection", "timeout") or failure.status is None:
        # No response to name: say what the transport saw, and where (its text names the host
        # and the failure, never a header, so no key can be in it).
        detail = failure.message.partition(": ")[2] or failure.message
        return f"{failure.kind} ({detail})"
    return failure.kind


def _get_bool(section: dict[str, Any], key: str, default: bool, *, path: Path) -> bool:
    """A true/false setting of ``[executor]``.

    Raises:
        ConfigError: the value is not a TOML boolean, naming ``executor.KEY``.
    """
    from attune_cli.core.errors import ConfigError

    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(path, "must be true or false", key=f"executor.{key}", value=value)
    return value


def _not_configured(target: Target) -> OperationError:
    provider = target.endpoint.provider
    where = f"set {provider.key_env}" if provider.key_env else "store a key"
    base = f", or point {provider.base_url_env} at a local server" if provider.base_url_env else ""
    return OperationError(
        f"{provider.name} is not configured, so {target.model} cannot be called",
        hint=f"run `attune auth login {provider.name}`, {where}{base}",
    )


def subscription_adapter(
    workspace: Workspace, endpoints: Mapping[str, Endpoint], environ: Mapping[str, str]
) -> ClaudeCodeAdapter | None:
    """The Claude Code adapter of ``workspace``, None when no ``claude`` executable is found.

    Raises:
        ConfigError: an invalid ``[providers.claude-code]`` (a ``command`` that does not
            exist or is not executable).
    """
    from attune_cli.core.claude_cli import BASE_URL_PREFIX, ClaudeCodeSettings, locate_claude

    settings = ClaudeCodeSettings.from_config(workspace.config, workspace.paths.config_file)
    executable = locate_claude(settings, environ)
    if executable is None:
        return None
    # Only now: the provider's own imports (threads, subprocesses) cost a call that uses none.
    from attune_cli.core.providers.claude_code import ClaudeCodeAdapter
    from attune_cli.core.registry import Provider

    anthropic = endpoints.get("anthropic")
    provider = (
        anthropic.provider
        if anthropic is not None
        else Provider(
            "anthropic", api="anthropic", base_url="https://api.anthropic.com", key_env=None
        )
    )
    endpoint = Endpoint(
        provider=provider,
        base_url=f"{BASE_URL_PREFIX}{executable}",
        api_key=None,
        configured=True,
    )
    return ClaudeCodeAdapter(endpoint, executable, environ, data_dir=workspace.paths.data_dir)
