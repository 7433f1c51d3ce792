"""The keys ``config.toml`` understands, and a warning for each key it does not.

A misspelt key (``[routing] min_sucess_rate = 0.9``) would otherwise be read as absent and
change nothing, silently. Each unknown key is named with the closest known one, and the
process's warning sink (the CLI installs one) says so once per run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# Tables whose keys are names the user chooses (a provider, a model, a stage): their
# entries are checked against the entry schema instead.
_NAMED_ENTRIES = {"providers", "models", "routing.stages"}
# Tables holding both settings of their own and named entries (``[budgets] timezone`` beside
# ``[budgets.code-review]``): a sub-table is an entry, any other key a setting.
_MIXED_ENTRIES = {"budgets"}

KNOWN_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(
        {"auth", "providers", "models", "routing", "breaker", "executor", "store", "budgets"}
    ),
    "budgets": frozenset({"timezone"}),
    "store": frozenset({"url", "reconnect_s"}),
    "budgets.*": frozenset({"monthly_usd", "daily_usd", "on_exceed"}),
    "auth": frozenset(
        {
            "subscription_tier",
            "default_mode",
            "setup_completed",
            "small_module_threshold",
            "medium_module_threshold",
            "loc_to_tokens_multiplier",
            "prefer_subscription",
            "cost_optimization",
            "estimate_model",
            "metadata",
            "api_fallback",
        }
    ),
    "routing": frozenset(
        {
            "window_days",
            "min_calls",
            "min_success_rate",
            "max_cost_usd",
            "max_latency_ms",
            "half_life_days",
            "outage_memory_hours",
            "down_after_outages",
            "recent_calls",
            "demote_margin",
            "explore",
            "explore_share",
            "explore_half_life_hours",
            "advice_recent_calls",
            "upgrade_failure_rate",
            "downgrade_min_calls",
            "downgrade_margin",
            "default_tier",
            "stages",
            "score",
        }
    ),
    "routing.score": frozenset(
        {"success_weight", "cost_weight", "cost_unit_usd", "latency_weight", "latency_unit_ms"}
    ),
    "breaker": frozenset(
        {
            "consecutive_failures",
            "failure_rate_threshold",
            "lock_timeout_s",
            "min_calls",
            "open_base_s",
            "open_max_s",
            "probe_lease_s",
            "window_s",
        }
    ),
    "executor": frozenset(
        {
            "deadline_s",
            "escalate",
            "max_attempts",
            "max_retries",
            "retry_delay_s",
            "connect_timeout_s",
            "first_byte_timeout_s",
            "read_timeout_s",
        }
    ),
    "providers.*": frozenset({"api", "base_url", "key_env"}),
    "models.*": frozenset(
        {"provider", "tier", "input_usd_per_mtok", "output_usd_per_mtok", "context_window"}
    ),
}

WarningSink = Callable[[str], None]
_sink: WarningSink | None = None
_said: set[str] = set()


def set_warning_sink(sink: WarningSink | None) -> None:
    """Where unknown-key warnings go (the CLI passes its stderr warning; None: nowhere)."""
    global _sink
    _sink = sink
    _said.clear()


def unknown_keys(config: dict[str, Any], path: Path) -> list[str]:
    """One warning per key of ``config`` that attune does not read, naming the closest one."""
    found: list[str] = []
    _walk(config, "", "", found, path)
    return found


def report_unknown_keys(config: dict[str, Any], path: Path) -> None:
    """Send each unknown key's warning to the sink, once per process."""
    if _sink is None:
        return
    for text in unknown_keys(config, path):
        if text not in _said:
            _said.add(text)
            _sink(text)


def _walk(table: dict[str, Any], schema: str, dotted: str, found: list[str], path: Path) -> None:
    known = KNOWN_KEYS.get(schema)
    if known is None:
        return
    for key, value in table.items():
        name = f"{dotted}.{key}" if dotted else str(key)
        if schema in _MIXED_ENTRIES and isinstance(value, dict):
            _walk(value, f"{schema}.*", name, found, path)
            continue
        if key not in known:
            found.append(_warning(path, name, str(key), known, dotted))
            continue
        child = f"{schema}.{key}" if schema else str(key)
        if not isinstance(value, dict):
            continue
        if child in _NAMED_ENTRIES:
            for entry_name, entry in value.items():
                if isinstance(entry, dict):
                    _walk(entry, f"{child}.*", f"{name}.{entry_name}", found, path)
            continue
        _walk(value, child, name, found, path)


def _warning(path: Path, name: str, key: str, known: frozenset[str], table: str) -> str:
    import difflib

    where = f"[{table}]" if table else "the top level"
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{path}: unknown key {name!r} in {where} is ignored{hint}"
