"""Write attune's shell-completion files from the app (or check that they are current).

Usage::

    python scripts/gen_completions.py            # rewrite them
    python scripts/gen_completions.py --check    # exit 1 and name the stale ones

Writes ``completions/attune.{bash,zsh,fish}`` (what ``attune --show-completion SHELL`` prints)
and ``attune_cli/cli/completion_tree.py`` (the command tree the fast Tab path reads). Run it
after changing any command, option or argument; tests/cli/test_completion_scripts.py fails
while the committed files differ from what this writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def expected_files(root: Path = ROOT) -> dict[Path, str]:
    """Each generated file's path under ``root`` and the text it must hold."""
    import typer.main

    from attune_cli.cli.app import app
    from attune_cli.cli.shells import tree_module
    from attune_cli.cli.tab import PROG_NAME, SHELLS, completion_script

    files = {
        root / "completions" / f"{PROG_NAME}.{shell}": completion_script(shell) for shell in SHELLS
    }
    files[root / "attune_cli" / "cli" / "completion_tree.py"] = tree_module(
        typer.main.get_command(app)
    )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    options = parser.parse_args(argv)

    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not options.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if options.check and stale:
        names = ", ".join(str(p) for p in stale)
        print(f"stale: {names}; run python scripts/gen_completions.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
