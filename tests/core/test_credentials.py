"""Credentials: environment over stored, 0600 from the first byte, loose files refused, and a
key never shown whole."""

from __future__ import annotations

import multiprocessing
import os
import stat
import tomllib
from pathlib import Path

import pytest

from attune_cli.core import files
from attune_cli.core.credentials import (
    ResolvedKey,
    key_hint,
    remove_key,
    resolve_key,
    store_key,
    stored_providers,
)
from attune_cli.core.errors import ConfigError, PermissionsError, UsageError
from attune_cli.core.paths import Paths, resolve_paths
from attune_cli.core.registry import BUILTIN_PROVIDERS

ANTHROPIC = next(p for p in BUILTIN_PROVIDERS if p.name == "anthropic")
SECRET = "sk-ant-api03-SECRETSECRETSECRET-wxyz"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def paths() -> Paths:
    return resolve_paths()


def test_no_key_anywhere_resolves_to_none(paths: Paths) -> None:
    assert resolve_key(ANTHROPIC, paths, environ={}) is None


def test_a_stored_key_is_used_when_the_environment_has_none(paths: Paths) -> None:
    store_key(paths, "anthropic", SECRET)
    resolved = resolve_key(ANTHROPIC, paths, environ={"ANTHROPIC_API_KEY": "  "})
    assert resolved == ResolvedKey(SECRET, "stored")


def test_the_environment_wins_over_a_stored_key(paths: Paths) -> None:
    store_key(paths, "anthropic", SECRET)
    resolved = resolve_key(ANTHROPIC, paths, environ={"ANTHROPIC_API_KEY": "sk-from-env-1234"})
    assert resolved is not None
    assert (resolved.value, resolved.source) == ("sk-from-env-1234", "env")


