"""``attune serve`` as a real process in front of the provider emulator, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The SDKs take about a second of CPU to import: only the tests that use them pay it.
    import anthropic
    import openai

from attune_cli.emulator import ProviderEmulator

UPSTREAM_OPENAI_KEY = "sk-upstream-openai-0123456789"
UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-0123456789"
CLIENT_KEY = "sk-client-never-stored-0123456789"


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[str]
    emulator: ProviderEmulator
    env: dict[str, str]
    home: Path
    # The SDK clients handed out, closed by stop() so their pooled sockets do not leak.
    clients: list[openai.OpenAI | anthropic.Anthropic] = field(default_factory=list)

    def openai(self, **kw: object) -> openai.OpenAI:
        import openai as sdk

        client = sdk.OpenAI(base_url=f"{self.url}/v1", api_key=CLIENT_KEY, **kw)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def anthropic(self, **kw: object) -> anthropic.Anthropic:
        import anthropic as sdk

        client = sdk.Anthropic(base_url=self.url, api_key=CLIENT_KEY, **kw)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def rows(self) -> list[dict[str, object]]:
        result = subprocess.run(
            [sys.executable, "-m", "attune_cli", "telemetry", "show", "--json", "--limit", "1000"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return list(reversed(json.loads(result.stdout)))

    def stop(self) -> str:
        """SIGTERM the gateway (if still running), reap it, close its pipes and the clients."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


def start_gateway(
    home: Path,
    emulator: ProviderEmulator,
    config: str = "",
    *args: str,
    env: dict[str, str] | None = None,
) -> Gateway:
    """``attune serve --port 0`` on ``home`` in front of ``emulator``, once it listens.

    ``env`` adds to (or overrides) the environment it runs with, e.g. ``ATTUNE_STORE_URL``.
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config, encoding="utf-8")
    environment = {
        **os.environ,
        "ATTUNE_HOME": str(home),
        "OPENAI_BASE_URL": emulator.openai_base_url,
        "OPENAI_API_KEY": UPSTREAM_OPENAI_KEY,
        "ANTHROPIC_BASE_URL": emulator.anthropic_base_url,
        "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC_KEY,
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "attune_cli", "serve", "--port", "0", "--grace", "20", *args],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "listening on " in line, line + process.stderr.read()
    url = line.split("listening on ", 1)[1].strip()
    return Gateway(url, process, emulator, environment, home)
