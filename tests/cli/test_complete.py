"""Tab completion: the values offered, how they fail, and the fast path agreeing with click."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from attune_cli.cli import complete, shells, tab
from attune_cli.cli.app import app
from attune_cli.core.telemetry.db import connect

CLI = typer.main.get_command(app)
TREE = shells.command_tree(CLI)
runner = CliRunner()


def seed_store(home: Path, **names: list[str]) -> Path:
    """A real store (the app's schema) whose labels hold ``names`` (kind → values)."""
    path = home / "telemetry.db"
    conn = connect(path)
    for kind, values in names.items():
        conn.executemany("INSERT INTO labels VALUES (?, ?)", [(kind, v) for v in values])
    conn.close()
    return path


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


# --- the values ---------------------------------------------------------------------------


def test_stages_come_from_telemetry_and_config_filtered_by_prefix(attune_home: Path) -> None:
    seed_store(attune_home, stage=["triage", "analysis", "translate"], workflow=["triage-bot"])
    write_config(attune_home, '[routing.stages]\nplan = "premium"\ntidy = "cheap"\n')

    assert complete.complete_stages("") == ["analysis", "plan", "tidy", "translate", "triage"]
    assert complete.complete_stages("t") == ["tidy", "translate", "triage"]
    assert complete.complete_stages("tri") == ["triage"]
    assert complete.complete_stages("z") == []


def test_workflows_come_from_telemetry(attune_home: Path) -> None:
    seed_store(attune_home, workflow=["code-review", "doc-gen"], stage=["code-lint"])
    assert complete.complete_workflows("") == ["code-review", "doc-gen"]
    assert complete.complete_workflows("code") == ["code-review"]


def test_models_merge_registry_config_and_telemetry(attune_home: Path) -> None:
    seed_store(attune_home, model=["gpt-4o-mini", "claude-haiku-4-5"])
    write_config(
        attune_home,
        '[models."llama3.1:8b"]\nprovider = "ollama"\ntier = "cheap"\n'
        '[providers.ollama]\napi = "openai"\nbase_url = "http://localhost:11434/v1"\n',
    )
    models = complete.complete_models("")
    assert {"claude-haiku-4-5", "gpt-5", "gpt-4o-mini", "llama3.1:8b"} <= set(models)
    assert models == sorted(set(models))
    assert complete.complete_models("gpt-4") == ["gpt-4o-mini"]
    assert complete.complete_models("llama3.1:") == ["llama3.1:8b"]


def test_providers_are_built_in_plus_configured(attune_home: Path) -> None:
    assert complete.complete_providers("") == ["anthropic", "openai"]
    write_config(attune_home, '[providers.ollama]\napi = "openai"\nbase_url = "http://x/v1"\n')
    assert complete.complete_providers("") == ["anthropic", "ollama", "openai"]
    assert complete.complete_providers("o") == ["ollama", "openai"]


def test_breaker_keys_come_from_the_store(attune_home: Path) -> None:
    conn = connect(seed_store(attune_home))
    conn.executemany(
        "INSERT INTO breakers (key) VALUES (?)",
        [("openai/gpt-5",), ("anthropic/claude-haiku-4-5",), ("openai/gpt-5-mini",)],
    )
    conn.close()
    assert complete.complete_breaker_keys("") == [
        "anthropic/claude-haiku-4-5",
        "openai/gpt-5",
        "openai/gpt-5-mini",
    ]
    assert complete.complete_breaker_keys("openai/gpt-5-") == ["openai/gpt-5-mini"]


def test_prefix_is_literal_not_a_pattern(attune_home: Path) -> None:
    seed_store(attune_home, stage=["a_b", "axb", "a%c", "été", "e"])
    assert complete.complete_stages("a_") == ["a_b"]
    assert complete.complete_stages("a%") == ["a%c"]
    assert complete.complete_stages("é") == ["été"]


# --- never loud, never writing --------------------------------------------------------------


def test_no_store_and_no_config_create_nothing(attune_home: Path, capfd) -> None:
    assert complete.complete_stages("") == []
    assert complete.complete_workflows("") == []
    assert complete.complete_providers("") == ["anthropic", "openai"]
    assert not attune_home.exists()
    assert capfd.readouterr() == ("", "")


def test_reading_a_quiet_store_leaves_no_side_files(attune_home: Path) -> None:
    path = seed_store(attune_home, stage=["triage"])
    before = sorted(p.name for p in attune_home.iterdir())
    assert complete.complete_stages("") == ["triage"]
    assert sorted(p.name for p in attune_home.iterdir()) == before
    assert before == ["telemetry.db"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_store_being_written_still_completes(attune_home: Path) -> None:
    path = seed_store(attune_home, stage=["triage"])
    writer = connect(path)  # WAL mode: the -wal file exists while a writer is open
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO labels VALUES ('stage', 'uncommitted')")
    try:
        assert complete.complete_stages("") == ["triage"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_locked_store_gives_config_stages_only(attune_home: Path, capfd) -> None:
    path = seed_store(attune_home, stage=["triage"])
    write_config(attune_home, '[routing.stages]\nplan = "premium"\n')
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("PRAGMA locking_mode = EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("INSERT INTO labels VALUES ('stage', 'x')")
    try:
        assert complete.complete_stages("") == ["plan"]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000, b""],
    ids=["garbage", "torn-header", "empty"],
)
def test_a_corrupt_store_offers_nothing_quietly(attune_home: Path, capfd, content: bytes) -> None:
    attune_home.mkdir()
    (attune_home / "telemetry.db").write_bytes(content)
    assert complete.complete_stages("") == []
    assert complete.complete_workflows("t") == []
    assert capfd.readouterr() == ("", "")


def test_a_store_without_labels_table_offers_nothing(attune_home: Path) -> None:
    attune_home.mkdir()
    conn = sqlite3.connect(attune_home / "telemetry.db")
    conn.execute("CREATE TABLE calls (stage TEXT)")
    conn.execute("INSERT INTO calls VALUES ('triage')")
    conn.commit()
    conn.close()
    assert complete.complete_stages("") == []


def test_a_broken_config_still_offers_telemetry_and_builtins(attune_home: Path, capfd) -> None:
    seed_store(attune_home, stage=["triage"])
    write_config(attune_home, "[routing.stages\nplan = ")
    assert complete.complete_stages("") == ["triage"]
    assert complete.complete_providers("") == ["anthropic", "openai"]
    write_config(attune_home, "routing = 3\nproviders = 'x'\n")
    assert complete.complete_stages("") == ["triage"]
    assert complete.complete_providers("") == ["anthropic", "openai"]
    assert capfd.readouterr() == ("", "")


def test_suggestions_are_bounded(attune_home: Path) -> None:
    seed_store(attune_home, stage=[f"s{i:05d}" for i in range(complete.MAX_SUGGESTIONS + 50)])
    assert len(complete.complete_stages("s")) == complete.MAX_SUGGESTIONS


# --- the wire format -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "typed", "word", "reply"),
    [
        ("route", "ro", "ro", "route"),
        ("triage", "", "", "triage"),
        ("llama3.1:8b", "llama3.1:8", "8", "8b"),  # readline replaces what follows the ':'
        ("llama3.1:8b", "llama3.1:", ":", "8b"),
        ("triage", "--stage=tri", "tri", "triage"),  # click answers the value after '='
        ("triage", "--stage=", "=", "triage"),
        ("llama3.1:8b", "--model=llama3.1:", ":", "8b"),
        ("llama3.1:8b", "--model=llama3.1:8", "8", "8b"),
        ("my stage", "my st", '"my st', "my stage"),  # inside an open quote
    ],
)
def test_bash_reply_replaces_only_what_readline_replaces(
    value: str, typed: str, word: str, reply: str
) -> None:
    assert tab.bash_reply(value, typed, word) == reply


def test_bash_reply_follows_the_shells_own_word_breaks() -> None:
    assert tab.bash_reply("triage", "--stage=tri", "--stage=tri", " \t\n") == "--stage=triage"
    assert tab.bash_reply("llama3.1:8b", "llama3.1:8", "llama3.1:8", " \t\n=") == "llama3.1:8b"


@pytest.mark.parametrize(
    ("line", "args", "incomplete"),
    [
        ("attune ro", [], "ro"),
        ("attune route ", ["route"], ""),
        ("attune route explain 'my st", ["route", "explain"], "my st"),
        ('attune route explain "a b" --wor', ["route", "explain", "a b"], "--wor"),
        ("attune", [], ""),
    ],
)
def test_lines_split_as_a_shell_would(line: str, args: list[str], incomplete: str) -> None:
    assert tab.split_line(line) == (args, incomplete)


def test_zsh_and_fish_formats_escape_and_describe() -> None:
    items = [tab.Item("a:b", "It's [bold]$5[/bold]"), tab.Item("plain")]
    assert tab.format_zsh(items) == ('_arguments \'*: :(("a\\\\:b":"It\'\'s \\$5"\n"plain"))\'')
    assert tab.format_fish(items) == "a:b\tIt's $5\nplain"
    assert (
        tab.format_zsh([tab.Item("cheap")], "--tier=c") == "_arguments '*: :((\"--tier=cheap\"))'"
    )
    assert tab.format_fish([tab.Item("cheap", "x")], "--tier=") == "--tier=cheap\tx"
    assert tab.format_zsh([]) == "_files"
    assert tab.format_zsh([tab.Item("x", type="dir")]) == "_files -/"
    assert tab.format_bash([tab.Item("x", type="file")], "x", "x") == ""


# --- both paths give click's answer -------------------------------------------------------


def click_answer(args: list[str], incomplete: str) -> list[tab.Item]:
    """What click itself resolves for the line (the reference the fast path must match).

    Compared sorted: every shell sorts the words it shows, and click lists ``-h``/``--help``
    in an order that changes from run to run (it builds them from a set).
    """
    completer = shells.BashComplete(CLI, {}, "attune", "_ATTUNE_COMPLETE")
    items = completer.get_completions(args, incomplete)
    return sorted(tab.Item(c.value, c.help, c.type) for c in items)


def fast_answer(args: list[str], incomplete: str) -> list[tab.Item] | None:
    items = tab.complete_from_tree(TREE, list(args), incomplete)
    return None if items is None else sorted(items)


COMMON_LINES = [
    "attune ",
    "attune ro",
    "attune -",
    "attune route ",
    "attune route explain ",
    "attune route explain tri",
    "attune route explain --",
    "attune route explain --workflow ",
    "attune route explain -w cod",
    "attune route explain triage --json --",
    "attune route explain --workflow=",
    "attune route best triage --workflow code-review --max-cost 0.1 ",
    "attune route breakers ",
    "attune route breakers reset ",
    "attune auth login ",
    "attune auth login op",
    "attune auth setup --tier ",
    "attune auth setup --mode a",
    "attune auth setup --provider ",
    "attune ask --model ",
    "attune ask --tier ",
    "attune ask hello --stage ",
    "attune telemetry ",
    "attune telemetry show --model ",
    "attune telemetry show --stage tr",
    "attune telemetry models --workflow ",
    "attune telemetry import history.jsonl --format ",
    "attune telemetry export --format c",
    "attune telemetry record --success --",
    "attune demo --",
]


@pytest.mark.parametrize("line", COMMON_LINES)
def test_fast_path_answers_common_lines_exactly_as_click(attune_home: Path, line: str) -> None:
    seed_store(attune_home, stage=["triage"], workflow=["code-review"], model=["gpt-4o-mini"])
    args, incomplete = tab.split_line(line)
    fast = fast_answer(args, incomplete)
    assert fast is not None, f"the fast path handed {line!r} to click"
    assert fast == click_answer(list(args), incomplete)


def _vocabulary(node: dict, words: set[str]) -> None:
    for param in node["params"]:
        words.update(param.get("names", []))
        if param["values"] and param["values"][0] == "choices":
            words.update(param["values"][1])
    for name, child in (node.get("commands") or {}).items():
        words.add(name)
        _vocabulary(child, words)


VOCABULARY: set[str] = {"triage", "x", "--", "-", "-hy", "--bogus", "--json=1", "--stage=tri", "="}
_vocabulary(TREE, VOCABULARY)
NOISE = st.sampled_from(sorted(VOCABULARY)) | st.text("ab-=:", max_size=4)
VALUES = st.sampled_from(["triage", "code-review", "x", "0.5", "-", "--json"])


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[list[str], str]:
    """Mostly valid lines (a sub-command path, then its own options and words), some noise."""
    node, args = TREE, []

    def some_words(node: dict) -> None:
        options = [p for p in node["params"] if p["kind"] == "option"]
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["option", "option", "word", "noise"]))
            if kind == "option" and options:
                option = draw(st.sampled_from(options))
                name = draw(st.sampled_from(option["names"]))
                if option["takes_value"] and draw(st.booleans()):
                    value = draw(VALUES)
                    args.extend([f"{name}={value}"] if draw(st.booleans()) else [name, value])
                else:
                    args.append(name)
            elif kind == "noise":
                args.append(draw(NOISE))
            elif node.get("commands") is None:
                args.append(draw(VALUES))

    while node.get("commands") and draw(st.integers(0, 3)):
        if draw(st.integers(0, 4)) == 0:
            some_words(node)
        name = draw(st.sampled_from(sorted(node["commands"])))
        args.append(name)
        node = node["commands"][name]
    some_words(node)
    word = draw(st.sampled_from(sorted(VOCABULARY)) | VALUES | st.just(""))
    return args, word[: draw(st.integers(0, len(word)))]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=command_lines())