def test_resolve_reads_os_environ_by_default(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-process-env-5678")
    resolved = resolve_key(ANTHROPIC, paths)
    assert resolved is not None and resolved.source == "env"


def test_the_file_is_0600_in_a_0700_folder(paths: Paths) -> None:
    store_key(paths, "anthropic", SECRET)
    assert mode_of(paths.credentials_file) == 0o600
    assert mode_of(paths.config_dir) == 0o700
    assert tomllib.loads(paths.credentials_file.read_text()) == {"anthropic": {"api_key": SECRET}}


def test_the_file_is_private_before_it_gets_its_name(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is written into a temp file that is already 0600, then renamed into place."""
    seen: list[tuple[int, str]] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: str) -> None:
        seen.append((mode_of(Path(src)), Path(src).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spying_replace)
    store_key(paths, "anthropic", SECRET)
    assert seen and all(mode == 0o600 for mode, _ in seen)
    assert SECRET in seen[-1][1]


def test_other_providers_and_comments_survive_a_store(paths: Paths) -> None:
    paths.config_dir.mkdir(mode=0o700, parents=True)
    paths.credentials_file.write_text('# mine\n[openai]\napi_key = "sk-openai-0000aaaa"\n')
    paths.credentials_file.chmod(0o600)
    store_key(paths, "anthropic", SECRET)
    text = paths.credentials_file.read_text()
    assert "# mine" in text
    assert stored_providers(paths) == ["anthropic", "openai"]


def test_storing_again_replaces_the_key(paths: Paths) -> None:
    store_key(paths, "anthropic", SECRET)
    store_key(paths, "anthropic", "sk-ant-second-key-9999")
    resolved = resolve_key(ANTHROPIC, paths, environ={})
    assert resolved is not None and resolved.value == "sk-ant-second-key-9999"


def test_surrounding_whitespace_from_a_pipe_is_dropped(paths: Paths) -> None:
    store_key(paths, "anthropic", f"  {SECRET}\n")
    resolved = resolve_key(ANTHROPIC, paths, environ={})
    assert resolved is not None and resolved.value == SECRET


@pytest.mark.parametrize("bad", ["", "   \n", "sk-two words", "sk-line\nbreak-inside"])
def test_an_empty_or_garbled_key_is_refused_without_echoing_it(paths: Paths, bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        store_key(paths, "anthropic", bad)
    assert "nothing was stored" in str(caught.value)
    if bad.strip():
        assert bad.strip() not in str(caught.value)
    assert not paths.credentials_file.exists()


def test_a_provider_name_must_be_plain(paths: Paths) -> None:
    with pytest.raises(UsageError):
        store_key(paths, "anthropic]\n[x", SECRET)


@pytest.mark.parametrize("loose_mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused_with_the_fix(paths: Paths, loose_mode: int) -> None:
    store_key(paths, "anthropic", SECRET)
    paths.credentials_file.chmod(loose_mode)
    for attempt in (
        lambda: resolve_key(ANTHROPIC, paths, environ={}),
        lambda: store_key(paths, "openai", "sk-openai-1111bbbb"),
        lambda: remove_key(paths, "anthropic"),
        lambda: stored_providers(paths),
    ):
        with pytest.raises(PermissionsError) as caught:
            attempt()
        assert f"chmod 600 {paths.credentials_file}" in str(caught.value)
        assert caught.value.exit_code == 2
        assert SECRET not in str(caught.value)
    # Refused means untouched: the loose file still holds just the one key.
    assert tomllib.loads(paths.credentials_file.read_text()) == {"anthropic": {"api_key": SECRET}}


def test_a_loose_file_does_not_matter_while_the_environment_provides_the_key(
    paths: Paths,
) -> None:
    store_key(paths, "anthropic", SECRET)
    paths.credentials_file.chmod(0o644)
    resolved = resolve_key(ANTHROPIC, paths, environ={"ANTHROPIC_API_KEY": "sk-env-key-4321"})
    assert resolved is not None and resolved.source == "env"


def test_a_malformed_file_is_reported_without_the_key_in_it(paths: Paths) -> None:
    paths.config_dir.mkdir(mode=0o700, parents=True)
    paths.credentials_file.write_text(f'anthropic = "{SECRET}"\n')
    paths.credentials_file.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        resolve_key(ANTHROPIC, paths, environ={})
    assert str(paths.credentials_file) in str(caught.value)
    assert "anthropic" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_invalid_toml_is_reported_without_the_key_in_it(paths: Paths) -> None:
    paths.config_dir.mkdir(mode=0o700, parents=True)
    paths.credentials_file.write_text(f'[anthropic]\napi_key = "{SECRET}\n')
    paths.credentials_file.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        resolve_key(ANTHROPIC, paths, environ={})
    assert str(paths.credentials_file) in str(caught.value)
    assert SECRET not in str(caught.value)


def test_remove_key_reports_whether_there_was_one(paths: Paths) -> None:
    store_key(paths, "anthropic", SECRET)
    store_key(paths, "openai", "sk-openai-2222cccc")
    assert remove_key(paths, "anthropic") is True
    assert remove_key(paths, "anthropic") is False
    assert stored_providers(paths) == ["openai"]
    assert mode_of(paths.credentials_file) == 0o600


def test_remove_key_without_a_file_is_false(paths: Paths) -> None:
    assert remove_key(paths, "anthropic") is False
    assert not paths.credentials_file.exists()


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("sk-ant-test-0123456789", "sk-…6789"),
        ("sk-proj-abcdefghijklmnopqrstuvwxyz", "sk-…wxyz"),
        ("AIzaSyA-abcdefghijklmnop1234", "…1234"),
        ("sk-short", "sk-…"),
        ("tiny", "…"),
    ],
)
def test_a_hint_shows_at_most_a_vendor_prefix_and_the_last_four(key: str, hint: str) -> None:
    assert key_hint(key) == hint


def test_a_resolved_key_never_shows_its_value() -> None:
    resolved = ResolvedKey(SECRET, "stored")
    assert SECRET not in repr(resolved)
    assert SECRET not in str(resolved)
    assert SECRET not in f"{resolved}"
    assert resolved.hint == "sk-…wxyz"


def _store_many(home: str, provider: str, count: int) -> None:
    paths = resolve_paths({"ATTUNE_HOME": home})
    for i in range(count):
        store_key(paths, f"{provider}{i}", f"sk-{provider}-{i:04d}-0123456789")


def test_concurrent_logins_from_two_processes_leave_one_valid_file(attune_home: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_store_many, args=(str(attune_home), name, 15))
        for name in ("alpha", "beta")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    paths = resolve_paths({"ATTUNE_HOME": str(attune_home)})
    stored = stored_providers(paths)
    assert len(stored) == 30  # no login lost its write to the other's
    assert mode_of(paths.credentials_file) == 0o600
    assert not list(attune_home.glob(".credentials.toml.*.tmp"))
