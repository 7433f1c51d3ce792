"""Text from outside shown safely: names checked at entry, messages escaped where shown.

Names (workflow, stage, model, provider) come from flags, imported logs and config files;
messages come from providers and files. Either may hold characters that a terminal obeys
rather than shows: C0 and C1 controls (``ESC [2J`` clears the screen, ``ESC ]0;…`` sets the
window title, ``\\x9b`` is a one-byte CSI), DEL, line and paragraph separators, and the
bidirectional overrides that make ``model‮txt.exe`` read backwards (Trojan Source).

- ``unsafe_characters`` finds them; ``check_name`` refuses a name holding any (every entry
  point calls it: ``telemetry record``, imports, ``config.toml``).
- ``visible`` turns them into ``\\x1b``-style escapes, so a message from outside (a provider's
  error, a file's line, a name stored before this check existed) is shown, never obeyed.
- ``quote`` is ``repr`` for error messages, cut to ``QUOTE_LIMIT`` characters: a 5 MB value
  in a bad line must not become a 5 MB error.
"""

from __future__ import annotations

import unicodedata

from attune_cli.core.errors import UsageError

# How much of a value an error message quotes.
QUOTE_LIMIT = 80

# Bidirectional formatting characters (Unicode TR9): embeddings, overrides, isolates and the
# invisible marks. They reorder what a terminal shows without being seen themselves.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Unicode categories never allowed in a name: controls (C0, DEL, C1), line and paragraph
# separators (a terminal or a log viewer breaks the line there), and surrogates (not text).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def is_unsafe(char: str) -> bool:
    """Whether one character would act on a terminal instead of being shown."""
    if char in BIDI_CONTROLS:
        return True
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def unsafe_characters(text: str) -> list[str]:
    """The characters of ``text`` a terminal would obey, in order, each once."""
    if text.isprintable():
        # C-speed common case: every unsafe character is also "not printable" to Python.
        return []
    found: list[str] = []
    for char in text:
        if (char.isprintable() or char == " ") and char not in BIDI_CONTROLS:
            continue
        if is_unsafe(char) and char not in found:
            found.append(char)
    return found


def escape_char(char: str) -> str:
    """``\\x1b``, ``\\u202e`` or ``\\U000e0001``: the escape Python would write for ``char``."""
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every unsafe character written as an escape (``ESC`` → ``\\x1b``).

    A backslash is left alone: the result is for people to read, not to parse back.

    Args:
        text: a message or name from outside.
        keep_newlines: leave ``\\n`` and ``\\t`` as they are (for multi-line text such as a
            model's answer); every other control is still escaped.

    Returns:
        ``text`` unchanged when it holds nothing unsafe (the common case costs one scan).
    """
    if not unsafe_characters(text):
        return text
    kept = "\n\t" if keep_newlines else ""
    return "".join(
        escape_char(char) if char not in kept and is_unsafe(char) else char for char in text
    )


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, at most ``limit`` characters of it, escaped.

    A longer value is cut and says how long it was: ``'2026-01-…' (5,242,880 characters)``.
    """
    if isinstance(value, str | bytes) and len(value) > limit:
        shown = repr(value[:limit])
        unit = "bytes" if isinstance(value, bytes) else "characters"
        return f"{shown[:-1]}…{shown[-1]} ({len(value):,} {unit})"
    text = repr(value)
    if len(text) > limit + 2:
        text = f"{text[:limit]}… ({len(text):,} characters)"
    return visible(text)


def check_name(kind: str, value: str, *, where: str | None = None) -> str:
    """Refuse a name holding a character a terminal would obey; return it unchanged.

    Args:
        kind: what the name is (``workflow``, ``stage``, ``model``, ``provider``).
        value: the name.
        where: the flag, file or key it came from, for the message (default ``--KIND``).

    Raises:
        UsageError: the name holds a control, separator or bidirectional character; the
            message shows the first such characters escaped, never raw.
    """
    bad = unsafe_characters(value)
    if bad:
        shown = ", ".join(escape_char(char) for char in bad[:3])
        raise UsageError(
            f"{where or '--' + kind} must not contain control or bidirectional characters "
            f"(found {shown} in {quote(value)})"
        )
    return value
