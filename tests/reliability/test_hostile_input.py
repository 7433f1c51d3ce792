"""Hostile input: every parser attune has, fed by hypothesis.

Each parser must turn anything it is given into a result or a clear ``AttuneError`` (the
documented exit code comes from its class), never another exception, and a rejected input
must leave every file as it was. Volume is tested at the core-function level; a few cases go
through the real command to check the exit code and that no traceback is printed.

Examples per parser come from the hypothesis profile (``tests/conftest.py``): quick by default,
thorough under ``CI=true``; the ``soak`` variants give each parser 5,000.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomlkit
from helpers.reliability import (
    FAKE_ANTHROPIC_KEY,
    FAKE_KEYS,
    FAKE_OPENAI_KEY,
    assert_clean_failure,
    attune,
)
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from attune_cli.core.auth import AuthStrategy
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.config import read_toml
from attune_cli.core.credentials import resolve_key, store_key, stored_providers
from attune_cli.core.errors import AttuneError, ConfigError, InputFileError, UsageError
from attune_cli.core.executor import ResilientExecutor, RetryPolicy, Timeouts
from attune_cli.core.paths import Paths
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.providers import (
    CallFailed,
    ChatRequest,
    Completion,
    Endpoint,
    adapter_for,
    resolve_endpoints,
)
from attune_cli.core.registry import load_registry
from attune_cli.core.routing import RoutingSettings
from attune_cli.core.telemetry.importers import (
    EXPORT_FIELDS,
    ImportOptions,
    export_calls,
    import_calls,
)
from attune_cli.core.telemetry.sqlite import TelemetryStore

SOAK_EXAMPLES = 5_000
# The default variant takes its example count from the hypothesis profile (tests/conftest.py:
# quick by default, thorough under CI=true); the soak variant always gives each parser 5,000.
SCALES = pytest.mark.parametrize(
    "examples",
    [None, pytest.param(SOAK_EXAMPLES, marks=pytest.mark.soak)],
    ids=["profile", "5000"],
)


def scaled(examples: int | None, share: int = 1) -> settings:
    """The suite's settings with ``examples`` examples (None: the profile's), over ``share``."""
    count = settings.default.max_examples if examples is None else examples
    return settings(SETTINGS, max_examples=max(1, count // share))


SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- values -----------------------------------------------------------------------------

keys = st.text(min_size=1, max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.dates(),
    st.datetimes(),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)
# Integers past SQLite's 64 bits and past float's range: hypothesis rarely draws them alone.
BIG_INTS = st.sampled_from([2**63, -(2**63) - 1, 10**30, 10**400])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | BIG_INTS
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def plausible(*good: Any) -> st.SearchStrategy[Any]:
    """Mostly values of the right shape (to reach the deeper checks), sometimes anything."""
    return st.one_of(*[st.sampled_from(good)] * 4, toml_values)


def section(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


NUMBER = plausible(0, 1, 2, 0.5, 30, 600, -1, 1e308, math.inf, math.nan)
TIER = plausible("cheap", "capable", "premium", "CHEAP", "", "huge")
config_documents = st.fixed_dictionaries(
    {},
    optional={
        "auth": plausible({})
        | section(
            {
                "subscription_tier": plausible("pro", "max", "free", "api_only", "PRO"),
                "default_mode": plausible("auto", "api", "subscription"),
                "small_module_threshold": NUMBER,
                "medium_module_threshold": NUMBER,
                "loc_to_tokens_multiplier": NUMBER,
                "setup_completed": plausible(True, False),
                "estimate_model": plausible("gpt-5", "", "no-such-model"),
                "metadata": toml_values,
            }
        ),
        "routing": section(
            {
                "window_days": NUMBER,
                "min_calls": NUMBER,
                "min_success_rate": NUMBER,
                "max_cost_usd": NUMBER,
                "max_latency_ms": NUMBER,
                "half_life_days": NUMBER,
                "explore": plausible(True, False),
                "explore_share": NUMBER,
                "default_tier": TIER,
                "stages": st.dictionaries(keys, TIER, max_size=3) | toml_values,
                "score": section({"success": NUMBER, "cost": NUMBER, "latency": NUMBER})
                | toml_values,
            }
        ),
        "breaker": section(
            {
                name: NUMBER
                for name in (
                    "window_s",
                    "failure_rate_threshold",
                    "min_calls",
                    "consecutive_failures",
                    "open_base_s",
                    "open_max_s",
                    "probe_lease_s",
                    "lock_timeout_s",
                )
            }
        ),
        "executor": section(
            {
                name: NUMBER
                for name in ("max_retries", "deadline_s", "connect_timeout_s", "read_timeout_s")
            }
        ),
        "providers": st.dictionaries(
            st.sampled_from(["openai", "anthropic", "local", "x y"]) | keys,
            section(
                {
                    "api": plausible("openai", "anthropic", "grpc"),
                    "base_url": plausible("http://127.0.0.1:9/v1", "ftp://x", "https://"),
                    "key_env": plausible("LOCAL_KEY", "", "OPENAI_API_KEY"),
                }
            )
            | toml_values,
            max_size=2,
        ),
        "models": st.dictionaries(
            st.sampled_from(["gpt-5", "llama3.1:8b", "m"]) | keys,
            section(
                {
                    "provider": plausible("openai", "local", "nobody"),
                    "tier": TIER,
                    "input_usd_per_mtok": NUMBER,
                    "output_usd_per_mtok": NUMBER,
                    "context_window": NUMBER,
                }
            )
            | toml_values,
            max_size=2,
        ),
        "telemetry": toml_values,
    },
)


def dump_toml(document: dict[str, Any]) -> str:
    try:
        return tomlkit.dumps(document)
    except Exception:  # tomlkit cannot write some shapes (a bare time with a tz …)
        assume(False)
        raise


def load_every_setting(config: dict[str, Any], path: Path, home: Path) -> None:
    """Everything attune reads from a parsed config.toml, as the commands read it."""
    registry = load_registry(config, path)
    AuthStrategy.from_config(config, path)
    RoutingSettings.from_config(config, path)
    ScoreWeights.from_config(config, path)
    BreakerSettings.from_config(config, path)
    RetryPolicy.from_config(config, path)
    Timeouts.from_config(config, path).capped(1.0)
    paths = Paths(home, home)

    def key_for(provider: Any) -> str | None:
        resolved = resolve_key(provider, paths, {"LOCAL_KEY": "k", "OPENAI_API_KEY": "k"})
        return resolved.value if resolved else None

    resolve_endpoints(registry, config, {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, key_for)


@SCALES
def test_config_toml_documents_load_or_fail_with_a_config_error(examples: int | None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        path = home / "config.toml"

        @scaled(examples)
        @given(config_documents)
        @example({"models": {"m": {"provider": ["openai"], "tier": "cheap"}}})
        @example({"providers": {"openai": {"key_env": ["OPENAI_API_KEY"]}}})
        @example({"executor": {"read_timeout_s": math.nan}})
        @example({"breaker": {"window_s": math.inf}})
        def check(document: dict[str, Any]) -> None:
            path.write_text(dump_toml(document), encoding="utf-8")
            try:
                config = read_toml(path)
                load_every_setting(config, path, home)
            except ConfigError as exc:
                assert str(path) in exc.message

        check()


@SCALES
def test_config_toml_bytes_never_crash_a_read_and_a_refused_rewrite_changes_nothing(
    examples: int | None,
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        path = home / "config.toml"

        @scaled(examples)
        @given(
            st.one_of(
                st.binary(max_size=200),
                st.text(max_size=200).map(str.encode),
                config_documents.map(dump_toml).flatmap(
                    lambda text: st.integers(0, len(text)).map(lambda cut: text[:cut].encode())
                ),
            )
        )
        def check(raw: bytes) -> None:
            path.write_bytes(raw)
            with contextlib.suppress(ConfigError):
                load_every_setting(read_toml(path), path, home)
            try:
                AuthStrategy(subscription_tier="max").save(path)
            except ConfigError:
                assert path.read_bytes() == raw, "a refused rewrite changed config.toml"
            else:
                # What tomlkit accepted and rewrote still holds the new setting.
                assert "max" in path.read_text(encoding="utf-8")
            assert list(home.glob(".config.toml.*.tmp")) == []

        check()


# --- credentials.toml -------------------------------------------------------------------

credential_documents = st.dictionaries(
    st.sampled_from(["anthropic", "openai"]) | keys,
    st.one_of(
        st.fixed_dictionaries({"api_key": plausible(FAKE_ANTHROPIC_KEY, "", "  ")}),
        st.just(FAKE_OPENAI_KEY),  # a key written in the wrong place
        toml_values,
    ),
    max_size=3,
)


@SCALES
def test_credentials_toml_documents_resolve_or_fail_without_echoing_a_key(
    examples: int | None,
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        paths = Paths(home, home)
        registry = load_registry({}, paths.config_file)

        @scaled(examples)
        @given(credential_documents | st.binary(max_size=120).map(lambda b: {"__raw__": b}))
        def check(document: dict[str, Any]) -> None:
            raw = document.get("__raw__")
            if isinstance(raw, bytes):
                paths.credentials_file.write_bytes(raw)
            else:
                paths.credentials_file.write_text(dump_toml(document))
            paths.credentials_file.chmod(0o600)
            before = paths.credentials_file.read_bytes()
            try:
                stored_providers(paths)
                for provider in registry.providers.values():
                    resolve_key(provider, paths, {})
            except ConfigError as exc:
                for key in (FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY):
                    assert key not in str(exc) and key not in (exc.hint or "")
            try:
                store_key(paths, "openai", FAKE_OPENAI_KEY)
            except ConfigError as exc:
                assert FAKE_OPENAI_KEY not in str(exc)
                assert paths.credentials_file.read_bytes() == before
            assert list(home.glob(".credentials.toml.*.tmp")) == []

        check()


@SCALES
def test_any_accepted_key_is_stored_and_read_back_exactly(examples: int | None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        paths = Paths(home, home)
        provider = load_registry({}, paths.config_file).providers["anthropic"]

        @scaled(examples)
        @given(st.text(min_size=0, max_size=80))
        def check(key: str) -> None:
            try:
                store_key(paths, "anthropic", key)
            except UsageError as exc:
                assert not key.strip() or key.strip() not in str(exc) + (exc.hint or "")
                return
            resolved = resolve_key(provider, paths, {})
            assert resolved is not None and resolved.value == key.strip()
            if len(key.strip()) >= 8:
                assert key.strip() not in repr(resolved)

        check()


# --- telemetry imports -------------------------------------------------------------------


def jplausible(*good: Any) -> st.SearchStrategy[Any]:
    """``plausible`` for JSON: mostly the right shape, sometimes any JSON value."""
    return st.one_of(*[st.sampled_from(good)] * 4, json_values)


GOOD_TS = st.sampled_from(
    ["2026-01-07T07:30:45.123Z", "2026-01-07T07:30:45Z", "2026-01-07 07:30:45", "2026-02-30T00:00Z"]
)
# Sized like a timestamp (20-30 items), for parsers that test lengths before types.
TS_SIZED = st.sampled_from([{str(i): i for i in range(22)}, list(range(24)), "x" * 24 + "Z"])
TS = (
    jplausible("2026-01-07T07:30:45.123Z") | GOOD_TS | TS_SIZED | st.text(max_size=26) | json_values
)
export_objects = st.fixed_dictionaries(
    {},
    optional={
        "ts": TS,
        "workflow": jplausible("review", "", None),
        "stage": jplausible("draft", None),
        "provider": jplausible("openai", None),
        "model": jplausible("gpt-5-mini", "", None),
        "tier": jplausible("cheap", None),
        "success": jplausible(True, False, None, "yes"),
        "error_kind": jplausible("timeout", None),
        "status": jplausible(200, 500, -1, 2.0),
        "latency_ms": jplausible(12.5, 0, -3, 1e308),
        "input_tokens": jplausible(10, 0, -1, 1.5),
        "output_tokens": jplausible(10, None),
        "cost_usd": jplausible(0.001, None, -1.0),
        "attempt": jplausible(1, 2, 0, None),
        "source": jplausible("jsonl", None),
        "key": jplausible("abc", None, ""),
    },
)
legacy_objects = st.fixed_dictionaries(
    {},
    optional={
        "v": jplausible(1),
        "ts": TS,
        "seq": jplausible(1, 2),
        "workflow": jplausible("code-review", None),
        "stage": jplausible("analysis", None),
        "tier": jplausible("CHEAP", "capable", None),
        "model": jplausible("claude-sonnet-4.5", "gpt-5-mini", None),
        "provider": jplausible("anthropic", None),
        "cost": jplausible(0.01, -1, None),
        "tokens": jplausible({"input": 10, "output": 5}, {"input": -1}, None),
        "cache": jplausible({"hit": True}, {"hit": False}, None),
        "duration_ms": jplausible(120, None, -5),
        "user_id": json_values,
        "success": jplausible(True, False, None),
    },
)


def json_lines(objects: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    line = st.one_of(
        objects.map(lambda o: json.dumps(o).encode()),
        objects.map(lambda o: json.dumps(o).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40).filter(lambda b: b"\n" not in b),
        st.just(b""),
        st.just(b'{"ts": "2026-01-07T07:30:45.123Z", "model": "gpt-5-mini", "success": true'),
    )
    return st.lists(line, min_size=1, max_size=8).map(lambda lines: b"\n".join(lines) + b"\n")


def csv_files() -> st.SearchStrategy[bytes]:
    cell = st.one_of(
        st.sampled_from(["", "true", "false", "gpt-5-mini", "2026-01-07T07:30:45.123Z", "1.5"]),
        st.text(max_size=12),
    )

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        header = draw(
            st.lists(
                st.sampled_from([*EXPORT_FIELDS, "extra", ""]), min_size=0, max_size=8, unique=True
            )
        )
        rows = draw(st.lists(st.lists(cell, max_size=len(header) + 1), max_size=6))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        text = out.getvalue()
        if draw(st.booleans()):
            text += draw(st.text(max_size=30))
        return (
            text.encode("utf-8", "surrogatepass")
            if draw(st.booleans())
            else text.encode("utf-8", "replace")
        )

    return build()


sqlite_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.sampled_from(["gpt-5-mini", "2026-01-07T07:30:45", "2026-01-07 07:30:45.123456", "claude"]),
)


@st.composite
def llm_databases(draw: st.DrawFn) -> list[tuple[Any, ...]] | bytes:
    if draw(st.integers(0, 9)) == 0:
        return b"SQLite format 3\x00" + draw(st.binary(max_size=200))
    return draw(st.lists(st.tuples(*[sqlite_values] * 6), max_size=6))


def write_llm_db(path: Path, content: list[tuple[Any, ...]] | bytes, columns: list[str]) -> None:
    path.unlink(missing_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
        return
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE responses ({', '.join(columns)})")
    conn.executemany(
        f"INSERT INTO responses VALUES ({', '.join('?' for _ in columns)})",
        [row[: len(columns)] for row in content],
    )
    conn.commit()
    conn.close()


def count_rows(store: TelemetryStore) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


def check_import(
    store: TelemetryStore, path: Path, fmt: str, skip_bad: bool, registry: Any
) -> None:
    """Import ``path``: a result or an InputFileError; rejected means nothing written."""
    before = count_rows(store)
    try:
        result = import_calls(
            store, ImportOptions(path, format=fmt, skip_bad=skip_bad), registry=registry
        )
    except InputFileError as exc:
        assert exc.message
        assert count_rows(store) == before
        return
    after = count_rows(store)
    assert store.conn.in_transaction is False
    for error in result.errors:
        assert error.line >= 1 and error.reason
    if result.rejected:
        assert after == before and result.imported == 0 and result.bad > 0 and not skip_bad
        return
    assert after - before == result.imported
    assert result.read == result.imported + result.duplicates + result.bad + result.cache_hits
    # Whatever was imported can be shown and exported (json and csv) without an error.
    for export_format in ("jsonl", "csv"):
        export_calls(store, _everything(), export_format, io.StringIO())


def _everything() -> Any:
    from attune_cli.core.telemetry.records import CallFilter

    return CallFilter()


def run_import_property(
    strategy: st.SearchStrategy[Any],
    fmt: str,
    write: Callable[[Path, Any], None],
    regressions: tuple[Any, ...] = (),
    examples: int | None = None,
) -> str:
    """Import every generated file (and each regression, with and without skip_bad); each
    import is checked as it ends (``check_import``). Returns the store's integrity check
    after all of them (``ok`` for a sound file)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        registry = load_registry({}, folder / "config.toml")
        store = TelemetryStore(folder / "telemetry.db")
        source = folder / ("input.csv" if fmt == "csv" else "input.data")
        try:

            @scaled(examples)
            @given(strategy, st.booleans(), st.booleans())
            def check(content: Any, skip_bad: bool, auto: bool) -> None:
                write(source, content)
                check_import(store, source, "auto" if auto else fmt, skip_bad, registry)

            for content in regressions:  # inputs that once crashed an import
                for skip_bad in (False, True):
                    write(source, content)
                    check_import(store, source, fmt, skip_bad, registry)
            check()
            return str(store.conn.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            store.close()


@SCALES
def test_jsonl_imports_never_crash_and_never_half_write(examples: int | None) -> None:
    huge = b'{"ts": "2026-01-07T07:30:45.123Z", "model": "m", "success": true, "status": '
    integrity = run_import_property(
        json_lines(export_objects),
        "jsonl",
        Path.write_bytes,
        (huge + b"9" * 5000 + b"}\n", huge + b"9" * 30 + b"}\n", b"[" * 100_000 + b"\n"),
        examples,
    )
    assert integrity == "ok"


@SCALES
def test_attune_jsonl_imports_never_crash_and_never_half_write(examples: int | None) -> None:
    line = {"ts": "2026-01-07T07:30:45.123Z", "model": "gpt-5-mini", "duration_ms": 1}
    integrity = run_import_property(
        json_lines(legacy_objects),
        "attune-jsonl",
        Path.write_bytes,
        tuple(
            json.dumps({**line, **change}).encode() + b"\n"
            for change in (
                {"ts": {str(i): i for i in range(22)}},
                {"tokens": {"input": 10**30, "output": 1}},
                {"cost": 10**400},
            )
        ),
        examples,
    )
    assert integrity == "ok"


@SCALES
def test_csv_imports_never_crash_and_never_half_write(examples: int | None) -> None:
    header = b"ts,model,success,input_tokens\n2026-01-07T07:30:45.123Z,m,true,"
    integrity = run_import_property(
        csv_files(),
        "csv",
        Path.write_bytes,
        (header + b"9" * 30 + b"\n", header + b"9" * 5000),
        examples,
    )
    assert integrity == "ok"


@SCALES
def test_llm_db_imports_never_crash_and_never_half_write(examples: int | None) -> None:
    columns = st.sampled_from(
        [
            ["id", "model", "datetime_utc", "duration_ms", "input_tokens", "output_tokens"],
            ["id", "model", "datetime_utc"],
            ["id", "model", "prompt"],
            ["model", "datetime_utc", "id", "x", "y", "z"],
        ]
    )

    def write(path: Path, content: tuple[Any, list[str]]) -> None:
        write_llm_db(path, content[0], content[1])

    integrity = run_import_property(
        st.tuples(llm_databases(), columns), "llm-db", write, (), examples
    )
    assert integrity == "ok"


# --- provider responses -----------------------------------------------------------------

# Replaced by the key the request carried: a server that echoes the caller's key back.
ECHO = "{ECHOED-KEY}"
CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/event-stream", "text/html", "", "text/event-stream; charset=utf-8"]
)
EVENT_NAMES = st.sampled_from(
    [
        None,
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "error",
        "ping",
        "weird",
    ]
)
KNOWN_PAYLOADS = st.sampled_from(
    [
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_delta", "delta": "text"},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": 5}},
        {"type": "message_start", "message": "started"},
        {"type": "message_start", "message": {"usage": "many"}},
        {"type": "message_delta", "usage": [1], "delta": "end"},
        {"type": "message_delta", "usage": {"output_tokens": True}, "delta": {"stop_reason": 1}},
        {"type": "message_stop"},
        {"type": "error", "error": {"type": "brand_new_error", "message": ECHO}},
        {"type": "error", "error": "down"},
        {"type": "error", "error": 7},
        {"choices": [{"delta": {"content": "hi"}, "finish_reason": None}]},
        {"choices": [{"delta": "hi", "finish_reason": "stop"}]},
        {"choices": "all"},
        {"choices": [None]},
        {"choices": [{"delta": {"content": ["x"]}, "finish_reason": ["stop"]}]},
        {"error": {"code": ["x"], "type": {"t": 1}, "message": f"bad key {ECHO}"}},
        {"error": None},
        {"usage": {"prompt_tokens": "3", "completion_tokens": -1}},
        {"content": "not a list"},
        {"content": [{"type": "text", "text": 7}, "block"]},
    ]
)


