"""What the stand-in ``rich.markdown`` / ``rich.traceback`` modules save on ``attune --help``.

``attune_cli.cli.typer_compat.defer_unused_rich_modules`` plants them before typer's help
renderer imports the real ones. This script runs ``attune --help`` as a whole new process N times
with the stand-ins and N times without (the two interleaved, so a busy machine slows both
alike), through the same small driver, and prints the median wall and CPU times of each, the
difference, and ``python -c pass`` as a reference measured in the same run.

Usage::

    python benchmarks/rich_stand_ins.py            # 20 runs of each
    python benchmarks/rich_stand_ins.py --runs 40
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# The same path as the ``attune`` script's, with the stand-ins switched off on request.
DRIVER = """
import sys
sys.argv = ["attune", "--help"]
if {without!r}:
    from attune_cli.cli import typer_compat
    typer_compat.defer_unused_rich_modules = lambda: None
from attune_cli.cli.entry import main
main()
"""


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once_ms(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU time of one run of ``argv``, in milliseconds."""
    cpu_before_s = _children_cpu_s()
    started = time.perf_counter()
    completed = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    wall_ms = (time.perf_counter() - started) * 1000
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {completed.stderr.decode()[-500:]}")
    return wall_ms, (_children_cpu_s() - cpu_before_s) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each (default 20)")
    args = parser.parse_args()

    variants = {
        "with stand-ins": [sys.executable, "-c", DRIVER.format(without=False)],
        "without stand-ins": [sys.executable, "-c", DRIVER.format(without=True)],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    with tempfile.TemporaryDirectory(prefix="attune-bench-") as home:
        env = {**os.environ, "ATTUNE_HOME": home, "NO_COLOR": "1", "COLUMNS": "100"}
        for name in ("ATTUNE_DEBUG", "PYTHONDONTWRITEBYTECODE"):
            env.pop(name, None)
        for argv in variants.values():  # warm the file cache and the .pyc files
            run_once_ms(argv, env)
        wall: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, argv in variants.items():
                wall_ms, cpu_ms = run_once_ms(argv, env)
                wall[name].append(wall_ms)
                cpu[name].append(cpu_ms)

    print(f"{'attune --help':<20} {'median ms':>10} {'min ms':>8} {'cpu ms':>8}")
    for name in variants:
        print(
            f"{name:<20} {statistics.median(wall[name]):>10.1f} {min(wall[name]):>8.1f} "
            f"{statistics.median(cpu[name]):>8.1f}"
        )
    saved_wall_ms = statistics.median(wall["without stand-ins"]) - statistics.median(
        wall["with stand-ins"]
    )
    saved_cpu_ms = statistics.median(cpu["without stand-ins"]) - statistics.median(
        cpu["with stand-ins"]
    )
    print(f"stand-ins save {saved_wall_ms:.1f} ms wall, {saved_cpu_ms:.1f} ms CPU (medians)")
    print(f"({args.runs} interleaved runs each; load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
