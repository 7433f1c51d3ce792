"""The shipped completion files are what the app generates, and what attune itself installs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from attune_cli.cli.tab import SHELLS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "completions"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_completions", ROOT / "scripts" / "gen_completions.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_committed_and_current() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in generator().expected_files(ROOT).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert stale == [], (
        f"{', '.join(stale)} differ from the app: run `python scripts/gen_completions.py` "
        "and commit the result"
    )


def attune(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``attune`` script (its name is the command the scripts complete)."""
    script = Path(sys.executable).with_name("attune")
    if not script.exists():
        pytest.skip("the attune console script is not installed next to this Python")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("_ATTUNE", "_TYPER"))}
    # Name the shell instead of detecting the one running the tests.
    environ.update(HOME=str(home), _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1", **env)
    return subprocess.run(
        [str(script), *args],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.e2e
@pytest.mark.parametrize("shell", SHELLS)
def test_show_completion_prints_the_shipped_script(tmp_path: Path, shell: str) -> None:
    result = attune("--show-completion", shell, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (SHIPPED / f"attune.{shell}").read_text(encoding="utf-8")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("shell", "installed", "rc_file", "rc_line"),
    [
        ("bash", ".bash_completions/attune.sh", ".bashrc", "source '"),
        ("zsh", ".zfunc/_attune", ".zshrc", "fpath+=~/.zfunc"),
        ("fish", ".config/fish/completions/attune.fish", None, None),
    ],
)
def test_install_completion_installs_the_shipped_script(
    tmp_path: Path, shell: str, installed: str, rc_file: str | None, rc_line: str | None
) -> None:
    result = attune("--install-completion", shell, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"completion installed in {tmp_path / installed}" in result.stdout
    shipped = (SHIPPED / f"attune.{shell}").read_text(encoding="utf-8")
    assert (tmp_path / installed).read_text(encoding="utf-8").strip() == shipped.strip()
    if rc_file:
        assert rc_line in (tmp_path / rc_file).read_text(encoding="utf-8")


@pytest.mark.e2e
@pytest.mark.parametrize("shell", SHELLS)
def test_the_source_instruction_prints_the_shipped_script(tmp_path: Path, shell: str) -> None:
    result = attune(home=tmp_path, _ATTUNE_COMPLETE=f"source_{shell}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (SHIPPED / f"attune.{shell}").read_text(encoding="utf-8")
