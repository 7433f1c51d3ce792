"""Tab completion in real bash, zsh and fish, through the scripts shipped in completions/.

Each shell loads the shipped file the way the README says and asks through its own completion
machinery; the words come from a real ``attune`` process reading a real store. A shell that is
not installed is skipped (CI installs zsh and fish).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_cli.core.telemetry.db import connect

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "completions"
BIN = Path(sys.executable).parent
STAGES = ["analysis", "triage", "verify"]
CONFIG_STAGES = ["plan"]


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed")
    if not (BIN / "attune").exists():
        pytest.skip("the attune console script is not installed next to this Python")
    return path


@pytest.fixture
def shell_env(tmp_path: Path, attune_home: Path) -> Iterator[dict[str, str]]:
    """A store holding known stages, a config naming one more, and a clean home for the shell."""
    conn = connect(attune_home / "telemetry.db")
    conn.executemany("INSERT INTO labels VALUES ('stage', ?)", [(s,) for s in STAGES])
    conn.executemany("INSERT INTO labels VALUES ('workflow', ?)", [("code-review",)])
    conn.close()
    (attune_home / "config.toml").write_text(
        '[routing.stages]\nplan = "premium"\n\n'
        '[models."llama3.1:8b"]\nprovider = "openai"\ntier = "cheap"\n'
    )
    home = tmp_path / "user"
    home.mkdir()
    yield {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "ATTUNE_HOME": str(attune_home),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
    }


# --- bash: complete -p, then the function with COMP_WORDS / COMP_CWORD ----------------------

BASH_ASK = r"""
source {script}
spec=$(complete -p attune) || exit 3
[[ $spec =~ -F\ ([^ ]+) ]] || exit 4
func=${{BASH_REMATCH[1]}}
COMP_LINE={line}
COMP_POINT=${{#COMP_LINE}}
COMP_WORDS=({words})
COMP_CWORD={cword}
"$func" attune "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"""


def bash_offers(env: dict[str, str], line: str) -> list[str]:
    words = line.split() + ([""] if line.endswith(" ") else [])
    script = BASH_ASK.format(
        script=shlex.quote(str(SHIPPED / "attune.bash")),
        line=shlex.quote(line),
        words=" ".join(shlex.quote(w) for w in words),
        cword=len(words) - 1,
    )
    done = subprocess.run(
        [need("bash"), "--norc", "--noprofile", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return [w for w in done.stdout.split("\n") if w]


def test_bash_completes_a_command_name(shell_env: dict[str, str]) -> None:
    assert bash_offers(shell_env, "attune ro") == ["route"]


def test_bash_offers_stages_from_the_store_and_config(shell_env: dict[str, str]) -> None:
    assert sorted(bash_offers(shell_env, "attune route explain ")) == sorted(STAGES + CONFIG_STAGES)
    assert bash_offers(shell_env, "attune route explain tr") == ["triage"]


def test_bash_offers_providers_to_log_in_to(shell_env: dict[str, str]) -> None:
    assert bash_offers(shell_env, "attune auth login ") == ["anthropic", "openai"]


def test_bash_leaves_path_arguments_to_file_completion(shell_env: dict[str, str]) -> None:
    # Nothing offered: `complete -o default` then lets bash complete file names.
    assert bash_offers(shell_env, "attune auth recommend ") == []


@pytest.mark.parametrize(
    ("typed", "completed"),
    [
        ("attune route explain tri", "attune route explain triage "),
        # bash breaks words at ':' and '=': the reply must start after the break.
        ("attune ask --model llama3.1:", "attune ask --model llama3.1:8b "),
        ("attune ask --model=llama", "attune ask --model=llama3.1:8b "),
    ],
)
def test_bash_readline_tab_inserts_the_word(
    shell_env: dict[str, str], typed: str, completed: str
) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        need("bash"),
        ["--norc", "--noprofile", "-i"],
        env=dict(shell_env, PS1="READY> "),
        encoding="utf-8",
        timeout=20,
    )
    try:
        child.sendline(f"source {shlex.quote(str(SHIPPED / 'attune.bash'))}")
        child.sendline("echo LOADED$((40+2))")
        child.expect("LOADED42")
        child.expect("READY> ")
        child.send(typed + "\t")
        child.expect_exact(completed)
        child.send("\x15")  # clear the line
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


# --- fish: complete -C -----------------------------------------------------------------------


def fish_offers(env: dict[str, str], line: str) -> list[str]:
    script = f"source {shlex.quote(str(SHIPPED / 'attune.fish'))}; complete -C {shlex.quote(line)}"
    done = subprocess.run(
        [need("fish"), "--no-config", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return [w.split("\t")[0] for w in done.stdout.split("\n") if w]


def test_fish_completes_a_command_name(shell_env: dict[str, str]) -> None:
    assert fish_offers(shell_env, "attune ro") == ["route"]


def test_fish_offers_stages_from_the_store_and_config(shell_env: dict[str, str]) -> None:
    assert sorted(fish_offers(shell_env, "attune route explain ")) == sorted(STAGES + CONFIG_STAGES)


def test_fish_offers_providers_to_log_in_to(shell_env: dict[str, str]) -> None:
    assert fish_offers(shell_env, "attune auth login ") == ["anthropic", "openai"]


def test_fish_completes_values_after_option_equals(shell_env: dict[str, str]) -> None:
    assert fish_offers(shell_env, "attune ask --model=llama") == ["--model=llama3.1:8b"]
    assert fish_offers(shell_env, "attune ask --model llama3.1:") == ["llama3.1:8b"]


def test_fish_completes_file_paths_where_attune_offers_nothing(
    shell_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "module.py").write_text("x = 1\n")
    assert fish_offers(shell_env, f"attune auth recommend {tmp_path}/mod") == [
        f"{tmp_path}/module.py"
    ]


# --- zsh: a real interactive shell in a pty; compadd records what compsys offers ------------

ZSH_SETUP = """\
PS1='READY> '
{load}
compadd() {{
  local -a __offered
  builtin compadd -O __offered "$@"
  (( ${{#__offered}} )) && print -rl -- "${{__offered[@]}}" >> {capture}
  builtin compadd "$@"
}}
"""


def zsh_offers(env: dict[str, str], line: str, tmp_path: Path, *, from_fpath: bool) -> list[str]:
    """Words zsh's completion system offers after ``line`` + Tab, on the shell's first Tab."""
    pexpect = pytest.importorskip("pexpect")
    capture = tmp_path / f"offered-{abs(hash((line, from_fpath)))}.txt"
    capture.write_text("")
    if from_fpath:
        # The way `attune --install-completion zsh` sets it up: _attune on $fpath, then compinit.
        functions = tmp_path / "zfunc"
        functions.mkdir(exist_ok=True)
        shutil.copy(SHIPPED / "attune.zsh", functions / "_attune")
        load = (
            f"fpath=({shlex.quote(str(functions))} $fpath); autoload -Uz compinit; compinit -u -D"
        )
    else:
        load = (
            "autoload -Uz compinit; compinit -u -D; "
            f"source {shlex.quote(str(SHIPPED / 'attune.zsh'))}"
        )
    child = pexpect.spawn(
        need("zsh"), ["-f", "-i"], env=env, encoding="utf-8", timeout=20, dimensions=(40, 200)
    )
    try:
        for setup_line in ZSH_SETUP.format(
            load=load, capture=shlex.quote(str(capture))
        ).splitlines():
            child.sendline(setup_line)
        child.sendline("echo LOADED$((40+2))")
        child.expect("LOADED42")
        child.expect("READY> ")
        child.send(line + "\t")
        # zle reads keys in order: this line runs only once the Tab's completion has finished.
        child.send("\x15")
        child.sendline("echo DONE$((40+2))")
        child.expect("DONE42")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return sorted(set(capture.read_text().split()))


@pytest.mark.parametrize("from_fpath", [False, True], ids=["sourced", "fpath"])
def test_zsh_completes_a_command_name(
    shell_env: dict[str, str], tmp_path: Path, from_fpath: bool
) -> None:
    assert zsh_offers(shell_env, "attune ro", tmp_path, from_fpath=from_fpath) == ["route"]


@pytest.mark.parametrize("from_fpath", [False, True], ids=["sourced", "fpath"])
def test_zsh_offers_stages_from_the_store_and_config(
    shell_env: dict[str, str], tmp_path: Path, from_fpath: bool
) -> None:
    offered = zsh_offers(shell_env, "attune route explain ", tmp_path, from_fpath=from_fpath)
    assert offered == sorted(STAGES + CONFIG_STAGES)


def test_zsh_offers_providers_to_log_in_to(shell_env: dict[str, str], tmp_path: Path) -> None:
    offered = zsh_offers(shell_env, "attune auth login ", tmp_path, from_fpath=False)
    assert offered == ["anthropic", "openai"]


def test_zsh_offers_option_values_with_their_prefix(
    shell_env: dict[str, str], tmp_path: Path
) -> None:
    offered = zsh_offers(
        shell_env, "attune route explain triage --workflow co", tmp_path, from_fpath=False
    )
    assert offered == ["code-review"]


def test_zsh_completes_values_after_option_equals(
    shell_env: dict[str, str], tmp_path: Path
) -> None:
    offered = zsh_offers(shell_env, "attune ask --tier=c", tmp_path, from_fpath=False)
    assert offered == ["--tier=capable", "--tier=cheap"]
    offered = zsh_offers(shell_env, "attune ask --model llama3.1:", tmp_path, from_fpath=False)
    assert offered == ["llama3.1:8b"]


def test_completion_scripts_print_nothing_on_a_broken_store(
    shell_env: dict[str, str], attune_home: Path
) -> None:
    (attune_home / "telemetry.db").write_bytes(b"not a database" * 50)
    for suffix in ("-wal", "-shm"):
        Path(f"{attune_home / 'telemetry.db'}{suffix}").unlink(missing_ok=True)
    assert bash_offers(shell_env, "attune route explain ") == CONFIG_STAGES
    if shutil.which("fish"):
        assert fish_offers(shell_env, "attune route explain ") == CONFIG_STAGES
