"""How much `attune serve` adds over calling the provider emulator directly.

    python benchmarks/serve.py [--repeats 3] [--clients 50] [--requests 1000] [--memory 10000]

Both the emulator (``python -m attune_cli.emulator``) and the gateway (``attune serve``) run as
their own processes on 127.0.0.1, on a throwaway ATTUNE_HOME; the clients are threads of this
process, each with its own keep-alive httpx client. Printed, as medians over ``--repeats`` runs:

- overhead per non-streamed request with N concurrent clients: p50 and p99 latency through the
  gateway minus the same percentiles calling the emulator directly;
- time to the first streamed chunk, through the gateway minus direct (one client at a time);
- M requests with N concurrent clients: errors, and telemetry rows lost (M − rows recorded);
- the gateway's resident memory after a warm-up and after ``--memory`` more requests.

The machine may be shared and loaded: the figures are what this run saw, nothing more.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

BODY = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 32}


def start(
    cmd: list[str], env: dict[str, str], marker: str, stream: str
) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pipe = process.stdout if stream == "stdout" else process.stderr
    assert pipe is not None
    line = pipe.readline()
    if marker not in line:
        raise SystemExit(f"{cmd[0]} did not start: {line}")
    return process, line.split(marker, 1)[1].split()[0].strip()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def hammer(url: str, clients: int, total: int, stream: bool = False) -> tuple[list[float], int]:
    """``total`` requests from ``clients`` threads; latencies in ms and how many failed."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_client = total // clients

    def run() -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        with httpx.Client(timeout=60) as client:
            for _ in range(per_client):
                began = time.perf_counter()
                try:
                    response = client.post(url, json={**BODY, "stream": stream})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append((time.perf_counter() - began) * 1000)
                failed += not ok
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def first_chunk_ms(url: str, count: int) -> float:
    """Median time from sending a streamed request to its first content chunk."""
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            began = time.perf_counter()
            first: float | None = None
            with client.stream("POST", url, json={**BODY, "stream": True}) as response:
                for line in response.iter_lines():  # read to the end: the connection is reused
                    if first is None and '"content":"H' in line.replace(" ", ""):
                        first = (time.perf_counter() - began) * 1000
            if first is not None:
                times.append(first)
    return statistics.median(times)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rows(env: dict[str, str]) -> int:
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "telemetry", "show", "--json", "--limit", "10000000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return len(json.loads(result.stdout))


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--memory", type=int, default=10_000)
    options = parser.parse_args()
    home = tempfile.mkdtemp(prefix="attune-bench-serve-")
    env = {**os.environ, "ATTUNE_HOME": home}
    emulator, emulator_url = start(
        [sys.executable, "-m", "attune_cli.emulator", "--port", "0"], env, "emulator on ", "stdout"
    )
    env.update(OPENAI_BASE_URL=f"{emulator_url}/v1", OPENAI_API_KEY="sk-bench")
    gateway, gateway_url = start(
        [sys.executable, "-m", "attune_cli", "serve", "--port", "0"], env, "listening on ", "stderr"
    )
    direct = f"{emulator_url}/v1/chat/completions"
    through = f"{gateway_url}/v1/chat/completions"
    try:
        hammer(through, 10, 200)  # warm-up: threads, connections, SQLite pages
        hammer(direct, 10, 200)
        n = options.clients
        figures: dict[str, list[float]] = {"p50": [], "p99": [], "d50": [], "d99": []}
        for _ in range(options.repeats):
            d, _ = hammer(direct, n, n * 20)
            g, _ = hammer(through, n, n * 20)
            figures["d50"].append(percentile(d, 0.50))
            figures["d99"].append(percentile(d, 0.99))
            figures["p50"].append(percentile(g, 0.50))
            figures["p99"].append(percentile(g, 0.99))
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"non-streamed, {n} concurrent clients (median of {options.repeats} runs):")
        print(f"  direct   p50 {med['d50']:7.2f} ms   p99 {med['d99']:7.2f} ms")
        print(f"  gateway  p50 {med['p50']:7.2f} ms   p99 {med['p99']:7.2f} ms")
        print(
            f"  overhead p50 {med['p50'] - med['d50']:7.2f} ms   "
            f"p99 {med['p99'] - med['d99']:7.2f} ms   (targets: 3 ms, 10 ms)"
        )
        ttfc_direct = median_of(options.repeats, lambda: first_chunk_ms(direct, 50))
        ttfc_gateway = median_of(options.repeats, lambda: first_chunk_ms(through, 50))
        print(
            f"time to first streamed chunk: direct {ttfc_direct:.2f} ms, gateway "
            f"{ttfc_gateway:.2f} ms, +{ttfc_gateway - ttfc_direct:.2f} ms (target: 5 ms)"
        )
        before = rows(env)
        _, errors = hammer(through, n, options.requests)
        lost = options.requests - (rows(env) - before)
        print(f"{options.requests} requests, {n} concurrent: {errors} errors, {lost} rows lost")
        start_kib = rss_kib(gateway.pid)
        _, errors = hammer(through, n, options.memory)
        end_kib = rss_kib(gateway.pid)
        growth = (end_kib - start_kib) / start_kib * 100
        print(
            f"memory over {options.memory} more requests: {start_kib / 1024:.1f} MiB -> "
            f"{end_kib / 1024:.1f} MiB ({growth:+.1f} %, target ≤ 10 %), {errors} errors"
        )
    finally:
        gateway.terminate()
        gateway.wait(30)
        emulator.terminate()
        emulator.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
