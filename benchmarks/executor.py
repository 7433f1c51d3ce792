"""What the resilient executor costs on top of a plain httpx request, and how fast an open
breaker refuses, against the provider emulator on 127.0.0.1.

1. Overhead. The same streamed chat completion, sent N times each way, interleaved:

   * ``raw httpx``  — one ``httpx.Client`` (keep-alive), ``client.stream(POST)``, read every SSE
     line. The floor: what any client pays for the request on this machine.
   * ``executor``   — ``ResilientExecutor.execute`` as ``attune ask`` runs it: the circuit
     breaker and the telemetry store on a real ``telemetry.db`` (one breaker read, one breaker
     write, one telemetry row per call), SSE parsing, the envelope.
   * ``executor, no breaker/store`` — the same without the SQLite writes, to show where the
     time goes.

   Overhead = median(executor) − median(raw httpx). Target: at most 3 ms per call.

2. Open breaker. A model failing every call (HTTP 500) is called until its breaker opens; then
   N more calls are made and timed by process time. Target: at most 50 ms of process time per
   rejected call, with no request reaching the server. A whole ``attune ask`` process refused by
   the open breaker is also timed (interpreter start and imports included), for reference.

Usage::

    python benchmarks/executor.py               # 500 calls each way, 200 rejected calls
    python benchmarks/executor.py --runs 2000
    python benchmarks/executor.py --check       # exit 1 when a target is missed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.executor import ResilientExecutor, RetryPolicy, make_client
from attune_cli.core.providers import resolve_endpoints
from attune_cli.core.registry import load_registry
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.emulator import Behaviour, ProviderEmulator

OVERHEAD_TARGET_MS = 3.0
REJECTED_TARGET_MS = 50.0
MODEL = "gpt-5-mini"
FAILING = "gpt-5"
PROMPT = "Triage: login page returns 500 after deploy"


def executor_for(
    emulator: ProviderEmulator, home: Path | None, client: httpx.Client, **policy: float
) -> ResilientExecutor:
    registry = load_registry({}, Path("config.toml"))
    endpoints = resolve_endpoints(
        registry, {}, {"OPENAI_BASE_URL": emulator.openai_base_url}, lambda p: "sk-bench-key"
    )
    breaker = store = None
    if home is not None:
        breaker = CircuitBreaker(home / "telemetry.db", BreakerSettings())
        store = TelemetryStore(home / "telemetry.db")
    return ResilientExecutor(
        registry,
        endpoints,
        breaker=breaker,
        store=store,
        client=client,
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
    )


def raw_call(client: httpx.Client, url: str) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_completion_tokens": 1024,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"authorization": "Bearer sk-bench-key"}
    with client.stream("POST", f"{url}/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        for _line in response.iter_lines():
            pass


def overhead(runs: int) -> dict[str, float]:
    with ProviderEmulator() as emulator, tempfile.TemporaryDirectory() as folder:
        raw_client = make_client(trust_env=False)
        full = executor_for(emulator, Path(folder), make_client(trust_env=False))
        bare = executor_for(emulator, None, make_client(trust_env=False))
        timings: dict[str, list[float]] = {"raw": [], "full": [], "bare": []}
        calls = {
            "raw": lambda: raw_call(raw_client, emulator.openai_base_url),
            "full": lambda: full.execute(PROMPT, model=MODEL, fallback=False),
            "bare": lambda: bare.execute(PROMPT, model=MODEL, fallback=False),
        }
        for _ in range(20):  # warm the pools, the SQLite page cache and the import caches
            for call in calls.values():
                call()
        for _ in range(runs):
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - started) * 1000)
        for executor in (full, bare):
            executor.close()
        raw_client.close()
        assert emulator.requests_for(MODEL) == 3 * (runs + 20)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "raw_ms": medians["raw"],
        "executor_ms": medians["full"],
        "executor_no_store_ms": medians["bare"],
        "overhead_ms": medians["full"] - medians["raw"],
        "overhead_no_store_ms": medians["bare"] - medians["raw"],
    }


def rejection(runs: int) -> dict[str, float]:
    with (
        ProviderEmulator({FAILING: Behaviour.failing(500)}) as emulator,
        tempfile.TemporaryDirectory() as folder,
    ):
        executor = executor_for(emulator, Path(folder), make_client(trust_env=False), max_retries=0)
        opened_after = 0
        while True:
            response = executor.execute(PROMPT, model=FAILING, fallback=False)
            if response.error_kind == "breaker_open":
                break
            opened_after += 1
        sent = emulator.requests_for(FAILING)
        process_ms, wall_ms = [], []
        for _ in range(runs):
            cpu, wall = time.process_time(), time.perf_counter()
            response = executor.execute(PROMPT, model=FAILING, fallback=False)
            process_ms.append((time.process_time() - cpu) * 1000)
            wall_ms.append((time.perf_counter() - wall) * 1000)
            assert response.error_kind == "breaker_open"
        executor.close()
        cold = _cold_process(emulator, Path(folder))
        leaked = emulator.requests_for(FAILING) - sent
    return {
        "opened_after_calls": opened_after,
        "rejected_process_ms": statistics.median(process_ms),
        "rejected_wall_ms": statistics.median(wall_ms),
        "requests_after_open": leaked,
        **cold,
    }


def _cold_process(emulator: ProviderEmulator, home: Path, runs: int = 5) -> dict[str, float]:
    env = {
        **os.environ,
        "ATTUNE_HOME": str(home),
        "OPENAI_BASE_URL": emulator.openai_base_url,
        "OPENAI_API_KEY": "sk-bench-key",
    }
    process_ms, wall_ms = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "attune_cli", "ask", "hi", "-m", FAILING],
            env=env,
            capture_output=True,
            text=True,
        )
        wall_ms.append((time.perf_counter() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        process_ms.append(
            (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
        )
        assert result.returncode == 1 and "circuit open" in result.stderr, result.stderr
    return {
        "cold_process_rejected_process_ms": statistics.median(process_ms),
        "cold_process_rejected_wall_ms": statistics.median(wall_ms),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="calls each way (overhead)")
    parser.add_argument("--rejected-runs", type=int, default=200, help="rejected calls timed")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    options = parser.parse_args()
    figures = {**overhead(options.runs), **rejection(options.rejected_runs)}
    if options.json:
        print(json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=2))
    else:
        print(f"streamed call, median of {options.runs} (127.0.0.1, keep-alive):")
        print(f"  raw httpx                      {figures['raw_ms']:7.3f} ms")
        print(f"  executor (breaker + telemetry) {figures['executor_ms']:7.3f} ms")
        print(f"  executor, no breaker/store     {figures['executor_no_store_ms']:7.3f} ms")
        print(
            f"  overhead                       {figures['overhead_ms']:7.3f} ms"
            f"   (target ≤ {OVERHEAD_TARGET_MS:g} ms; without SQLite "
            f"{figures['overhead_no_store_ms']:.3f} ms)"
        )
        print(
            f"provider failing every call: breaker open after {figures['opened_after_calls']:.0f}"
        )
        print(
            f"  rejected call, median of {options.rejected_runs}: "
            f"{figures['rejected_process_ms']:.3f} ms process time, "
            f"{figures['rejected_wall_ms']:.3f} ms wall (target ≤ {REJECTED_TARGET_MS:g} ms)"
        )
        print(
            f"  requests that reached the server after it opened: "
            f"{figures['requests_after_open']:.0f}"
        )
        print(
            "  whole `attune ask` process refused (start-up and imports included): "
            f"{figures['cold_process_rejected_process_ms']:.0f} ms process time, "
            f"{figures['cold_process_rejected_wall_ms']:.0f} ms wall"
        )
    missed = (
        figures["overhead_ms"] > OVERHEAD_TARGET_MS
        or figures["rejected_process_ms"] > REJECTED_TARGET_MS
        or figures["requests_after_open"] != 0
    )
    return 1 if options.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