DEEP = b"[" * 100_000  # nested past any recursion limit


@st.composite
def sse_bodies(draw: st.DrawFn) -> bytes:
    events = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(EVENT_NAMES)
        data = draw(
            st.one_of(
                KNOWN_PAYLOADS.map(json.dumps),
                json_values.map(json.dumps),
                st.just("[DONE]"),
                st.just(DEEP.decode()),
                st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t),
            )
        )
        events.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    body = "".join(events).encode()
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # truncated
    return body


bodies = st.one_of(
    sse_bodies(),
    json_values.map(lambda v: json.dumps(v).encode()),
    KNOWN_PAYLOADS.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
    st.sampled_from([b"", b"<html>502 Bad Gateway</html>", ECHO.encode(), DEEP, b"data: " + DEEP]),
)
headers = st.dictionaries(
    st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry"]),
    st.sampled_from(
        [
            "1",
            "0",
            "-5",
            "nan",
            "inf",
            "1e309",
            "soon",
            "true",
            "false",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ]
    )
    | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    max_size=3,
)


@st.composite
def responses(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "status": draw(
            st.sampled_from([200, 200, 200, 400, 401, 404, 408, 409, 429, 500, 529])
            | st.integers(100, 599)
        ),
        "content_type": draw(CONTENT_TYPES),
        "headers": draw(headers),
        # A server echoes only the key it was sent (ECHO); hypothesis also mines this file's
        # constants, so a body holding the other provider's key literally is dropped.
        "body": draw(bodies.filter(lambda b: not any(k.encode() in b for k in FAKE_KEYS))),
        # None: the whole body arrives; a number: the connection drops after that many bytes.
        "drop_after": draw(st.none() | st.integers(0, 200)),
    }


