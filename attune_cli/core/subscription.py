"""The subscription as ``auth status`` and ``auth test`` show it: Claude Code and the window.

A Claude plan limits usage per rolling window (five hours today). ``usage_window`` adds up
the subscription calls recorded in the current window (calls, tokens and what the API would
have charged for them) next to the pay-per-token calls of the same window, and says when the
last usage-limit failure said the window resets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from attune_cli.core.claude_cli import UsageLimit
    from attune_cli.core.workspace import Workspace

WINDOW_S = 5 * 3600
"""The plan's rolling usage window."""


@dataclass(frozen=True)
class ClaudeCodeStatus:
    """Whether the ``claude`` executable is there, and what it says its version is.

    Attributes:
        executable: its path, None when not found.
        version: the first line of ``claude --version``, None when not found or it failed.
        command: ``[providers.claude-code] command`` when set.
    """

    executable: Path | None
    version: str | None
    command: str | None

    @property
    def present(self) -> bool:
        return self.executable is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "executable": str(self.executable) if self.executable else None,
            "version": self.version,
            "command": self.command,
        }


@dataclass(frozen=True)
class UsageWindow:
    """The subscription's current usage window.

    Attributes:
        window_s: its length.
        since_ts: its start (epoch seconds).
        subscription_calls: subscription attempts recorded in it.
        input_tokens: their prompt tokens.
        output_tokens: their completion tokens.
        api_equivalent_usd: what the API would have charged for them (the plan covered it).
        api_calls: pay-per-token attempts in the same window.
        api_usd: what those cost.
        last_limit: the last usage-limit failure seen, None when none.
        store: where the calls were read.
    """

    window_s: float
    since_ts: float
    subscription_calls: int
    input_tokens: int
    output_tokens: int
    api_equivalent_usd: float
    api_calls: int
    api_usd: float
    last_limit: UsageLimit | None
    store: str

    def resets_at(self, now_s: float) -> float | None:
        """When the last usage limit lifts, None when none is in force."""
        limit = self.last_limit
        if limit is None or limit.resets_at is None or limit.resets_at <= now_s:
            return None
        return limit.resets_at

    def to_json(self, now_s: float) -> dict[str, Any]:
        limit = self.last_limit
        return {
            "window_hours": self.window_s / 3600,
            "subscription_calls": self.subscription_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "api_equivalent_usd": round(self.api_equivalent_usd, 6),
            "pay_per_token_calls": self.api_calls,
            "pay_per_token_usd": round(self.api_usd, 6),
            "last_usage_limit": None
            if limit is None
            else {
                "seen_at": _iso(limit.seen_at),
                "resets_at": _iso(limit.resets_at) if limit.resets_at is not None else None,
                "in_force": self.resets_at(now_s) is not None,
                "message": limit.message,
            },
            "store": self.store,
        }


def claude_code_status(
    workspace: Workspace, environ: Mapping[str, str] | None = None
) -> ClaudeCodeStatus:
    """Find ``claude`` (config, else PATH) and ask its version.

    Raises:
        ConfigError: an invalid ``[providers.claude-code]`` (exit 2, naming the key).
    """
    from attune_cli.core.claude_cli import (
        ClaudeCodeSettings,
        cached_claude_version,
        locate_claude,
    )

    settings = ClaudeCodeSettings.from_config(workspace.config, workspace.paths.config_file)
    executable = locate_claude(settings, environ)
    version = cached_claude_version(executable, workspace.paths.data_dir) if executable else None
    return ClaudeCodeStatus(executable, version, settings.command)


def usage_window(workspace: Workspace, now_s: float | None = None) -> UsageWindow:
    """The current window's subscription and pay-per-token calls, and the last usage limit.

    Reads the store calls go to (``open_call_store``, read-only: nothing is created).

    Raises:
        OperationError: the store cannot be opened.
    """
    from attune_cli.core.claude_cli import last_usage_limit
    from attune_cli.core.telemetry.store import Backend, store_location

    now = time.time() if now_s is None else now_s
    since = now - WINDOW_S
    location = store_location(workspace)
    last_limit = last_usage_limit(workspace.paths.data_dir)
    if location.backend is Backend.SQLITE and not workspace.paths.telemetry_db.exists():
        # Nothing recorded yet: no store to open (and no SQLite to import on this fast path).
        return UsageWindow(WINDOW_S, since, 0, 0, 0, 0.0, 0, 0.0, last_limit, location.shown)
    from attune_cli.core.telemetry.team import open_call_store

    store = open_call_store(workspace, reading=True, on_notice=lambda _text: None)
    try:
        totals = {total.billing: total for total in store.billing_totals(since)}
    finally:
        store.close()
    plan = totals.get("subscription")
    paid = totals.get("api")
    return UsageWindow(
        window_s=WINDOW_S,
        since_ts=since,
        subscription_calls=plan.calls if plan else 0,
        input_tokens=plan.input_tokens if plan else 0,
        output_tokens=plan.output_tokens if plan else 0,
        api_equivalent_usd=plan.cost_usd if plan else 0.0,
        api_calls=paid.calls if paid else 0,
        api_usd=paid.cost_usd if paid else 0.0,
        last_limit=last_limit,
        store=location.shown,
    )


def _iso(ts: float) -> str:
    from attune_cli.core.telemetry.records import ts_to_iso

    return ts_to_iso(ts)
