"""Where attune lives, said plainly: a read-only home, a home that is a file, each script."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def attune(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env={**os.environ, "ATTUNE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` remounted read-only for the test; skip where this process may not mount."""
    bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip("cannot mount here")
    try:
        again = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True)
        if again.returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="mounts need root on Linux"
)
@pytest.mark.parametrize(
    ("args", "writes"),
    [
        (("telemetry", "show"), False),
        (("route", "stats"), False),
        (("telemetry", "record", "-w", "w", "-s", "s", "-m", "m", "--success"), True),
    ],
    ids=["telemetry show", "route stats", "telemetry record"],
)
def test_a_read_only_home_is_named_and_never_blamed_on_the_store(
    args: tuple[str, ...], writes: bool, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    assert attune(home, "telemetry", "record", "-w", "w", "-s", "s", "-m", "m", "--success")
    with read_only(home):
        result = attune(home, *args)

    assert "aside" not in result.stderr
    assert "unexpected" not in result.stderr
    if writes:
        # Writing names the folder and the reason.
        assert result.returncode == 1
        assert f"its folder {home} is on a read-only file system" in result.stderr
    else:
        # Reading opens the store read-only and shows what is there (issue 11).
        assert result.returncode == 0, result.stderr
        assert "w" in result.stdout and "m" in result.stdout


@pytest.mark.parametrize(
    "args",
    [("telemetry", "show"), ("auth", "status"), ("route", "stats"), ("auth", "status", "--json")],
    ids=" ".join,
)
def test_a_home_that_is_a_file_is_said_to_be_one(args: tuple[str, ...], tmp_path: Path) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("")

    result = attune(home, *args)

    assert result.returncode == 2
    assert f"ATTUNE_HOME {home} is a file, not a folder" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
@pytest.mark.parametrize("form", ["--show-completion {}", "--show-completion={}"])
def test_show_completion_prints_the_named_shells_script(
    shell: str, form: str, tmp_path: Path
) -> None:
    result = attune(tmp_path, *form.format(shell).split())

    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "completions" / f"attune.{shell}").read_text()


def test_show_completion_for_an_unknown_shell_names_the_known_ones(tmp_path: Path) -> None:
    result = attune(tmp_path, "--show-completion", "tcsh")

    assert result.returncode == 2
    assert "bash, zsh, fish" in result.stderr