def test_fast_path_never_disagrees_with_click(
    attune_home: Path, line: tuple[list[str], str]
) -> None:
    args, incomplete = line
    fast = fast_answer(args, incomplete)
    if fast is None:
        return  # handed to click: nothing to compare
    assert fast == click_answer(list(args), incomplete)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(NOISE, max_size=6), incomplete=NOISE)
def test_fast_path_never_disagrees_with_click_on_noise(
    attune_home: Path, args: list[str], incomplete: str
) -> None:
    fast = fast_answer(args, incomplete)
    if fast is not None:
        assert fast == click_answer(list(args), incomplete)


def test_fast_path_runs_the_same_callbacks(attune_home: Path) -> None:
    seed_store(attune_home, stage=["triage", "translate"])
    args, incomplete = tab.split_line("attune route explain tr")
    assert [i.value for i in tab.complete_from_tree(TREE, args, incomplete)] == [
        "translate",
        "triage",
    ]


def test_a_stale_or_broken_tree_hands_the_line_to_click() -> None:
    stale = {
        "help": "",
        "hidden": False,
        "plain": True,
        "params": [{"kind": "argument", "nargs": 1, "values": ("call", "attune_cli.gone", "f")}],
    }
    assert tab.complete_from_tree(stale, [], "") is None
    odd = dict(stale, params=[{"kind": "argument", "nargs": 1, "values": ("unsure",)}])
    assert tab.complete_from_tree(odd, [], "") is None


