"""Body limits end to end: a real ``attune ask`` against a 127.0.0.1 server sending too much.

A gzip bomb (small on the wire, 256 MiB once inflated), an error page of tens of MB, and a
``Retry-After`` of thirty years: each must end fast, in bounded memory, with a message and an
envelope that stay within attune's own limits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from helpers.reliability import FAKE_OPENAI_KEY, Exchange, LoopbackServer, assert_clean_failure

pytestmark = pytest.mark.e2e

BOMB_DECODED_BYTES = 256 * 1024 * 1024
PEAK_LIMIT_BYTES = 200 * 1024 * 1024
"""An attune process needs well under this; reading the bomb whole needed several times it."""


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """256 MiB of zeros, gzipped (about 250 KB), built without holding the 256 MiB."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    parts = [deflater.compress(block) for _ in range(BOMB_DECODED_BYTES // len(block))]
    parts.append(deflater.flush())
    return b"".join(parts)


_MEASURED = """
import atexit, runpy, sys
path = sys.argv[1]
def peak():
    with open("/proc/self/status") as status, open(path, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
atexit.register(peak)
sys.argv = ["attune", *sys.argv[2:]]
runpy.run_module("attune_cli", run_name="__main__")
"""


def run_measured(
    *args: str, env: dict[str, str], scratch: Path
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run attune; return its result and its peak memory in bytes.

    The peak is the process's own high-water mark (``VmHWM``, which starts afresh at exec), not
    ``wait4``'s ``ru_maxrss``, which also counts the pytest worker the child was forked from.
    """
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc to measure memory")
    peak_path = scratch / "peak-kib"
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(peak_path), *args],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, int(peak_path.read_text()) * 1024


def openai_env(server: LoopbackServer) -> dict[str, str]:
    return {**server.openai_env, "OPENAI_API_KEY": FAKE_OPENAI_KEY}


def test_a_gzip_bomb_is_refused_fast_in_bounded_memory(gzip_bomb: bytes, attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nmax_retries = 0\n")

    def bomb(exchange: Exchange) -> None:
        exchange.send(200, gzip_bomb, headers={"content-encoding": "gzip"})

    with LoopbackServer(bomb) as server:
        began = time.monotonic()
        result, peak_bytes = run_measured(
            "ask", "hi", "-m", "gpt-5-mini", env=openai_env(server), scratch=attune_home
        )
        took_s = time.monotonic() - began
        requests = len(server.visits)
    stderr = assert_clean_failure(result, 1)
    assert "malformed_response" in stderr, stderr
    assert requests == 1
    assert took_s < 10, f"the bomb took {took_s:.1f} s to refuse"
    # Before limits: 3.2 GB for 1 GiB inflated. An attune process itself is ~60-100 MB.
    assert 0 < peak_bytes < PEAK_LIMIT_BYTES, f"peak memory {peak_bytes / 2**20:.0f} MiB"


def test_a_gzip_bomb_in_a_stream_is_refused_too(gzip_bomb: bytes, attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nmax_retries = 0\n")

    def bomb(exchange: Exchange) -> None:
        exchange.send(
            200,
            gzip_bomb,
            content_type="text/event-stream",
            headers={"content-encoding": "gzip"},
        )

    with LoopbackServer(bomb) as server:
        result, peak_bytes = run_measured(
            "ask",
            "hi",
            "-m",
            "gpt-5-mini",
            "--max-tokens",
            "100",
            env=openai_env(server),
            scratch=attune_home,
        )
    stderr = assert_clean_failure(result, 1)
    assert "malformed_response" in stderr, stderr
    assert 0 < peak_bytes < PEAK_LIMIT_BYTES, f"peak memory {peak_bytes / 2**20:.0f} MiB"


def test_a_huge_error_body_is_not_read_past_its_start(attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nmax_retries = 0\n")
    page = b"<html>" + b"Bad Gateway " * 5_000_000  # 60 MB

    def huge(exchange: Exchange) -> None:
        exchange.send(502, page, content_type="text/html")

    with LoopbackServer(huge) as server:
        began = time.monotonic()
        result, peak_bytes = run_measured(
            "ask", "hi", "-m", "gpt-5-mini", env=openai_env(server), scratch=attune_home
        )
        took_s = time.monotonic() - began
    stderr = assert_clean_failure(result, 1)
    assert "HTTP 502 server_error" in stderr
    assert len(stderr) < 2000
    assert took_s < 10
    assert 0 < peak_bytes < PEAK_LIMIT_BYTES, f"peak memory {peak_bytes / 2**20:.0f} MiB"


def test_an_absurd_retry_after_is_clamped_in_the_message_the_envelope_and_the_breaker(
    attune_home: Path,
) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text(
        "[executor]\nmax_retries = 0\n[breaker]\nconsecutive_failures = 1\nmin_calls = 1\n"
    )

    def thirty_years(exchange: Exchange) -> None:
        status = 429 if exchange.prompt == "limited" else 503
        exchange.error(status, "overloaded_error", "come back later", retry_after="1000000000")

    with LoopbackServer(thirty_years) as server:
        env = {**os.environ, **openai_env(server)}
        plain = subprocess.run(
            [sys.executable, "-m", "attune_cli", "ask", "limited", "-m", "gpt-5-mini"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        as_json = subprocess.run(
            [sys.executable, "-m", "attune_cli", "ask", "limited", "-m", "gpt-5-mini", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        outage = subprocess.run(
            [sys.executable, "-m", "attune_cli", "ask", "down", "-m", "gpt-5", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        breakers = subprocess.run(
            [sys.executable, "-m", "attune_cli", "route", "breakers", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    stderr = assert_clean_failure(plain, 1)
    assert "Retry in 3600 s" in stderr, stderr
    assert "1000000000" not in stderr
    assert json.loads(as_json.stdout)["retry_after_s"] == 3600
    assert json.loads(outage.stdout)["retry_after_s"] == 3600
    opened = {b["key"]: b for b in json.loads(breakers.stdout)}["openai/gpt-5"]
    assert opened["state"] == "open"
    assert 3500 < opened["retry_after_s"] <= 3600
