"""Unknown keys in config.toml are named with the closest known key, never silently ignored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from attune_cli.core.config_keys import unknown_keys


def test_a_misspelt_key_is_named_with_the_closest_known_one() -> None:
    config = {"routing": {"min_sucess_rate": 0.9, "window_days": 30}}

    (warning,) = unknown_keys(config, Path("config.toml"))

    assert "routing.min_sucess_rate" in warning and "'min_success_rate'" in warning


def test_known_keys_and_user_named_entries_give_no_warning() -> None:
    config = {
        "auth": {"subscription_tier": "pro", "default_mode": "auto"},
        "providers": {"ollama": {"api": "openai", "base_url": "http://127.0.0.1:11434/v1"}},
        "models": {"llama3": {"provider": "ollama", "tier": "cheap"}},
        "routing": {"stages": {"my-stage": "cheap"}, "score": {"cost_weight": 2}},
        "executor": {"deadline_s": 60},
        "store": {"url": "postgresql://db/attune", "reconnect_s": 1},
    }

    assert unknown_keys(config, Path("config.toml")) == []


def test_store_reconnect_s_is_read_and_checked() -> None:
    from attune_cli.core.errors import ConfigError
    from attune_cli.core.paths import Paths
    from attune_cli.core.telemetry.team_writer import RECONNECT_S, reconnect_interval_s
    from attune_cli.core.workspace import Workspace

    paths = Paths(Path("/nonexistent/config"), Path("/nonexistent/data"))

    assert reconnect_interval_s(Workspace(paths, {})) == RECONNECT_S
    assert reconnect_interval_s(Workspace(paths, {"store": {"reconnect_s": 0.25}})) == 0.25
    for wrong in (0, "5", -1):
        with pytest.raises(ConfigError, match=r"store\.reconnect_s"):
            reconnect_interval_s(Workspace(paths, {"store": {"reconnect_s": wrong}}))


def test_unknown_tables_and_entry_keys_are_named() -> None:
    config = {"routng": {}, "providers": {"openai": {"base_ur": "http://x"}}}

    warnings = unknown_keys(config, Path("config.toml"))

    assert any("'routng'" in w and "'routing'" in w for w in warnings)
    assert any("providers.openai.base_ur" in w and "'base_url'" in w for w in warnings)


@pytest.mark.e2e
@pytest.mark.parametrize("command", [["route", "stats"], ["auth", "status"]])
def test_every_command_warns_on_stderr_and_keeps_working(
    command: list[str], attune_home: Path
) -> None:
    attune_home.mkdir(parents=True)
    (attune_home / "config.toml").write_text("[routing]\nmin_sucess_rate = 0.9\n")

    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", *command],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "Warning:" in result.stderr and "min_sucess_rate" in result.stderr
    assert "did you mean 'min_success_rate'?" in result.stderr
    assert result.stderr.count("min_sucess_rate") == 1


def test_every_routing_setting_is_a_known_key() -> None:
    from dataclasses import fields

    from attune_cli.core.config_keys import KNOWN_KEYS
    from attune_cli.core.routing import RoutingSettings

    # stage_tiers and weights are the [routing.stages] and [routing.score] tables.
    names = {f.name for f in fields(RoutingSettings)} - {"stage_tiers", "weights"}
    assert names <= KNOWN_KEYS["routing"]
