"""How much `attune serve` adds over calling the provider emulator directly.

    python benchmarks/serve.py [--repeats 3] [--clients 50] [--rate 200] [--few 8]
                               [--requests 1000] [--memory 10000] [--workers 1[,2…]]
                               [--floor] [--closed-only]

Both the emulator (``python -m attune_cli.emulator``) and the gateway (``attune serve``) run as
their own processes on 127.0.0.1, on a throwaway ATTUNE_HOME; the clients are threads of this
process, each with its own keep-alive httpx client. Printed, as medians over ``--repeats`` runs,
each gateway figure beside the same figure calling the emulator directly in the same run:

- overhead per non-streamed request with N concurrent clients, each sending its next request
  as soon as the last one is answered (closed loop): p50 and p99 latency through the gateway
  minus the same percentiles direct. On a small machine this is a throughput figure: N clients
  keep every core busy, each request waits behind the others' CPU, and the overhead is N × the
  gateway's CPU per request ÷ the cores, whatever the gateway's own latency;
- the same N clients sending ``--rate`` requests a second in all, on a fixed schedule (open
  loop, below what the machine can serve): latency counted from when each request was due, so
  a late start counts against it; this is the overhead a caller sees when the gateway is not
  the bottleneck;
- ``--few`` clients in a closed loop;
- the CPU time the gateway and the emulator spend per request (from /proc, over the N-client
  runs): what decides where the closed loop saturates;
- (routed) the N-client closed loop with ``attune/bench/general`` as the model, routed like
  ``route best`` on every call;
- time to the first streamed chunk, through the gateway minus direct (one client at a time);
- M requests with N concurrent clients: errors, and telemetry rows lost (M − rows recorded);
- the gateway's resident memory after a warm-up and after ``--memory`` more requests.

``--workers N`` starts ``attune serve --workers N`` (CPU is counted over all its processes);
``--workers 1,2`` starts one gateway of each, measured side by side in the N-client closed
loop (the sections after it use the first).
``--floor`` also starts two bare pass-through proxies on the gateway's own stack (Starlette +
uvicorn, no attune code: read the body, POST it upstream, hand back the answer), one with an
``httpx.AsyncClient`` on the event loop and one with a ``httpx.Client`` per worker thread (the
gateway's own arrangement), and measures them in the N-client closed loop beside the gateway:
what any Python gateway on this stack costs on this machine. ``--closed-only`` stops after the
N-client closed loop.

The machine may be shared and loaded: the figures are what this run saw, nothing more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
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
ROUTED = "attune/bench/general"


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


def hammer(
    url: str, clients: int, total: int, stream: bool = False, model: str | None = None
) -> tuple[list[float], int]:
    """``total`` requests from ``clients`` threads, each sending its next request as soon as
    the last one is answered; latencies in ms and how many failed."""
    return _clients(url, clients, total, None, stream, model)


def paced(url: str, clients: int, rate: float, total: int) -> tuple[list[float], int]:
    """``total`` requests due at ``rate`` a second in all, taken in turn by ``clients`` threads;
    each latency runs from when the request was due (a late start counts against it)."""
    return _clients(url, clients, total, rate, False, None)


def _clients(
    url: str, clients: int, total: int, rate: float | None, stream: bool, model: str | None
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_client = total // clients
    body = {**BODY, "stream": stream, **({"model": model} if model else {})}
    # Every client has its connection open before the first timed request: a burst of fifty
    # connects overflows the emulator's listen queue, and a dropped SYN waits a second.
    began: list[float] = []
    ready = threading.Barrier(clients, action=lambda: began.append(time.perf_counter()))

    def run(index: int) -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        with httpx.Client(timeout=60) as client:
            with contextlib.suppress(httpx.HTTPError):
                client.post(url, json=body)
            ready.wait()
            for n in range(per_client):
                if rate is None:
                    due = time.perf_counter()
                else:
                    due = began[0] + (n * clients + index) / rate
                    wait = due - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                try:
                    response = client.post(url, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append((time.perf_counter() - due) * 1000)
                failed += not ok
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def cpu_s(pid: int) -> float:
    """The CPU time (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """The CPU time of process ``pid`` and every process under it (``--workers`` children)."""
    total = cpu_s(pid)
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    total += tree_cpu_s(int(child))
    return total


def floor_app(upstream: str, threads: bool) -> object:
    """A bare pass-through proxy on the gateway's stack: Starlette, uvicorn and httpx, with
    nothing of attune (``--floor``)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    target = f"{upstream}/v1/chat/completions"
    if threads:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(64)
        local = threading.local()

        def forward_sync(body: bytes) -> httpx.Response:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(timeout=60)
            response = client.post(target, content=body, headers=headers)
            response.read()
            return response

        async def proxy(request: Request) -> Response:
            import asyncio

            body = await request.body()
            answer = await asyncio.get_running_loop().run_in_executor(pool, forward_sync, body)
            kind = answer.headers.get("content-type", "application/json")
            return Response(answer.content, answer.status_code, media_type=kind)

    else:
        shared = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100))

        async def proxy(request: Request) -> Response:
            answer = await shared.post(target, content=await request.body(), headers=headers)
            kind = answer.headers.get("content-type", "application/json")
            return Response(answer.content, answer.status_code, media_type=kind)

    return Starlette(routes=[Route("/v1/chat/completions", proxy, methods=["POST"])])


def serve_floor(upstream: str, threads: bool) -> None:
    """Run a floor proxy on a free port of 127.0.0.1; print where, as ``attune serve`` does."""
    import uvicorn

    sock = bind_free()
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        floor_app(upstream, threads),  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[sock])


def bind_free() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


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


def tree_rss_kib(pid: int) -> int:
    """The resident memory of process ``pid`` and every process under it."""
    total = rss_kib(pid)
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    total += tree_rss_kib(int(child))
    return total


def rows(env: dict[str, str]) -> int:
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "telemetry", "show", "--json", "--limit", "10000000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return len(json.loads(result.stdout))


class Percentiles:
    """p50 and p99 of each run, direct and through the gateway; shown as medians over runs."""

    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = {"d50": [], "d99": [], "p50": [], "p99": []}

    def add(self, direct: list[float], through: list[float]) -> None:
        self.runs["d50"].append(percentile(direct, 0.50))
        self.runs["d99"].append(percentile(direct, 0.99))
        self.runs["p50"].append(percentile(through, 0.50))
        self.runs["p99"].append(percentile(through, 0.99))

    def show(self, title: str, repeats: int) -> None:
        med = {k: statistics.median(v) for k, v in self.runs.items()}
        print(f"{title} (median of {repeats} runs):")
        print(f"  direct   p50 {med['d50']:7.2f} ms   p99 {med['d99']:7.2f} ms")
        print(f"  through  p50 {med['p50']:7.2f} ms   p99 {med['p99']:7.2f} ms")
        print(
            f"  overhead p50 {med['p50'] - med['d50']:7.2f} ms   "
            f"p99 {med['p99'] - med['d99']:7.2f} ms   (targets: 3 ms, 10 ms)"
        )


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests a second")
    parser.add_argument("--few", type=int, default=8, help="clients of the small closed loop")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--memory", type=int, default=10_000)
    parser.add_argument("--workers", default="1", help="attune serve --workers (N or N,M,…)")
    parser.add_argument("--floor", action="store_true", help="measure bare proxies too")
    parser.add_argument("--closed-only", action="store_true", help="stop after the closed loop")
    parser.add_argument("--serve-floor", help=argparse.SUPPRESS)  # UPSTREAM: run a floor proxy
    parser.add_argument("--floor-threads", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_floor:
        serve_floor(options.serve_floor, options.floor_threads)
        return 0
    home = tempfile.mkdtemp(prefix="attune-bench-serve-")
    env = {**os.environ, "ATTUNE_HOME": home}
    emulator, emulator_url = start(
        [sys.executable, "-m", "attune_cli.emulator", "--port", "0"], env, "emulator on ", "stdout"
    )
    env.update(OPENAI_BASE_URL=f"{emulator_url}/v1", OPENAI_API_KEY="sk-bench")
    gateways: dict[str, tuple[subprocess.Popen[str], str]] = {}
    for workers in (int(count) for count in options.workers.split(",")):
        serve_cmd = [sys.executable, "-m", "attune_cli", "serve", "--port", "0"]
        if workers > 1:
            serve_cmd += ["--workers", str(workers)]
        name = f"gateway, {workers} worker{'s' if workers > 1 else ''}"
        gateways[name] = start(serve_cmd, env, "listening on ", "stderr")
    gateway, gateway_url = next(iter(gateways.values()))
    floors: dict[str, tuple[subprocess.Popen[str], str]] = {}
    if options.floor:
        for name, extra in (("floor, async", []), ("floor, threads", ["--floor-threads"])):
            floors[name] = start(
                [sys.executable, __file__, "--serve-floor", emulator_url, *extra],
                env,
                "listening on ",
                "stderr",
            )
    direct = f"{emulator_url}/v1/chat/completions"
    through = f"{gateway_url}/v1/chat/completions"
    try:
        hammer(direct, 10, 200)  # warm-up: threads, connections, SQLite pages
        for _process, url in [*gateways.values(), *floors.values()]:
            hammer(f"{url}/v1/chat/completions", 10, 200)
        n = options.clients
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores at the start")
        servers = {**gateways, **floors}
        closed = {name: Percentiles() for name in servers}
        used_s = dict.fromkeys(servers, 0.0)
        emulator_s = 0.0
        for _ in range(options.repeats):
            used = cpu_s(emulator.pid)
            d, _ = hammer(direct, n, n * 20)
            emulator_s += cpu_s(emulator.pid) - used
            for name, (process, url) in servers.items():
                used = tree_cpu_s(process.pid)
                g, _ = hammer(f"{url}/v1/chat/completions", n, n * 20)
                used_s[name] += tree_cpu_s(process.pid) - used
                closed[name].add(d, g)
        counted = options.repeats * n * 20
        for name, figures in closed.items():
            figures.show(
                f"{name}: non-streamed, {n} concurrent clients, closed loop", options.repeats
            )
            print(f"  CPU per request: {used_s[name] / counted * 1000:.2f} ms")
        print(f"  (emulator, answering direct: {emulator_s / counted * 1000:.2f} ms)")
        if options.closed_only:
            print(f"load average {os.getloadavg()[0]:.2f} at the end")
            return 0
        rate = options.rate
        due = max(n, int(rate * 5) // n * n)  # about five seconds of requests
        opened = Percentiles()
        for _ in range(options.repeats):
            opened.add(paced(direct, n, rate, due)[0], paced(through, n, rate, due)[0])
        opened.show(f"non-streamed, {n} clients, open loop at {rate:g} requests/s", options.repeats)
        few = Percentiles()
        for _ in range(options.repeats):
            few.add(
                hammer(direct, options.few, options.few * 100)[0],
                hammer(through, options.few, options.few * 100)[0],
            )
        few.show(f"non-streamed, {options.few} concurrent clients, closed loop", options.repeats)
        routed = Percentiles()
        hammer(through, 10, 200, model=ROUTED)  # the stage's first rows
        for _ in range(options.repeats):
            routed.add(hammer(direct, n, n * 20)[0], hammer(through, n, n * 20, model=ROUTED)[0])
        routed.show(f"routed ({ROUTED}), {n} concurrent clients, closed loop", options.repeats)
        ttfc_direct = median_of(options.repeats, lambda: first_chunk_ms(direct, 50))
        ttfc_gateway = median_of(options.repeats, lambda: first_chunk_ms(through, 50))
        print(
            f"time to first streamed chunk: direct {ttfc_direct:.2f} ms, gateway "
            f"{ttfc_gateway:.2f} ms, +{ttfc_gateway - ttfc_direct:.2f} ms (target: 5 ms)"
        )
        before = rows(env)
        _, errors = hammer(through, n, options.requests)
        # Each client's first request (opening its connection) is a call with a row too.
        lost = options.requests + n - (rows(env) - before)
        print(f"{options.requests} requests, {n} concurrent: {errors} errors, {lost} rows lost")
        start_kib = tree_rss_kib(gateway.pid)
        _, errors = hammer(through, n, options.memory)
        end_kib = tree_rss_kib(gateway.pid)
        growth = (end_kib - start_kib) / start_kib * 100
        print(
            f"memory over {options.memory} more requests: {start_kib / 1024:.1f} MiB -> "
            f"{end_kib / 1024:.1f} MiB ({growth:+.1f} %, target ≤ 10 %), {errors} errors"
        )
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        for process, _url in [*floors.values(), *gateways.values()]:
            process.terminate()
            process.wait(30)
        emulator.terminate()
        emulator.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
