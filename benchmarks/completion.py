"""Latency of shell completion: what a person waits for after each Tab press.

A completion request is a whole ``attune`` process started with the completion environment a
shell sets (``_ATTUNE_COMPLETE=complete_bash`` and the typed line), against a telemetry store
of 1,000,000 calls and a ``config.toml`` with ``[routing.stages]`` and a custom model. Each
request is timed from process start to exit; the script prints the median, fastest and slowest
wall time in milliseconds per request kind. Target on a 2-core machine: every median at most
100 ms.

Usage::

    python benchmarks/completion.py                 # 30 runs of each request, 1M-call store
    python benchmarks/completion.py --runs 50 --rows 200000
    python benchmarks/completion.py --check         # exit 1 when a median misses the target
    python benchmarks/completion.py --home DIR      # build (or reuse) the store in DIR

The store is built once by ``benchmarks/history.py`` (the telemetry benchmarks' seeded
history) and reused while it holds the requested number of calls. Requests run round-robin,
so a burst of machine noise does not land on one kind only. Find what to cut with::

    _ATTUNE_COMPLETE=complete_bash COMP_LINE='attune route explain ' \\
        python -X importtime -m attune_cli 2>&1 | sort -t'|' -k2 -n | tail
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

TARGET_MS = 100.0
CONFIG_TOML = """\
[routing.stages]
plan = "premium"
analysis = "capable"

[models."llama3.1:8b"]
provider = "openai"
tier = "cheap"
"""

# (label, shell, line typed before Tab, a word the answer must contain)
REQUESTS: tuple[tuple[str, str, str, str], ...] = (
    ("bash: attune ro", "bash", "attune ro", "route"),
    ("bash: attune route explain <stage>", "bash", "attune route explain ", "analysis"),
    ("bash: --workflow <name>", "bash", "attune route explain x --workflow ", "code-review"),
    ("bash: --model <id>", "bash", "attune telemetry show --model ", "claude-haiku-4-5"),
    ("bash: attune auth login <provider>", "bash", "attune auth login ", "anthropic"),
    ("zsh:  attune route explain <stage>", "zsh", "attune route explain ", "analysis"),
    ("fish: attune route explain <stage>", "fish", "attune route explain ", "analysis"),
)

# A line the generated command tree leaves to click ("--" ends the options): the whole app runs.
FALLBACK = ("fallback: attune route explain -- <stage>", "bash", "attune route explain -- ", "")


def attune_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m attune_cli``."""
    script = Path(sys.executable).with_name("attune")
    if script.exists():
        return [str(script)]
    found = shutil.which("attune")
    return [found] if found else [sys.executable, "-m", "attune_cli"]


def request_env(base: dict[str, str], shell: str, line: str) -> dict[str, str]:
    """The environment a shell's completion function gives ``attune`` for ``line``."""
    env = dict(base, _ATTUNE_COMPLETE=f"complete_{shell}")
    if shell == "bash":
        env.update(COMP_LINE=line, COMP_WORD="" if line.endswith(" ") else line.split()[-1])
    else:
        env["_TYPER_COMPLETE_ARGS"] = line
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    return env


def store_rows(path: Path) -> int:
    """How many calls the store at ``path`` holds (0 when there is none)."""
    if not path.exists():
        return 0
    with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute("SELECT max(id) FROM calls").fetchone()[0] or 0)
        except sqlite3.Error:
            return 0


def build_store(path: Path, rows: int) -> None:
    """Write a seeded history of ``rows`` calls at ``path`` with benchmarks/history.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from history import HistorySpec
    from history import build_store as build

    build(HistorySpec(rows=rows, seed=1), path)


class Run(NamedTuple):
    """One completion request: wall and CPU time (ms) and what it printed."""

    wall_ms: float
    cpu_ms: float
    offered: str


def time_request(argv: list[str], env: dict[str, str]) -> Run:
    """Run one completion request as a whole process and time it.

    CPU time (user + system of the child) is reported next to wall time because it does not
    grow when other work shares the machine; wall time is what a person waits for.
    """
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    wall_ms = (time.perf_counter() - started) * 1000
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_ms = (
        cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    ) * 1000
    if done.returncode != 0 or done.stderr:
        raise SystemExit(
            f"{argv} ({env.get('_ATTUNE_COMPLETE')}) exited {done.returncode}:\n"
            f"{done.stderr.decode()[-500:]}"
        )
    return Run(wall_ms, cpu_ms, done.stdout.decode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="requests of each kind (30)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="calls in the store (1M)")
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(__file__).resolve().parent / ".data" / "completion-home",
        help="ATTUNE_HOME holding the store; built there once, then reused",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a median > 100 ms")
    options = parser.parse_args(argv)

    home: Path = options.home
    home.mkdir(parents=True, exist_ok=True)
    store = home / "telemetry.db"
    if store_rows(store) != options.rows:
        print(f"building a {options.rows:,}-call store in {home} …", flush=True)
        started = time.perf_counter()
        build_store(store, options.rows)
        print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    (home / "config.toml").write_text(CONFIG_TOML, encoding="utf-8")

    # PYTHONDONTWRITEBYTECODE would make every run compile attune from source; an installed
    # attune has its bytecode compiled by pip, so the runs below use cached bytecode too.
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("_ATTUNE", "_TYPER", "COMP_", "XDG_", "PYTHONDONTWRITEBYTECODE"))
    }
    base["ATTUNE_HOME"] = str(home)
    argv_attune = attune_command()
    for _, shell, line, _ in (*REQUESTS, FALLBACK):
        time_request(argv_attune, request_env(base, shell, line))  # warm-up: bytecode, disk cache

    floor = [time_request([sys.executable, "-c", "pass"], base) for _ in range(options.runs)]
    runs: dict[str, list[Run]] = {label: [] for label, *_ in REQUESTS}
    # A request that does not offer its expected word measures the wrong path (a command not
    # there yet, a broken callback): its row says so and --check fails.
    wrong: set[str] = set()
    fallback: list[Run] = []
    for _ in range(options.runs):
        fallback.append(time_request(argv_attune, request_env(base, *FALLBACK[1:3])))
        for label, shell, line, expected in REQUESTS:
            run = time_request(argv_attune, request_env(base, shell, line))
            runs[label].append(run)
            if expected not in run.offered.split("\n") and f'"{expected}"' not in run.offered:
                wrong.add(label)

    print(
        f"completion requests, {options.runs} runs each, store {store_rows(store):,} calls, "
        f"{' '.join(argv_attune)}"
    )
    print(f"{'request':38} {'median':>7} {'fastest':>8} {'slowest':>8} {'cpu':>6}  (ms)")
    missed = []
    for label, values in [("(python -c pass: the floor)", floor), *runs.items()]:
        wall = [r.wall_ms for r in values]
        median_ms = statistics.median(wall)
        cpu_ms = statistics.median(r.cpu_ms for r in values)
        flag = ""
        if label in runs and median_ms > TARGET_MS:
            flag = f"  over the {TARGET_MS:.0f} ms target"
        if label in wrong:
            flag += "  (did not offer the expected word)"
        print(f"{label:38} {median_ms:7.1f} {min(wall):8.1f} {max(wall):8.1f} {cpu_ms:6.1f}{flag}")
        if flag:
            missed.append(label)
    wall = [r.wall_ms for r in fallback]
    print(
        f"{FALLBACK[0]:38} {statistics.median(wall):7.1f} {min(wall):8.1f} {max(wall):8.1f} "
        f"{statistics.median(r.cpu_ms for r in fallback):6.1f}  (rare lines; not a target)"
    )
    return 1 if options.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