def mock_client(plan: list[dict[str, Any]] | Callable[[], dict[str, Any]]) -> httpx.Client:
    served = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        spec = plan() if callable(plan) else plan[min(served[0], len(plan) - 1)]
        served[0] += 1
        sent_key = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        body: bytes = spec["body"].replace(ECHO.encode(), sent_key.encode())
        drop_after = spec["drop_after"]

        def stream() -> Any:
            if drop_after is None:
                yield body
                return
            yield body[:drop_after]
            raise httpx.RemoteProtocolError("peer closed connection", request=request)

        heads = {"content-type": spec["content_type"], **spec["headers"]}
        return httpx.Response(spec["status"], headers=heads, stream=_Stream(stream))

    return httpx.Client(transport=httpx.MockTransport(handler))


class _Stream(httpx.SyncByteStream):
    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make

    def __iter__(self) -> Any:
        yield from self._make()


def endpoint(api: str) -> Endpoint:
    registry = load_registry({}, Path("config.toml"))
    name = "anthropic" if api == "anthropic" else "openai"
    key = FAKE_ANTHROPIC_KEY if api == "anthropic" else FAKE_OPENAI_KEY
    return Endpoint(registry.providers[name], "http://127.0.0.1:9", key, True)


SSE = "text/event-stream"