# --- through the app (CliRunner) ----------------------------------------------------------


def test_the_app_answers_bash_with_words_only(attune_home: Path) -> None:
    seed_store(attune_home, stage=["triage", "analysis"])
    env = {
        "_ATTUNE_COMPLETE": "complete_bash",
        "COMP_LINE": "attune route explain ",
        "COMP_WORD": "",
    }
    result = runner.invoke(app, [], env=env)
    assert result.exit_code == 0
    assert result.stdout.split() == ["analysis", "triage"]


def test_the_app_answers_zsh_and_fish_with_descriptions(attune_home: Path) -> None:
    result = runner.invoke(
        app, [], env={"_ATTUNE_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "attune ro"}
    )
    assert result.stdout.startswith('_arguments \'*: :(("route":"')
    result = runner.invoke(
        app,
        [],
        env={
            "_ATTUNE_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "attune auth login ",
        },
    )
    assert result.stdout.split() == ["anthropic", "openai"]


def test_a_failing_callback_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(incomplete: str) -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(complete, "_labels", boom)
    env = {
        "_ATTUNE_COMPLETE": "complete_bash",
        "COMP_LINE": "attune route explain ",
        "COMP_WORD": "",
    }
    result = runner.invoke(app, [], env=env)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


# --- what a Tab press imports --------------------------------------------------------------

PROBE = """
import json, sys
from attune_cli.cli.entry import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\n@@" + json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)))
"""
HEAVY = ("httpx", "questionary", "tomlkit", "prompt_toolkit", "rich", "pydantic")


def _tab_press(home: Path, line: str) -> tuple[list[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_ATTUNE", "COMP_"))}
    env.update(ATTUNE_HOME=str(home), _ATTUNE_COMPLETE="complete_bash", COMP_LINE=line)
    env["COMP_WORD"] = "" if line.endswith(" ") else line.split()[-1]
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert done.stderr == ""
    words, _, modules = done.stdout.rpartition("@@")
    return words.split(), set(json.loads(modules))


@pytest.fixture
def store_home(attune_home: Path) -> Iterator[Path]:
    seed_store(attune_home, stage=["triage"], workflow=["code-review"])
    yield attune_home


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("attune ro", ["route"]),
        ("attune route explain ", ["triage"]),
        ("attune auth login ", ["anthropic", "openai"]),
        ("attune ask --model claude-o", ["claude-opus-4-5"]),
    ],
)
def test_a_tab_press_imports_neither_typer_nor_anything_heavy(
    store_home: Path, line: str, expected: list[str]
) -> None:
    words, modules = _tab_press(store_home, line)
    assert words == expected
    loaded = {m.split(".")[0] for m in modules}
    assert "typer" not in loaded
    assert sorted(loaded & set(HEAVY)) == []


@pytest.mark.e2e
def test_a_line_left_to_click_imports_nothing_heavy_either(store_home: Path) -> None:
    words, modules = _tab_press(store_home, "attune route explain -- ")
    assert words == ["triage"]
    assert "typer" in {m.split(".")[0] for m in modules}  # really the fallback
    assert sorted({m.split(".")[0] for m in modules} & set(HEAVY)) == []
