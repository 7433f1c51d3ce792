"""Help text that reads at any width: prose re-flows, examples stay whole on their own lines.

typer keeps every single line break of a docstring after its first paragraph, so a docstring
written at 96 columns leaves orphan words on an 80-column terminal. Each command's help is
re-flowed once, when click first looks the command up: prose lines of a paragraph are joined
(Rich wraps them at the terminal's width), while example commands, their ``\\`` continuations,
headers ending in ``:`` and bullets keep their own lines.
"""

from __future__ import annotations

from typing import Any

_DONE = "_attune_help_reflowed"


def reflow(text: str) -> str:
    """``text`` with each paragraph's prose lines joined and its example lines kept."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines: list[str] = []
        keep_next = True
        for line in paragraph.split("\n"):
            own_line = _own_line(line) or keep_next
            if own_line or not lines:
                lines.append(line)
            else:
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            keep_next = _own_line(line) or line.rstrip().endswith((":", "\\"))
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def reflow_tree(command: Any) -> None:
    """Re-flow the help of ``command`` and every sub-command under it, once."""
    if getattr(command, _DONE, False):
        return
    if getattr(command, "help", None):
        command.help = reflow(command.help)
    setattr(command, _DONE, True)
    for sub in getattr(command, "commands", {}).values():
        reflow_tree(sub)


def _own_line(line: str) -> bool:
    stripped = line.strip()
    return (
        stripped.startswith(("attune ", "Example", "$ ", "- ", "• ", "* "))
        or "| attune " in stripped
        or line.startswith((" ", "\t"))
        or stripped.endswith("\\")
    )
