"""Lines of code of a file or of a folder's source files: non-blank, non-comment lines.

A line counts when, stripped, it is not empty and does not start with the comment marker of the
file's language (``#`` for Python and shells, ``//`` and block-comment lines for C-like
languages, ``--`` for SQL and Lua …). Block comments and docstrings are counted as code: telling
them apart needs a parser per language, and for sizing a module the difference is small.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from attune_cli.core.errors import InputFileError

_HASH = ("#",)
_C_LIKE = ("//", "/*", "* ", "*/")
_DASHES = ("--",)

# Suffix → comment prefixes. A folder is measured over files with these suffixes only.
SOURCE_SUFFIXES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys((".py", ".pyi", ".sh", ".bash", ".zsh", ".rb", ".pl", ".r", ".jl"), _HASH),
    **dict.fromkeys((".ex", ".exs", ".nim", ".cr", ".tf", ".ps1", ".coffee"), _HASH),
    **dict.fromkeys(
        (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".kts"),
        _C_LIKE,
    ),
    **dict.fromkeys(
        (".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".swift", ".scala", ".dart"),
        _C_LIKE,
    ),
    **dict.fromkeys((".m", ".mm", ".php", ".groovy", ".zig", ".proto", ".vue", ".svelte"), _C_LIKE),
    **dict.fromkeys((".sql", ".lua", ".hs", ".elm", ".ada"), _DASHES),
}

# A single file of another kind (a script without suffix, a README) is counted with both of the
# common markers.
_DEFAULT_PREFIXES = ("#", "//")

# Folders that hold dependencies, builds or tool state, not the person's own source.
SKIPPED_FOLDERS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        "target",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
    }
)

_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class LineCount:
    """The measured size of a file or folder.

    Attributes:
        path: what was measured.
        lines: non-blank, non-comment lines, summed over the files.
        files: how many files were counted.
        skipped: files of a folder left out because they are binary, not UTF-8 or unreadable.
    """

    path: Path
    lines: int
    files: int
    skipped: int = 0


def count_lines_of_code(path: Path) -> LineCount:
    """Count the lines of code of a file, or of the source files under a folder.

    Args:
        path: a text file, or a folder (searched recursively, skipping hidden folders and
            dependency or build folders such as ``node_modules`` and ``.venv``).

    Returns:
        The line count.

    Raises:
        InputFileError: the path does not exist, cannot be read, is a binary or non-UTF-8
            file, or is a folder holding no source file.
    """
    if path.is_dir():
        return _count_folder(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file or folder")
    lines, problem = _count_file(path, SOURCE_SUFFIXES.get(path.suffix.lower(), _DEFAULT_PREFIXES))
    if problem is not None:
        raise InputFileError(f"{path}: {problem}")
    return LineCount(path=path, lines=lines, files=1)


def _count_folder(folder: Path) -> LineCount:
    total = files = skipped = 0
    try:
        os.listdir(folder)
    except OSError as exc:
        raise InputFileError(f"{folder}: cannot be read ({exc.strerror})") from None
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
        for name in sorted(names):
            prefixes = SOURCE_SUFFIXES.get(os.path.splitext(name)[1].lower())
            if prefixes is None or name.startswith("."):
                continue
            lines, problem = _count_file(Path(root) / name, prefixes)
            if problem is None:
                total += lines
                files += 1
            else:
                skipped += 1
    if files == 0:
        raise InputFileError(
            f"{folder}: holds no readable source file "
            "(looked for .py, .js, .ts, .go, .rs, .java, .c and other source suffixes)"
        )
    return LineCount(path=folder, lines=total, files=files, skipped=skipped)


def _count_file(path: Path, comment_prefixes: tuple[str, ...]) -> tuple[int, str | None]:
    """Lines of code of one file, or a reason it cannot be counted."""
    try:
        raw = path.read_bytes()
    except PermissionError:
        return 0, "cannot be read (permission denied)"
    except OSError as exc:
        return 0, f"cannot be read ({exc.strerror})"
    if b"\0" in raw[:_SNIFF_BYTES]:
        return 0, "is a binary file, not source code"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return 0, "is not UTF-8 text"
    return count_text_lines(text, comment_prefixes), None


def count_text_lines(text: str, comment_prefixes: tuple[str, ...] = _DEFAULT_PREFIXES) -> int:
    """Lines of code of ``text``: non-blank lines not starting with a comment prefix.

    ``attune ask`` sizes what it sends with this (and the default prefixes, as for a file of
    no known language), so ``auth recommend FILE`` and ``ask "$(cat FILE)"`` agree on the
    size, and so on the mode.
    """
    lines = 0
    for line in text.splitlines():
        stripped = line.strip()
        # A bare "*" is the middle of a block comment, not a C dereference.
        if stripped and stripped != "*" and not stripped.startswith(comment_prefixes):
            lines += 1
    return lines
