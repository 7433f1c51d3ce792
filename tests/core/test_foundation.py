"""Paths, config reading/rewriting, atomic writes, the registry and the store's schema."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from attune_cli.core.config import get_number, read_toml, update_toml
from attune_cli.core.errors import ConfigError, StoreVersionError
from attune_cli.core.files import atomic_write_text
from attune_cli.core.paths import resolve_paths
from attune_cli.core.registry import TIERS, load_registry, next_tier, previous_tier
from attune_cli.core.telemetry import db


def test_attune_home_puts_everything_in_one_folder(tmp_path: Path) -> None:
    paths = resolve_paths({"ATTUNE_HOME": str(tmp_path)})
    assert paths.config_file == tmp_path / "config.toml"
    assert paths.credentials_file == tmp_path / "credentials.toml"
    assert paths.telemetry_db == tmp_path / "telemetry.db"


def test_xdg_folders_are_used_without_attune_home(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_DATA_HOME": str(tmp_path / "d")}
    paths = resolve_paths(env)
    assert paths.config_file == tmp_path / "c" / "attune" / "config.toml"
    assert paths.telemetry_db == tmp_path / "d" / "attune" / "telemetry.db"


def test_relative_xdg_values_are_ignored_as_the_spec_says() -> None:
    paths = resolve_paths({"XDG_CONFIG_HOME": "relative/dir"})
    assert paths.config_dir == Path.home() / ".config" / "attune"


def test_missing_config_reads_as_empty(tmp_path: Path) -> None:
    assert read_toml(tmp_path / "absent.toml") == {}


def test_corrupt_config_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[auth]\nsubscription_tier = \n")
    with pytest.raises(ConfigError) as caught:
        read_toml(path)
    assert str(path) in str(caught.value)
    assert "line 2" in str(caught.value)
    assert caught.value.exit_code == 2


def test_update_keeps_comments_order_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "# my settings\n[auth]\nsubscription_tier = 'pro'  # the work plan\nmine = 1\n\n"
        "[custom]\nkeep = true\n"
    )

    def change(doc: dict) -> None:
        doc["auth"]["subscription_tier"] = "max"

    update_toml(path, change)
    text = path.read_text()
    assert "# my settings" in text
    assert "mine = 1" in text
    assert "[custom]" in text and "keep = true" in text
    assert read_toml(path)["auth"]["subscription_tier"] == "max"


def test_update_refuses_to_rewrite_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("not = [valid\n")
    with pytest.raises(ConfigError):
        update_toml(path, lambda doc: doc.update({"a": 1}))
    assert path.read_text() == "not = [valid\n"


def test_atomic_write_sets_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    atomic_write_text(path, "k = 'v'\n", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.toml"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1, "at least 0"),
        ("ten", "a whole number"),
        (True, "a whole number"),
        (2.5, "a whole number"),
    ],
)
def test_get_number_names_key_and_value(tmp_path: Path, value: object, problem: str) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as caught:
        get_number({"n": value}, "n", 1, path=path, prefix="routing", minimum=0, integer=True)
    message = str(caught.value)
    assert "routing.n" in message and problem in message and repr(value) in message


def test_registry_has_models_in_every_tier() -> None:
    registry = load_registry({}, Path("config.toml"))
    for tier in TIERS:
        providers = {m.provider for m in registry.by_tier(tier)}
        assert providers == {"anthropic", "openai"}
    assert next_tier("cheap") == "capable" and next_tier("premium") is None
    assert previous_tier("capable") == "cheap" and previous_tier("cheap") is None


def test_registry_prices_a_call() -> None:
    registry = load_registry({}, Path("config.toml"))
    cost = registry.cost_usd("claude-sonnet-4-5", 1_000_000, 1_000_000)
    assert cost == pytest.approx(18.0)
    assert registry.cost_usd("unknown-model", 10, 10) is None


def test_config_overrides_and_extends_the_registry() -> None:
    config = {
        "providers": {"ollama": {"api": "openai", "base_url": "http://localhost:11434/v1/"}},
        "models": {
            "gpt-5": {"input_usd_per_mtok": 1.0},
            "llama3.1:8b": {"provider": "ollama", "tier": "CHEAP", "context_window": 131072},
        },
    }
    registry = load_registry(config, Path("config.toml"))
    assert registry.models["gpt-5"].input_usd_per_mtok == 1.0
    assert registry.models["gpt-5"].output_usd_per_mtok == 10.0
    assert registry.models["llama3.1:8b"].tier == "cheap"
    assert registry.providers["ollama"].base_url == "http://localhost:11434/v1"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"models": {"m": {"provider": "openai", "tier": "huge"}}}, 'models."m".tier'),
        ({"models": {"m": {"provider": "nobody", "tier": "cheap"}}}, 'models."m".provider'),
        ({"models": {"gpt-5": {"input_usd_per_mtok": -3}}}, 'models."gpt-5".input_usd_per_mtok'),
        ({"providers": {"x": {"api": "soap", "base_url": "http://h"}}}, "providers.x.api"),
    ],
)
def test_invalid_registry_entries_name_the_key(config: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_registry(config, Path("config.toml"))
    assert key in str(caught.value)


def test_store_is_created_private_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "data" / "telemetry.db"
    conn = db.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_store_from_a_newer_attune_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreVersionError) as caught:
        db.connect(path)
    assert "newer attune" in str(caught.value)
    assert path.read_bytes() == before


def test_read_only_callers_do_not_create_a_store(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"
    with pytest.raises(FileNotFoundError):
        db.connect(path, create=False)
    assert not os.path.exists(path)