def _spec(status: int, body: str | bytes, content_type: str = "application/json") -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    return {
        "status": status,
        "content_type": content_type,
        "headers": {},
        "body": raw,
        "drop_after": None,
    }


@pytest.mark.parametrize("api", ["anthropic", "openai"])
@SCALES
def test_provider_responses_become_an_answer_or_a_classified_failure(
    api: str, examples: int | None
) -> None:
    adapter = adapter_for(endpoint(api))
    key = adapter.endpoint.api_key
    assert key is not None

    @scaled(examples)
    @given(responses(), st.booleans())
    @example(_spec(200, json.dumps({"content": [{"type": "text", "text": 7}]})), False)
    @example(_spec(200, 'event: error\ndata: {"error": "down"}\n\n', SSE), True)
    @example(_spec(200, 'data: {"type": "content_block_delta", "delta": "x"}\n\n', SSE), True)
    @example(_spec(500, DEEP), True)
    def check(spec: dict[str, Any], stream: bool) -> None:
        with mock_client([spec]) as client:
            try:
                completion = adapter.call(
                    client, ChatRequest("m", "hello"), stream=stream, on_text=lambda _t: None
                )
            except CallFailed as failure:
                assert failure.kind and failure.kind.strip() == failure.kind
                assert key not in str(failure)
                assert len(str(failure)) < 1200
                return
        assert isinstance(completion, Completion) and isinstance(completion.content, str)
        for tokens in (completion.input_tokens, completion.output_tokens):
            assert tokens is None or (isinstance(tokens, int) and not isinstance(tokens, bool))

    check()


