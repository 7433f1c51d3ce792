"""Startup time of the commands people (and shell completion) run most.

Runs each command as a whole new process, N times, against a fresh empty ``ATTUNE_HOME``, and
prints the median, the fastest and the slowest wall time in milliseconds, and the median CPU time
(user + system) of the process: on a shared machine the wall time moves with other work, the CPU
time much less. Targets on a 2-core machine: ``--version`` and ``auth status`` at most 100 ms,
``--help`` at most 150 ms (median wall time).

Bytecode caching is on for the measured processes (``PYTHONDONTWRITEBYTECODE`` is dropped from
their environment), as it is for an installed attune: ``pip install`` compiles the ``.pyc``
files, and without them every start would re-compile attune's modules.

Usage::

    python benchmarks/startup.py            # 30 runs of each
    python benchmarks/startup.py --runs 50
    python benchmarks/startup.py --check    # exit 1 when a median misses its target

It also builds typer's command tree in-process, whole and for one command (``route``), as a
run that names its command does (``attune_cli.cli.app.build_app``): median ms per build.

Find what to cut with ``python -X importtime -m attune_cli auth status 2>&1 | sort -t'|' -k2 -n``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (label, arguments, target median in ms)
COMMANDS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("attune --version", ("--version",), 100.0),
    ("attune --help", ("--help",), 150.0),
    ("attune auth status", ("auth", "status"), 100.0),
)


def attune_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m attune_cli``."""
    script = Path(sys.executable).with_name("attune")
    if script.exists():
        return [str(script)]
    found = shutil.which("attune")
    return [found] if found else [sys.executable, "-m", "attune_cli"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_runs_ms(
    argv: list[str], runs: int, env: dict[str, str]
) -> tuple[list[float], list[float]]:
    """Wall and CPU times of ``runs`` whole-process runs of ``argv``, in milliseconds."""
    wall_ms, cpu_ms = [], []
    for _ in range(runs):
        cpu_before_s = _children_cpu_s()
        started = time.perf_counter()
        completed = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        wall_ms.append((time.perf_counter() - started) * 1000)
        cpu_ms.append((_children_cpu_s() - cpu_before_s) * 1000)
        if completed.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {completed.stderr.decode()[-500:]}")
    return wall_ms, cpu_ms


def command_tree_ms(runs: int) -> tuple[float, float]:
    """Median ms to build typer's click tree of every command, and of ``route`` alone."""
    from typer.main import get_command

    from attune_cli.cli.app import build_app

    def build(command: str | None) -> float:
        started = time.perf_counter()
        get_command(build_app(command))
        return (time.perf_counter() - started) * 1000

    build(None)  # imports every command module once, outside the timing
    whole = [build(None) for _ in range(runs)]
    one = [build("route") for _ in range(runs)]
    return statistics.median(whole), statistics.median(one)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per command (default 30)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    base = attune_command()
    missed = []
    with tempfile.TemporaryDirectory(prefix="attune-bench-") as home:
        env = {**os.environ, "ATTUNE_HOME": home, "NO_COLOR": "1", "COLUMNS": "100"}
        for name in (
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "ATTUNE_DEBUG",
            "PYTHONDONTWRITEBYTECODE",
        ):
            env.pop(name, None)
        # One untimed run of each warms the OS file cache and writes the .pyc files.
        for _, extra, _ in COMMANDS:
            time_runs_ms([*base, *extra], 1, env)
        header = ("command", "median ms", "min ms", "max ms", "cpu ms", "target")
        print("{:<22} {:>10} {:>8} {:>8} {:>8} {:>8}".format(*header))
        for label, extra, target_ms in COMMANDS:
            wall_ms, cpu_ms = time_runs_ms([*base, *extra], args.runs, env)
            median_ms = statistics.median(wall_ms)
            verdict = "ok" if median_ms <= target_ms else "MISSED"
            if median_ms > target_ms:
                missed.append(label)
            print(
                f"{label:<22} {median_ms:>10.1f} {min(wall_ms):>8.1f} {max(wall_ms):>8.1f} "
                f"{statistics.median(cpu_ms):>8.1f} {target_ms:>6.0f} {verdict}"
            )
        # Reference rows: what any Python CLI on this machine pays, to read the figures above
        # against (a busy machine slows these as much as attune).
        references = (
            ("python -c pass", "pass"),
            ("python -c 'import typer'", "import typer"),
            # What `attune` saves by skipping httpx's own CLI (cli/entry.py).
            ("import httpx", "import httpx"),
            ("import httpx, no CLI", "import sys; sys.modules['httpx._main'] = None; import httpx"),
        )
        for label, code in references:
            wall_ms, cpu_ms = time_runs_ms([sys.executable, "-c", code], args.runs, env)
            print(
                f"{label:<22} {statistics.median(wall_ms):>10.1f} {min(wall_ms):>8.1f} "
                f"{max(wall_ms):>8.1f} {statistics.median(cpu_ms):>8.1f}   (reference)"
            )
    whole_ms, one_ms = command_tree_ms(args.runs)
    print(f"command tree: whole {whole_ms:.1f} ms, `route` only {one_ms:.1f} ms (median build)")
    load = os.getloadavg()[0]
    print(f"({args.runs} runs each, {' '.join(base)}; load average {load:.2f})")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
