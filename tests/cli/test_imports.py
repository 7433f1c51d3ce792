"""`attune --help` must stay cheap: no heavy module is imported to print help."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "httpx",
    "questionary",
    "tomlkit",
    "sqlite3",
    "_sqlite3",
    "prompt_toolkit",
    "pydantic",
    # typer's help renderer would pull these in through rich.markdown and rich.traceback.
    "markdown_it",
    "pygments",
)

PROBE = """
import json, sys
sys.argv = ["attune", *sys.argv[1:]]
from attune_cli.cli.app import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\n@@" + json.dumps(sorted(sys.modules)))
"""


def _modules_after(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    marker = result.stdout.rindex("@@")
    return set(json.loads(result.stdout[marker + 2 :]))


def test_root_help_imports_no_heavy_module() -> None:
    loaded = _modules_after("--help")
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert heavy == []


def test_version_imports_no_heavy_module() -> None:
    loaded = _modules_after("--version")
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert heavy == []
    assert "attune_cli.cli.app" in loaded