@SCALES
def test_executor_turns_any_sequence_of_responses_into_an_envelope(examples: int | None) -> None:
    registry = load_registry({}, Path("config.toml"))
    endpoints = {
        "openai": endpoint("openai"),
        "anthropic": endpoint("anthropic"),
    }

    @scaled(examples, share=2)
    @given(
        st.lists(responses(), min_size=1, max_size=4),
        st.sampled_from(["gpt-5-mini", "claude-haiku-4-5"]),
    )
    def check(plan: list[dict[str, Any]], model: str) -> None:
        waits: list[float] = []
        with mock_client(plan) as client:
            executor = ResilientExecutor(
                registry, endpoints, client=client, sleep=waits.append, rand=lambda: 0.5
            )
            try:
                response = executor.execute("hello", model=model, on_text=lambda _t: None)
            except AttuneError as exc:
                assert FAKE_OPENAI_KEY not in str(exc) and FAKE_ANTHROPIC_KEY not in str(exc)
                return
        document = json.dumps(response.to_dict())
        assert FAKE_OPENAI_KEY not in document and FAKE_ANTHROPIC_KEY not in document
        assert all(0 <= wait <= 60 for wait in waits), waits
        if not response.success:
            assert response.error

    check()


def test_huge_provider_bodies_are_cut_to_a_readable_message() -> None:
    adapter = adapter_for(endpoint("openai"))
    huge = {
        "error": {"type": "server_error", "message": "x" * 5_000_000 + FAKE_OPENAI_KEY},
    }
    for spec in (
        {"status": 500, "body": json.dumps(huge).encode(), "content_type": "application/json"},
        {"status": 502, "body": b"<html>" + b"y" * 5_000_000, "content_type": "text/html"},
        {"status": 200, "body": b"z" * 5_000_000, "content_type": "application/json"},
        {
            "status": 200,
            "body": b"data: " + b"{" * 3_000_000 + b"\n\n",
            "content_type": "text/event-stream",
        },
    ):
        with (
            mock_client([{**spec, "headers": {}, "drop_after": None}]) as client,
            pytest.raises(CallFailed) as caught,
        ):
            adapter.call(client, ChatRequest("gpt-5-mini", "hi"), stream=True)
        assert len(str(caught.value)) < 1000
        assert FAKE_OPENAI_KEY not in str(caught.value)


