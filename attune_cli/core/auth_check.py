"""``attune auth test``: one real, minimal request per configured provider, as ``gh auth status``.

Each provider is asked for its model list (``GET /v1/models``): it costs no tokens, needs the
key, and says which models the key can use. The answer tells three things apart:

- reachable: something answered at the base URL (a refused connection, DNS or a timeout: not);
- key accepted: the answer was not 401 or 403;
- models listed: which of the registry's models for that provider the list holds.

How a provider is checked depends on its kind of API (``Provider.api``): ``CHECKERS`` maps each
kind to its check. The subscription path (``claude-code``, Claude Code's ``claude -p``) is not
reached over HTTP: ``check_claude_code`` finds the executable and reads its version, and when
``claude-code`` is named (``auth test claude-code``) makes one minimal call on the plan:

- reachable: the executable runs (``claude --version``);
- key accepted: Claude Code is logged in (the call was not refused for want of a login);
- models listed: the call answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from attune_cli.core.errors import UsageError

if TYPE_CHECKING:
    import httpx

    from attune_cli.core.endpoints import Endpoint
    from attune_cli.core.registry import Registry
    from attune_cli.core.workspace import Workspace

# One check must not hang a person's terminal: a slow server is reported as not reachable.
CHECK_TIMEOUT_S = 10.0
_MAX_LIST_BYTES = 4 * 1024 * 1024


class Verdict(StrEnum):
    """What one step of a check found."""

    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"  # not reached, or the answer cannot tell
    SKIPPED = "skipped"  # the provider is not configured


@dataclass(frozen=True)
class ProviderCheck:
    """What one request to one provider showed.

    Attributes:
        provider: the provider's name.
        base_url: where it was asked.
        configured: whether it has a key or an explicit base URL.
        key_source: ``env`` or ``stored``, None without a key.
        key_hint: ``sk-…abcd``, never the key.
        reachable: the server answered at all.
        key_accepted: the answer was not 401/403 (UNKNOWN when unreachable or unclear).
        models: whether the registry's models for this provider are listed.
        status: the HTTP status, None when nothing answered.
        latency_ms: how long the request took.
        listed: registry models the server lists.
        missing: registry models it does not list.
        served: how many models the server lists in all.
        detail: one line on what went wrong, None when nothing did.
        version: what ``claude --version`` said (the ``claude-code`` check only).
    """

    provider: str
    base_url: str
    configured: bool
    key_source: str | None
    key_hint: str | None
    reachable: Verdict
    key_accepted: Verdict
    models: Verdict
    status: int | None = None
    latency_ms: float | None = None
    listed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    served: int | None = None
    detail: str | None = None
    others: tuple[str, ...] = field(default=(), repr=False)
    version: str | None = None

    @property
    def ok(self) -> bool:
        """Reachable with the key accepted (a skipped provider is not a failure).

        For ``claude-code`` the minimal call must also have answered.
        """
        if self.reachable is Verdict.SKIPPED:
            return True
        answered = self.provider != "claude-code" or self.models is not Verdict.FAILED
        return self.reachable is Verdict.OK and self.key_accepted is not Verdict.FAILED and answered

    def as_dict(self) -> dict[str, Any]:
        """The ``auth test --json`` item."""
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "configured": self.configured,
            "key_source": self.key_source,
            "key_hint": self.key_hint,
            "reachable": str(self.reachable),
            "key_accepted": str(self.key_accepted),
            "models_listed": str(self.models),
            "ok": self.ok,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "listed": list(self.listed),
            "missing": list(self.missing),
            "served": self.served,
            "detail": self.detail,
            "version": self.version,
        }


Checker = Callable[["Endpoint", "httpx.Client", "Registry", "_KeyInfo"], ProviderCheck]


@dataclass(frozen=True)
class _KeyInfo:
    source: str | None
    hint: str | None


def check_providers(
    workspace: Workspace,
    names: Sequence[str] | None = None,
    *,
    client: httpx.Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[ProviderCheck]:
    """Check each provider in ``names`` (every provider of the registry when None).

    A provider that is not configured is skipped when all are checked, and checked anyway
    (without a key) when named.

    Args:
        workspace: paths, config and registry.
        names: the providers to check.
        client: the HTTP client (tests pass one over ``httpx.MockTransport``).
        environ: the environment (keys and base URLs); ``os.environ`` when None.

    Raises:
        UsageError: a named provider is not in the registry.
        ConfigError: an invalid credentials file.
    """
    import os

    import httpx

    from attune_cli.core.credentials import key_hint, resolve_key
    from attune_cli.core.endpoints import resolve_endpoints
    from attune_cli.core.registry import CLAUDE_CODE

    environment = os.environ if environ is None else environ
    registry = workspace.registry
    for name in names or ():
        if name not in registry.providers and name != CLAUDE_CODE:
            known = ", ".join([*registry.providers, CLAUDE_CODE])
            raise UsageError(f"unknown provider {name!r}; known: {known}")
    subscription: list[ProviderCheck] = []
    if not names or CLAUDE_CODE in names:
        subscription.append(
            check_claude_code(workspace, environment, call=bool(names and CLAUDE_CODE in names))
        )
        names = [name for name in names or () if name != CLAUDE_CODE] or (None if not names else [])
        if names == []:
            return subscription
    keys = {
        name: resolve_key(provider, workspace.paths, environment)
        for name, provider in registry.providers.items()
    }
    endpoints = resolve_endpoints(
        registry,
        workspace.config,
        environment,
        lambda provider: found.value if (found := keys[provider.name]) else None,
    )
    chosen = list(names) if names else list(endpoints)
    own_client = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(CHECK_TIMEOUT_S, connect=5.0))
    try:
        results = []
        for name in chosen:
            endpoint = endpoints[name]
            resolved = keys[name]
            info = _KeyInfo(
                resolved.source if resolved else None,
                key_hint(resolved.value) if resolved else None,
            )
            if not endpoint.configured and not names:
                results.append(_skipped(endpoint, info))
                continue
            checker = CHECKERS.get(endpoint.provider.api, check_models_endpoint)
            results.append(checker(endpoint, http, registry, info))
        return results + subscription
    finally:
        if own_client:
            http.close()


def check_models_endpoint(
    endpoint: Endpoint, client: httpx.Client, registry: Registry, key: _KeyInfo
) -> ProviderCheck:
    """The check of an HTTP API that lists its models (Anthropic's and OpenAI-compatible)."""
    import httpx

    from attune_cli.core.providers.anthropic import ANTHROPIC_VERSION

    anthropic = endpoint.provider.api == "anthropic"
    url = endpoint.base_url + ("/v1/models" if anthropic else "/models")
    headers = {"accept": "application/json"}
    if anthropic:
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if endpoint.api_key:
            headers["x-api-key"] = endpoint.api_key
    elif endpoint.api_key:
        headers["authorization"] = f"Bearer {endpoint.api_key}"
    base = ProviderCheck(
        provider=endpoint.name,
        base_url=endpoint.base_url,
        configured=endpoint.configured,
        key_source=key.source,
        key_hint=key.hint,
        reachable=Verdict.UNKNOWN,
        key_accepted=Verdict.UNKNOWN,
        models=Verdict.UNKNOWN,
    )
    started = time.perf_counter()
    try:
        response = client.get(url, headers=headers)
        body = response.content[:_MAX_LIST_BYTES]
    except httpx.TimeoutException:
        return replace(
            base,
            reachable=Verdict.FAILED,
            key_accepted=Verdict.UNKNOWN,
            models=Verdict.UNKNOWN,
            detail=f"no answer from {endpoint.base_url} within {CHECK_TIMEOUT_S:g} s",
        )
    except httpx.HTTPError as exc:
        return replace(
            base,
            reachable=Verdict.FAILED,
            key_accepted=Verdict.UNKNOWN,
            models=Verdict.UNKNOWN,
            detail=f"cannot connect to {endpoint.base_url} ({type(exc).__name__})",
        )
    latency_ms = (time.perf_counter() - started) * 1000
    status = response.status_code
    base = replace(base, status=status, latency_ms=latency_ms)
    if status in (401, 403):
        why = "no key was sent" if not endpoint.api_key else "the key was refused"
        return replace(
            base,
            reachable=Verdict.OK,
            key_accepted=Verdict.FAILED,
            models=Verdict.UNKNOWN,
            detail=f"HTTP {status}: {why}",
        )
    if not 200 <= status < 300:
        return replace(
            base,
            reachable=Verdict.OK,
            key_accepted=Verdict.UNKNOWN,
            models=Verdict.UNKNOWN,
            detail=f"HTTP {status} from {url}: it cannot tell whether the key is accepted",
        )
    served = _model_ids(body)
    ours = [m.id for m in registry.models.values() if m.provider == endpoint.name]
    known = set(served or ())
    listed = tuple(m for m in ours if m in known)
    missing = tuple(m for m in ours if m not in known)
    if served is None:
        models, detail = Verdict.UNKNOWN, "the model list is not JSON attune can read"
    elif ours and not listed:
        models, detail = Verdict.FAILED, "none of the registry's models is listed"
    else:
        models, detail = Verdict.OK, None
    return replace(
        base,
        reachable=Verdict.OK,
        key_accepted=Verdict.OK,
        models=models,
        listed=listed,
        missing=missing,
        served=len(served) if served is not None else None,
        others=tuple(sorted(known - set(ours)))[:5],
        detail=detail,
    )


def _model_ids(body: bytes) -> list[str] | None:
    import json

    try:
        document = json.loads(body)
    except ValueError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return None
    return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]


