"""``LLMResponse``: one envelope for a call, whichever provider answered it.

The envelope records the answer (or the error), what it cost, and every attempt the executor
made on the way, including the ones the circuit breaker refused without sending. Its JSON form
is the contract of ``attune ask --json``::

    {"content": "...", "model": "gpt-5-mini", "provider": "openai", "tier": "cheap",
     "input_tokens": 12, "output_tokens": 40, "cost_usd": 8.3e-05, "latency_ms": 412.0,
     "success": true, "error": null, "fallback_used": false,
     "attempts": [{"model": "gpt-5-mini", "provider": "openai", "status": 200,
                   "error_kind": null, "latency_ms": 410.2}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BREAKER_OPEN = "breaker_open"
"""The ``error_kind`` of an attempt the circuit breaker refused; nothing was sent."""


@dataclass(frozen=True)
class Attempt:
    """One try at one model.

    Attributes:
        model: the model asked.
        provider: the provider that serves it.
        status: the HTTP status, when a response arrived.
        error_kind: None on success, else the failure's kind (``server_error``, ``timeout``,
            ``breaker_open`` …).
        latency_ms: from sending the request to the end of the answer (0 when not sent).
    """

    model: str
    provider: str
    status: int | None
    error_kind: str | None
    latency_ms: float

    @property
    def success(self) -> bool:
        """Whether this attempt produced the answer."""
        return self.error_kind is None

    @property
    def sent(self) -> bool:
        """Whether a request went out (the breaker did not refuse it)."""
        return self.error_kind != BREAKER_OPEN

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{model, provider, status, error_kind, latency_ms}``."""
        return {
            "model": self.model,
            "provider": self.provider,
            "status": self.status,
            "error_kind": self.error_kind,
            "latency_ms": round(self.latency_ms, 1),
        }


@dataclass(frozen=True)
class LLMResponse:
    """The outcome of one call through the executor.

    On success, ``model``, ``provider`` and ``tier`` name the model that answered. On failure
    they name the model first asked, ``content`` holds any text streamed before the failure, and
    ``error`` says what was tried and when to retry.

    Attributes:
        content: the answer's text.
        model: the model that answered (or was first asked).
        provider: its provider.
        tier: its tier in the registry, None for a model the registry does not know.
        input_tokens: prompt tokens the provider counted, when it said.
        output_tokens: completion tokens the provider counted, when it said.
        cost_usd: registry prices × tokens, None when prices or tokens are unknown.
        latency_ms: wall time of the whole call, retries and back-off included.
        success: whether a model answered in full.
        error: one line saying what went wrong, None on success.
        attempts: every attempt in order, breaker refusals included.
        fallback_used: a model other than the first planned one answered.
        error_kind: the kind of the failure that ended the call, None on success.
        retry_after_s: on failure, the soonest a retry could succeed, when known.
        billing: ``subscription`` when the answer (or, on failure, the first attempt) went
            through Claude Code on the plan, ``api`` when billed per token. On the
            subscription ``cost_usd`` is the API-equivalent price, covered by the plan.
    """

    content: str
    model: str
    provider: str
    tier: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency_ms: float
    success: bool
    error: str | None = None
    attempts: tuple[Attempt, ...] = ()
    fallback_used: bool = False
    error_kind: str | None = None
    retry_after_s: float | None = None
    billing: str = "api"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``attune ask --json``."""
        return {
            "content": self.content,
            "model": self.model,
            "provider": self.provider,
            "tier": self.tier,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": round(self.latency_ms, 1),
            "success": self.success,
            "error": self.error,
            "attempts": [attempt.to_dict() for attempt in self.attempts],
            "fallback_used": self.fallback_used,
            "error_kind": self.error_kind,
            "retry_after_s": None if self.retry_after_s is None else round(self.retry_after_s, 1),
            "billing": self.billing,
            "plan_covered": self.billing == "subscription",
        }
