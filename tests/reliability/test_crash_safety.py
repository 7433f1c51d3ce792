"""Crash safety: SIGKILL at random points of every write attune makes to disk.

A zygote process forks a writer that rewrites the file through attune's own code (the auth
strategy's save, the credentials store, a telemetry import) in a loop, and the test kills it
with SIGKILL after a random, seeded delay: 50 times per file. After every kill the file must
parse and hold exactly one of the contents a complete write produces; never a torn or empty
file. Temp files a kill leaves behind must be cleaned up by the next write, and never trip a
later run.
"""

from __future__ import annotations

import json
import random
import sqlite3
import stat
import time
import tomllib
from pathlib import Path

import pytest
from helpers.reliability import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, attune, zygote

from attune_cli.core.auth import AuthStrategy
from attune_cli.core.credentials import store_key
from attune_cli.core.paths import Paths
from attune_cli.core.registry import load_registry
from attune_cli.core.telemetry.importers import ImportOptions, import_calls
from attune_cli.core.telemetry.sqlite import TelemetryStore

pytestmark = pytest.mark.e2e

KILLS = 50
SCALES = pytest.mark.parametrize(
    "kills", [KILLS, pytest.param(KILLS * 10, marks=pytest.mark.soak)], ids=["50", "500"]
)
SEED = 20260107
USER_CONFIG = """\
# My attune settings: this comment must survive every rewrite.
[auth]
subscription_tier = "pro"   # what I pay for
setup_completed = true

[routing]
window_days = 14
"""


