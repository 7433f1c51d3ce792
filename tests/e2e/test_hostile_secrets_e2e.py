"""Secrets and files under hostile conditions, through real `attune` processes."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_cli.emulator import ProviderEmulator

pytestmark = pytest.mark.e2e

KEY = "sk-ant-api03-Hostile0123456789abcdefXYZ"
SECRET_BITS = ("Hostile0123456789", "abcdefXYZ")


def run(
    home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "XDG_"))}
    values.update(ATTUNE_HOME=str(home), COLUMNS="200", NO_COLOR="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env=values,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def private_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    return home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- leftovers of a killed write ------------------------------------------------------------


def leave_a_killed_write(home: Path) -> Path:
    """What a login killed between writing its temp file and renaming it leaves."""
    leftover = private_home(home) / ".credentials.toml.k1ll3d.tmp"
    leftover.write_text(f'[anthropic]\napi_key = "{KEY}"\n')
    leftover.chmod(0o600)
    return leftover


def test_logout_removes_the_temp_file_a_killed_login_left(attune_home: Path) -> None:
    leftover = leave_a_killed_write(attune_home)
    status = run(attune_home, "auth", "status")
    assert status.returncode == 0
    assert "leftover temp file" in status.stderr and leftover.name in status.stderr
    result = run(attune_home, "auth", "logout", "anthropic")
    assert result.returncode == 0, result.stderr
    assert "nothing removed" not in result.stderr
    assert "Removed 1 leftover temp file" in result.stderr
    assert not leftover.exists()
    assert "leftover" not in run(attune_home, "auth", "status").stderr


def test_the_next_login_removes_a_killed_logins_temp_file(attune_home: Path) -> None:
    leftover = leave_a_killed_write(attune_home)
    result = run(
        attune_home, "auth", "login", "openai", "--with-key-stdin", stdin="sk-proj-abcdef123456"
    )
    assert result.returncode == 0, result.stderr
    assert not leftover.exists()


# --- folders and links ----------------------------------------------------------------------


def test_an_attune_home_others_can_read_and_write_is_made_private(attune_home: Path) -> None:
    attune_home.mkdir(parents=True)
    attune_home.chmod(0o777)
    result = run(attune_home, "telemetry", "show")
    assert result.returncode == 0, result.stderr
    assert mode(attune_home) == 0o700


def test_a_shared_sticky_home_is_refused_with_the_fix(attune_home: Path) -> None:
    attune_home.mkdir(parents=True)
    attune_home.chmod(0o1777)
    result = run(
        attune_home, "auth", "login", "openai", "--with-key-stdin", stdin="sk-proj-abcdef123456"
    )
    assert result.returncode == 2
    assert f"Run: chmod 700 {attune_home}" in result.stderr
    assert not (attune_home / "credentials.toml").exists()
    assert mode(attune_home) == 0o1777


def test_a_database_link_is_not_followed(attune_home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (private_home(attune_home) / "telemetry.db").symlink_to(victim)
    result = run(attune_home, "telemetry", "record", "-w", "w", "-s", "s", "-m", "m", "--success")
    assert result.returncode == 2
    assert "is a symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"


def test_a_lock_file_link_is_not_followed(attune_home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    (private_home(attune_home) / ".credentials.toml.lock").symlink_to(victim)
    result = run(
        attune_home, "auth", "login", "openai", "--with-key-stdin", stdin="sk-proj-abcdef123456"
    )
    assert result.returncode == 2
    assert "is a symbolic link" in result.stderr
    assert not victim.exists()
    assert not (attune_home / "credentials.toml").exists()


# --- keys in the wrong place ----------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        f'[{KEY}]\napi_key = "x"\n',
        f'{KEY} = "x"\n',
        f'"{KEY}" = 1\n',
        f"[{KEY[:20]}]\napi_key = 'x'\n",
    ],
    ids=["table", "bare-key", "quoted-key", "short-table"],
)
def test_a_key_pasted_as_a_table_or_key_name_is_never_quoted_back(
    attune_home: Path, document: str
) -> None:
    credentials = private_home(attune_home) / "credentials.toml"
    credentials.write_text(document)
    credentials.chmod(0o600)
    for args in (("auth", "status"), ("auth", "status", "--json")):
        result = run(attune_home, *args)
        assert result.returncode == 2, result.stdout
        assert "not a provider name" in result.stderr
        for bit in SECRET_BITS[:1] if document.startswith("[sk-ant-api03-Hos") else SECRET_BITS:
            assert bit not in result.stdout + result.stderr


def test_a_non_ascii_key_is_refused_at_login(attune_home: Path) -> None:
    result = run(
        attune_home,
        "auth",
        "login",
        "openai",
        "--with-key-stdin",
        stdin="sk-proj-abc\u2019def123456",
    )
    assert result.returncode == 2
    assert "non-ASCII" in result.stderr
    assert not (attune_home / "credentials.toml").exists()


def test_a_stored_non_ascii_key_is_an_error_not_a_crash(attune_home: Path) -> None:
    credentials = private_home(attune_home) / "credentials.toml"
    credentials.write_text('[openai]\napi_key = "sk-proj-abc\u00e9def123456"\n', encoding="utf-8")
    credentials.chmod(0o600)
    result = run(attune_home, "ask", "hi", "-m", "gpt-5-mini",
                 env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "non-ASCII" in result.stderr and "openai.api_key" in result.stderr
    assert "unexpected" not in result.stderr


@pytest.mark.parametrize(
    ("base_url", "warned"),
    [
        ("http://192.0.2.10/v1", True),
        ("http://llm.internal:8080/v1", True),
        ("http://127.0.0.1:11434/v1", False),
        ("http://localhost:11434/v1", False),
        ("http://[::1]:8000/v1", False),
        ("https://192.0.2.10/v1", False),
    ],
)
def test_a_key_sent_over_plain_http_to_another_host_gets_one_warning_line(
    attune_home: Path, base_url: str, warned: bool
) -> None:
    result = run(attune_home, "auth", "login", "openai", "--with-key-stdin",
                 stdin="sk-proj-abcdef123456", env={"OPENAI_BASE_URL": base_url})  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    if warned:
        assert len(warnings) == 1 and "plain http://" in warnings[0] and base_url in warnings[0]
    else:
        assert warnings == []
    status = run(attune_home, "auth", "status", env={"OPENAI_BASE_URL": base_url})
    assert ("plain http://" in status.stderr) == warned


def test_a_credentials_folder_is_named_as_such_and_an_environment_key_still_works(
    attune_home: Path,
) -> None:
    (private_home(attune_home) / "credentials.toml").mkdir()
    status = run(attune_home, "auth", "status")
    assert status.returncode == 2
    assert "is a folder, not a file" in status.stderr
    assert "read by other users" not in status.stderr and "rotating" not in status.stderr
    with ProviderEmulator() as emulator:
        env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": emulator.anthropic_base_url}
        answered = run(attune_home, "ask", "hi", "-m", "claude-haiku-4-5", env=env)
    assert answered.returncode == 0, answered.stderr
    assert "Hello from claude-haiku-4-5" in answered.stdout


# --- a full disk and a read-only file system --------------------------------------------------


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[None]:
    """Mount at ``target`` for the test; skip where this process may not mount."""
    target.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount here ({made.stderr.strip() or 'not permitted'})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def fill(folder: Path) -> None:
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())


CONFIG = '# mine\n[auth]\nsubscription_tier = "max"\ndefault_mode = "api"\nsetup_completed = true\n'


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="mounts need root on Linux"
)
def test_a_full_disk_says_no_space_left_and_keeps_every_file(tmp_path: Path) -> None:
    home = tmp_path / "full"
    with mounted(home, "-t", "tmpfs", "-o", "size=128k,mode=0700", "tmpfs"):
        (home / "config.toml").write_text(CONFIG)
        assert (
            run(
                home, "auth", "login", "openai", "--with-key-stdin", stdin="sk-proj-old123456789"
            ).returncode
            == 0
        )
        credentials = (home / "credentials.toml").read_text()
        fill(home)
        for args, stdin in (
            (("auth", "login", "anthropic", "--with-key-stdin"), KEY),
            (("auth", "setup", "--tier", "pro", "--mode", "auto", "--yes"), None),
            (("telemetry", "record", "-w", "w", "-s", "s", "-m", "m", "--success"), None),
        ):
            result = run(home, *args, stdin=stdin)
            assert result.returncode == 1, (args, result.stderr)
            assert "No space left on device" in result.stderr, (args, result.stderr)
            assert "cannot write " + str(home) in result.stderr, (args, result.stderr)
            assert "unexpected" not in result.stderr
        assert (home / "config.toml").read_text() == CONFIG
        assert (home / "credentials.toml").read_text() == credentials
        assert [p.name for p in home.glob(".*.tmp")] == []


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="mounts need root on Linux"
)
def test_a_read_only_file_system_says_so_and_keeps_every_file(tmp_path: Path) -> None:
    home = private_home(tmp_path / "ro")
    (home / "config.toml").write_text(CONFIG)
    with mounted(home, "--bind", str(home)):
        remounted = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(home)], capture_output=True
        )
        if remounted.returncode != 0:
            pytest.skip("cannot remount read-only here")
        for args, stdin in (
            (("auth", "login", "anthropic", "--with-key-stdin"), KEY),
            (("auth", "setup", "--tier", "pro", "--mode", "auto", "--yes"), None),
            (("telemetry", "record", "-w", "w", "-s", "s", "-m", "m", "--success"), None),
        ):
            result = run(home, *args, stdin=stdin)
            assert result.returncode == 1, (args, result.stderr)
            assert "Read-only file system" in result.stderr, (args, result.stderr)
            assert "unexpected" not in result.stderr
        assert (home / "config.toml").read_text() == CONFIG