# --- the same inputs through the real commands -------------------------------------------


EVERY_READER = (["ask", "hi", "-m", "gpt-5-mini"], ["auth", "status"], ["route", "best", "x"])
ASK_ONLY = (["ask", "hi", "-m", "gpt-5-mini"],)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("config", "named", "commands"),
    [
        ("[auth\nsubscription_tier = 'pro'\n", "line 1", EVERY_READER),
        ("[executor]\nread_timeout_s = nan\n", "executor.read_timeout_s", ASK_ONLY),
        ("[breaker]\nwindow_s = inf\n", "breaker.window_s", ASK_ONLY),
        (
            '[models."m"]\nprovider = ["openai"]\ntier = "cheap"\n',
            'models."m".provider',
            EVERY_READER,
        ),
        (
            "[providers.openai]\nkey_env = ['OPENAI_API_KEY']\n",
            "providers.openai.key_env",
            ASK_ONLY,
        ),
        ("\xff\xfe not utf-8", "UTF-8", EVERY_READER),
    ],
    ids=["toml-syntax", "nan-timeout", "inf-window", "list-provider", "list-key-env", "not-utf8"],
)
def test_a_broken_config_toml_exits_2_naming_the_problem(
    attune_home: Path, config: str, named: str, commands: tuple[list[str], ...]
) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_bytes(config.encode("latin-1"))
    before = (attune_home / "config.toml").read_bytes()
    env = {"OPENAI_API_KEY": FAKE_OPENAI_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    for args in commands:
        stderr = assert_clean_failure(attune(*args, env=env), 2)
        assert "config.toml" in stderr and named in stderr, (args, stderr)
        assert FAKE_OPENAI_KEY not in stderr
    assert (attune_home / "config.toml").read_bytes() == before


@pytest.mark.e2e
def test_a_hostile_import_file_exits_with_a_clear_error_and_imports_nothing(
    attune_home: Path, tmp_path: Path
) -> None:
    if attune("telemetry", "import", "--help").returncode != 0:
        pytest.skip("`attune telemetry import` is not available")
    good = json.dumps({"ts": "2026-01-07T07:30:45.123Z", "model": "gpt-5-mini", "success": True})
    cases = {
        "half-bad.jsonl": f"{good}\n{{not json\n",
        "binary.jsonl": "\x00\x01\x02",
        "nested.jsonl": "[" * 100_000 + "\n",
        "dict-ts.jsonl": json.dumps({"ts": {str(i): i for i in range(22)}, "duration_ms": 1}),
    }
    for name, text in cases.items():
        source = tmp_path / name
        source.write_text(text)
        result = attune("telemetry", "import", str(source), "--json")
        assert result.returncode in (1, 2), (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
        shown = attune("telemetry", "show", "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout) == [], name
