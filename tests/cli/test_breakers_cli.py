"""`attune route breakers [--json]` and `attune route breakers reset [KEY]` over a real store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.cli.complete import complete_breaker_keys
from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.paths import resolve_paths

runner = CliRunner()


def store() -> Path:
    return resolve_paths().telemetry_db


def trip(key: str, at: float) -> None:
    with CircuitBreaker(store(), clock=lambda: at) as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call(key), failure=True)


def succeed(key: str) -> None:
    with CircuitBreaker(store()) as breaker:
        breaker.after_call(breaker.before_call(key), failure=False)


def listed() -> dict[str, dict]:
    result = runner.invoke(app, ["route", "breakers", "--json"])
    assert result.exit_code == 0, result.stderr
    return {item["key"]: item for item in json.loads(result.stdout)}


def test_no_breakers_yet_prints_an_empty_list_and_creates_nothing() -> None:
    as_json = runner.invoke(app, ["route", "breakers", "--json"])
    as_table = runner.invoke(app, ["route", "breakers"])

    assert (as_json.exit_code, json.loads(as_json.stdout)) == (0, [])
    assert as_table.exit_code == 0
    assert as_table.stdout == ""
    assert "No circuit breakers yet" in as_table.stderr
    assert not store().exists()


def test_json_lists_each_breaker_with_its_state_and_retry_time() -> None:
    now = time.time()
    trip("openai/gpt-4o-mini", at=now)
    trip("anthropic/claude-haiku", at=now - 1000)  # its open period is long over
    succeed("openai/gpt-4o")

    items = listed()

    assert sorted(items) == ["anthropic/claude-haiku", "openai/gpt-4o", "openai/gpt-4o-mini"]
    opened = items["openai/gpt-4o-mini"]
    assert opened["state"] == "open"
    assert (opened["failures"], opened["calls"]) == (5, 5)
    assert opened["opened_at"] == pytest.approx(now, abs=1e-3)
    assert 0 < opened["retry_after_s"] <= 30
    assert items["anthropic/claude-haiku"]["state"] == "half_open"
    assert items["anthropic/claude-haiku"]["retry_after_s"] == 0
    assert items["openai/gpt-4o"] == {
        **items["openai/gpt-4o"],
        "state": "closed",
        "failures": 0,
        "calls": 1,
        "opened_at": None,
        "retry_after_s": None,
    }


def test_the_table_shows_states_and_when_to_retry() -> None:
    trip("openai/gpt-4o-mini", at=time.time())
    trip("anthropic/claude-haiku", at=time.time() - 1000)

    result = runner.invoke(app, ["route", "breakers"])

    assert result.exit_code == 0
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if "/" in line}
    assert rows["openai/gpt-4o-mini"][1:4] == ["model", "open", "5/5"]
    retry = rows["openai/gpt-4o-mini"][-1]
    assert retry.endswith("s") and 20 <= int(retry[:-1]) <= 30
    assert rows["anthropic/claude-haiku"][2] == "half-open"
    assert rows["anthropic/claude-haiku"][-1] == "now"


def test_reset_one_breaker_closes_it_and_leaves_the_others() -> None:
    trip("openai/gpt-4o-mini", at=time.time())
    trip("anthropic/claude-haiku", at=time.time())

    result = runner.invoke(app, ["route", "breakers", "reset", "openai/gpt-4o-mini"])

    assert result.exit_code == 0
    assert "openai/gpt-4o-mini" in result.stderr
    assert result.stdout == ""
    states = {key: item["state"] for key, item in listed().items()}
    assert states == {"openai/gpt-4o-mini": "closed", "anthropic/claude-haiku": "open"}


def test_reset_without_a_key_closes_every_breaker() -> None:
    trip("openai/gpt-4o-mini", at=time.time())
    trip("anthropic/claude-haiku", at=time.time())

    result = runner.invoke(app, ["route", "breakers", "reset"])

    assert result.exit_code == 0
    assert "Reset 2 circuit breakers" in result.stderr
    assert {item["state"] for item in listed().values()} == {"closed"}


def test_reset_of_an_unknown_breaker_is_a_usage_error() -> None:
    trip("openai/gpt-4o-mini", at=time.time())

    result = runner.invoke(app, ["route", "breakers", "reset", "openai/gpt-4o-typo"])

    assert result.exit_code == 2
    assert "no circuit breaker named 'openai/gpt-4o-typo'" in result.stderr
    assert "attune route breakers" in result.stderr
    assert listed()["openai/gpt-4o-mini"]["state"] == "open"


def test_an_invalid_breaker_setting_names_the_key(attune_home: Path) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text("[breaker]\nmin_calls = 0\n")

    result = runner.invoke(app, ["route", "breakers"])

    assert result.exit_code == 2
    assert "breaker.min_calls" in result.stderr
    assert "config.toml" in result.stderr


def test_a_corrupt_store_is_reported_with_its_path() -> None:
    store().parent.mkdir(parents=True, exist_ok=True)
    store().write_bytes(b"not sqlite " * 500)

    result = runner.invoke(app, ["route", "breakers", "--json"])

    assert result.exit_code == 1
    assert str(store()) in result.stderr
    assert result.stdout == ""


def test_help_teaches_with_examples() -> None:
    listing = runner.invoke(app, ["route", "breakers", "--help"])
    reset = runner.invoke(app, ["route", "breakers", "reset", "--help"])

    assert "attune route breakers --json" in listing.stdout
    assert "reset" in listing.stdout
    assert "attune route breakers reset openai/gpt-4o-mini" in reset.stdout


def test_completion_offers_the_keys_in_the_store() -> None:
    assert complete_breaker_keys("") == []  # no store: nothing, and no error
    trip("openai/gpt-4o-mini", at=time.time())
    trip("anthropic/claude-haiku", at=time.time())

    assert complete_breaker_keys("") == ["anthropic/claude-haiku", "openai/gpt-4o-mini"]
    assert complete_breaker_keys("open") == ["openai/gpt-4o-mini"]
    assert complete_breaker_keys("x") == []


def test_a_tab_press_on_reset_leaves_no_side_files_by_the_store() -> None:
    from attune_cli.cli import tab
    from attune_cli.cli.completion_tree import TREE

    trip("openai/gpt-4o-mini", at=time.time())
    folder = store().parent
    # A write leaves the store and the writers' lock files (no WAL files once closed).
    before = sorted(p.name for p in folder.iterdir())
    assert before == ["telemetry.db", "telemetry.db-writers", "telemetry.db-writers-gate"]

    items = tab.complete_from_tree(TREE, ["route", "breakers", "reset"], "")

    assert [item.value for item in items or []] == ["openai/gpt-4o-mini"]
    assert sorted(p.name for p in folder.iterdir()) == before


ENDPOINT = "endpoint:http://127.0.0.1:9/v1"


def test_an_endpoint_circuit_is_listed_first_and_marked_as_one() -> None:
    trip("openai/gpt-4o-mini", at=time.time())
    with CircuitBreaker(store()) as breaker:
        # One failure is enough for an endpoint.
        breaker.after_call(breaker.before_call(ENDPOINT), failure=True)

    result = runner.invoke(app, ["route", "breakers", "--json"])
    items = json.loads(result.stdout)
    assert [(i["key"], i["kind"], i["state"]) for i in items] == [
        (ENDPOINT, "endpoint", "open"),
        ("openai/gpt-4o-mini", "model", "open"),
    ]
    table = runner.invoke(app, ["route", "breakers"])
    rows = [line.split() for line in table.stdout.splitlines() if "/" in line][1:]
    assert rows[0][:4] == [ENDPOINT, "endpoint", "open", "1/1"]
    assert rows[1][:3] == ["openai/gpt-4o-mini", "model", "open"]


def test_an_endpoint_circuit_can_be_reset_by_the_key_shown_and_completed() -> None:
    with CircuitBreaker(store()) as breaker:
        breaker.after_call(breaker.before_call(ENDPOINT), failure=True)
    assert complete_breaker_keys("end") == [ENDPOINT]

    result = runner.invoke(app, ["route", "breakers", "reset", ENDPOINT])

    assert result.exit_code == 0, result.stderr
    assert ENDPOINT in result.stderr
    assert listed()[ENDPOINT]["state"] == "closed"


def test_a_key_with_markup_is_shown_as_written() -> None:
    key = "endpoint:http://[::1]:8080/[bold]v1"
    with CircuitBreaker(store()) as breaker:
        breaker.after_call(breaker.before_call(key), failure=True)
    result = runner.invoke(app, ["route", "breakers"])
    assert key in result.stdout


def test_tab_completes_an_endpoint_key_across_bash_colon_word_breaks() -> None:
    from attune_cli.cli import tab
    from attune_cli.cli.completion_tree import TREE

    with CircuitBreaker(store()) as breaker:
        breaker.after_call(breaker.before_call(ENDPOINT), failure=True)
    typed = "endpoint:http://127"
    items = tab.complete_from_tree(TREE, ["route", "breakers", "reset"], typed)
    assert [item.value for item in items or []] == [ENDPOINT]
    # bash keeps what precedes the last ':' of the word; the reply is the rest.
    assert tab.format_bash(items or [], typed, typed) == "//127.0.0.1:9/v1"