def _skipped(endpoint: Endpoint, key: _KeyInfo) -> ProviderCheck:
    return ProviderCheck(
        provider=endpoint.name,
        base_url=endpoint.base_url,
        configured=False,
        key_source=key.source,
        key_hint=key.hint,
        reachable=Verdict.SKIPPED,
        key_accepted=Verdict.SKIPPED,
        models=Verdict.SKIPPED,
        detail="not configured: no key, and no base URL set",
    )


# How each kind of provider API is checked (``Provider.api``); see the module docstring.
CHECKERS: dict[str, Checker] = {
    "anthropic": check_models_endpoint,
    "openai": check_models_endpoint,
}


def check_claude_code(
    workspace: Workspace, environ: Mapping[str, str], *, call: bool
) -> ProviderCheck:
    """The subscription path: is ``claude`` there, which version, and (``call``) does it answer.

    Raises:
        ConfigError: an invalid ``[providers.claude-code]`` (exit 2, naming the key).
    """
    from attune_cli.core.endpoints import Endpoint
    from attune_cli.core.providers.base import CallFailed, ChatRequest
    from attune_cli.core.providers.claude_code import (
        BASE_URL_PREFIX,
        INSTALL_HINT,
        ClaudeCodeAdapter,
        ClaudeCodeSettings,
        claude_version,
        locate_claude,
    )
    from attune_cli.core.providers.deadline import AttemptLimits
    from attune_cli.core.registry import CLAUDE_CODE, Provider

    settings = ClaudeCodeSettings.from_config(workspace.config, workspace.paths.config_file)
    executable = locate_claude(settings, environ)
    base = ProviderCheck(
        provider=CLAUDE_CODE,
        base_url=str(executable) if executable else "claude (not on PATH)",
        configured=executable is not None,
        key_source=None,
        key_hint=None,
        reachable=Verdict.UNKNOWN,
        key_accepted=Verdict.UNKNOWN,
        models=Verdict.UNKNOWN,
    )
    if executable is None:
        verdict = Verdict.FAILED if call else Verdict.SKIPPED
        return replace(
            base,
            reachable=verdict,
            key_accepted=verdict,
            models=verdict,
            detail=f"no claude executable: {INSTALL_HINT}",
        )
    version = claude_version(executable)
    if version is None:
        return replace(
            base,
            reachable=Verdict.FAILED,
            detail=f"`{executable} --version` failed: is it Claude Code?",
        )
    base = replace(base, reachable=Verdict.OK, version=version)
    if not call:
        return base
    cheapest = min(
        (m for m in workspace.registry.models.values() if m.provider == "anthropic"),
        key=lambda m: m.input_usd_per_mtok + m.output_usd_per_mtok,
        default=None,
    )
    model = cheapest.id if cheapest else "claude-haiku-4-5"
    anthropic = workspace.registry.providers.get("anthropic") or Provider(
        "anthropic", api="anthropic", base_url="https://api.anthropic.com", key_env=None
    )
    adapter = ClaudeCodeAdapter(
        Endpoint(anthropic, f"{BASE_URL_PREFIX}{executable}", None, True),
        executable,
        environ,
        data_dir=workspace.paths.data_dir,
    )
    limits = AttemptLimits(
        connect_s=CHECK_TIMEOUT_S,
        first_byte_s=60.0,
        between_reads_s=60.0,
        write_s=CHECK_TIMEOUT_S,
        total_s=90.0,
    )
    started = time.perf_counter()
    try:
        adapter.call(
            None,
            ChatRequest(model, "Reply with the single word OK.", max_tokens=16),
            stream=False,
            limits=limits,
        )
    except CallFailed as failure:
        latency_ms = (time.perf_counter() - started) * 1000
        logged_in = Verdict.FAILED if failure.kind == "auth" else Verdict.UNKNOWN
        if failure.kind == "rate_limit":
            logged_in = Verdict.OK  # a usage limit is only reached by a logged-in plan
        return replace(
            base,
            key_accepted=logged_in,
            models=Verdict.FAILED,
            latency_ms=latency_ms,
            listed=(),
            missing=(model,),
            detail=failure.message,
        )
    latency_ms = (time.perf_counter() - started) * 1000
    return replace(
        base,
        key_accepted=Verdict.OK,
        models=Verdict.OK,
        latency_ms=latency_ms,
        listed=(model,),
    )