def leftovers(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.tmp"))


def cycle_texts(path: Path, write_each: list[object], write: object) -> set[str]:
    """Every text the file can hold after complete writes, by running the cycle in-process."""
    texts = {path.read_text()}
    for _ in range(3):
        for value in write_each:
            write(value)  # type: ignore[operator]
            texts.add(path.read_text())
    return texts


def kill_delays(rng: random.Random, longest_s: float, kills: int) -> list[float]:
    return [rng.uniform(0, longest_s) for _ in range(kills)]


@SCALES
def test_config_toml_survives_sigkill_mid_write(attune_home: Path, kills: int) -> None:
    attune_home.mkdir(mode=0o700)
    config = attune_home / "config.toml"
    config.write_text(USER_CONFIG)
    tiers = ["max", "pro"]
    complete = cycle_texts(
        config,
        tiers,
        lambda tier: AuthStrategy(subscription_tier=tier, setup_completed=True).save(config),
    )
    assert len(complete) >= 2 and all("this comment must survive" in t for t in complete)

    killed = 0
    temp_seen = 0
    with zygote() as writers:
        for delay_s in kill_delays(random.Random(SEED), 0.03, kills):
            ended = writers.kill_during(
                "config_writes", delay_s, config_file=str(config), tiers=tiers
            )
            assert ended["signal"] == 9, ended  # it was writing, not crashed or finished
            killed += 1
            text = config.read_text()
            assert text in complete, f"torn config.toml after a kill at {delay_s:.4f}s:\n{text}"
            tomllib.loads(text)
            temp_seen += len(leftovers(attune_home, "config.toml"))

    assert killed == kills
    # A later run reads the file as the last complete write left it and writes over it, and
    # the temp files of killed writers are gone afterwards.
    status = attune("auth", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["subscription_tier"] in tiers
    setup = attune("auth", "setup", "--tier", "enterprise", "--mode", "api", "--yes")
    assert setup.returncode == 0, setup.stderr
    assert leftovers(attune_home, "config.toml") == []
    final = config.read_text()
    assert 'subscription_tier = "enterprise"' in final
    assert "this comment must survive" in final and "window_days = 14" in final
    print(f"config.toml: {killed} kills survived, {temp_seen} temp files seen and cleaned up")


@SCALES
def test_credentials_toml_survives_sigkill_mid_write(attune_home: Path, kills: int) -> None:
    paths = Paths(attune_home, attune_home)
    store_key(paths, "openai", FAKE_OPENAI_KEY)
    store_key(paths, "anthropic", FAKE_ANTHROPIC_KEY)
    credentials = paths.credentials_file
    keys = [FAKE_ANTHROPIC_KEY.replace("FAKE", "NEW1"), FAKE_ANTHROPIC_KEY]
    complete = cycle_texts(credentials, keys, lambda key: store_key(paths, "anthropic", key))

    killed = 0
    with zygote() as writers:
        for delay_s in kill_delays(random.Random(SEED + 1), 0.03, kills):
            ended = writers.kill_during(
                "credential_writes",
                delay_s,
                folder=str(attune_home),
                provider="anthropic",
                keys=keys,
            )
            assert ended["signal"] == 9, ended
            killed += 1
            text = credentials.read_text()
            assert text in complete, f"torn credentials.toml after a kill at {delay_s:.4f}s"
            document = tomllib.loads(text)
            assert document["openai"]["api_key"] == FAKE_OPENAI_KEY  # the other key never lost
            assert document["anthropic"]["api_key"] in keys
            assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
            for temp in leftovers(attune_home, "credentials.toml"):
                # A killed writer's temp file holds a key: it is private from its first byte.
                assert stat.S_IMODE(temp.stat().st_mode) == 0o600

    assert killed == kills
    status = attune("auth", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["providers"]["anthropic"]["key_source"] == "stored"
    login = attune(
        "auth", "login", "anthropic", "--with-key-stdin", "--force", stdin=FAKE_ANTHROPIC_KEY
    )
    assert login.returncode == 0, login.stderr
    assert leftovers(attune_home, "credentials.toml") == []
    assert tomllib.loads(credentials.read_text())["anthropic"]["api_key"] == FAKE_ANTHROPIC_KEY


def write_history(path: Path, workflow: str, rows: int) -> None:
    with path.open("w") as handle:
        for index in range(rows):
            handle.write(
                json.dumps(
                    {
                        "ts": f"2026-01-{1 + index // 1440:02d}T{index // 60 % 24:02d}:"
                        f"{index % 60:02d}:00.000Z",
                        "workflow": workflow,
                        "stage": "review",
                        "model": "gpt-5-mini",
                        "success": index % 7 != 0,
                        "latency_ms": 100.0 + index % 50,
                        "cost_usd": 0.0001,
                    }
                )
                + "\n"
            )


def count_and_check(db_file: Path) -> int:
    conn = sqlite3.connect(db_file)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    finally:
        conn.close()


@SCALES
def test_telemetry_import_is_all_or_nothing_under_sigkill(
    attune_home: Path, tmp_path: Path, kills: int
) -> None:
    # A thousand rows: one import chunk, as two thousand were; each kill round (import, two
    # integrity checks of a store that grows by every finished import) costs half as much.
    rows = 1000
    db_file = attune_home / "telemetry.db"
    sources = []
    for round_number in range(kills):
        source = tmp_path / f"history-{round_number}.jsonl"
        write_history(source, f"wf-{round_number}", rows)
        sources.append(source)
    # How long one import takes here, so the kills spread over its whole length.
    warm = tmp_path / "warm.jsonl"
    write_history(warm, "warm", rows)
    with TelemetryStore(tmp_path / "scratch.db") as scratch:
        began = time.perf_counter()
        import_calls(
            scratch,
            ImportOptions(warm, format="jsonl"),
            registry=load_registry({}, tmp_path / "config.toml"),
        )
        import_s = time.perf_counter() - began
    TelemetryStore(db_file).close()

    expected = 0
    mid_import = 0
    with zygote() as writers:
        delays = kill_delays(random.Random(SEED + 2), import_s * 1.5, kills)
        for source, delay_s in zip(sources, delays, strict=True):
            ended = writers.kill_during(
                "telemetry_import", delay_s, db_file=str(db_file), source=str(source)
            )
            assert ended["signal"] == 9, ended
            seen = count_and_check(db_file)
            # An import commits in chunks with an undo log: a killed one may have left some
            # chunks, which the next import (or prune) deletes again before it starts.
            with TelemetryStore(db_file) as store:
                undone = store.undo_interrupted_imports()
            found = count_and_check(db_file)
            assert found in (expected, expected + rows), (
                f"a partial import survived a kill at {delay_s:.4f}s: {found - expected} rows"
            )
            assert seen - undone == found
            if found == expected:
                mid_import += 1
            expected = found

    # Some kills must have landed inside the transaction, or this proved nothing.
    assert mid_import >= kills // 10, f"only {mid_import} of {kills} kills landed mid-import"
    # The store a killed importer left (with its WAL) is read and written by later runs.
    stats = attune("route", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    with TelemetryStore(db_file) as store:
        result = import_calls(
            store,
            ImportOptions(sources[0], format="jsonl"),
            registry=load_registry({}, attune_home / "config.toml"),
        )
    assert result.imported + result.duplicates == rows
    assert count_and_check(db_file) == expected + result.imported
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    print(f"telemetry import: {kills} kills survived, {mid_import} mid-import, none partial")
