"""Answering a Tab press: the shell scripts, the wire format, and a fast path without typer.

A Tab press runs ``attune`` with ``_ATTUNE_COMPLETE=complete_<shell>`` and the typed line in the
environment; attune prints the words and exits. Importing typer and building its command tree
costs ~60 ms of the ~100 ms a Tab may take, so ``answer()`` first tries the command tree that
``scripts/gen_completions.py`` wrote to ``completion_tree.py`` (a test keeps it equal to the
app's): it walks the typed words the way click's parser does and calls the same completion
callbacks. Whenever the line holds something it does not model exactly (an unknown option,
``--``, clustered short options …) it returns None and the caller runs the real app, whose
answer is click's own (see ``attune_cli.cli.shells``). Both paths format words with the
functions below, so a shell cannot tell them apart.

This module imports nothing but the standard library.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

PROG_NAME = "attune"
COMPLETE_VAR = "_ATTUNE_COMPLETE"
SHELLS: tuple[str, ...] = ("bash", "zsh", "fish")
# bash's default COMP_WORDBREAKS, for a request that does not pass the shell's own.
DEFAULT_WORDBREAKS = " \t\n\"'><=;|&(:"

# ``%(prog)s`` is the command, ``%(var)s`` the variable that makes a run of it a completion
# request, ``%(func)s`` the shell function's name.
_BASH = """\
# bash completion for %(prog)s. Load it from ~/.bashrc:  source /path/to/%(prog)s.bash
%(func)s() {
    local IFS=$'\\n'
    # attune splits the line up to the cursor itself: bash's COMP_WORDS are cut at ':' and '='
    # (llama3.1:8b, --stage=triage), and the replies must start after the last such break.
    COMPREPLY=( $(env COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_WORD="${COMP_WORDS[COMP_CWORD]}" \\
                  COMP_WORDBREAKS="$COMP_WORDBREAKS" %(var)s=complete_bash "$1" 2>/dev/null) )
    return 0
}

complete -o default -F %(func)s %(prog)s
"""

_ZSH = """\
#compdef %(prog)s
# zsh completion for %(prog)s. Either save it as _%(prog)s in a folder on $fpath before compinit
# runs, or source it after compinit in ~/.zshrc.

%(func)s() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %(var)s=complete_zsh %(prog)s 2>/dev/null)
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  # Autoloaded from $fpath by the first Tab: complete now, not only from the next Tab on.
  %(func)s "$@"
else
  compdef %(func)s %(prog)s
fi
"""

_FISH = """\
# fish completion for %(prog)s. Copy it to ~/.config/fish/completions/%(prog)s.fish
function %(func)s
    # One run of attune per Tab; when it offers nothing (a PATH argument), complete files.
    set -l offered (env %(var)s=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args \\
        _TYPER_COMPLETE_ARGS=(commandline -cp) %(prog)s 2>/dev/null)
    if test -n "$offered[1]"
        printf '%%s\\n' $offered
    else
        __fish_complete_path (commandline -ct)
    end
end

complete --command %(prog)s --no-files --arguments '(%(func)s)'
"""

SCRIPTS: dict[str, str] = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}

# Rich markup in help texts ("[bold]x[/bold]"); "\\[" is a literal bracket.
_MARKUP = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")


class Item(NamedTuple):
    """One completion: the word, its help text, and ``plain``, ``file`` or ``dir``."""

    value: str
    help: str | None = None
    type: str = "plain"


def completion_script(shell: str, prog_name: str = PROG_NAME) -> str:
    """The completion script for ``shell``, as shipped in ``completions/``.

    Args:
        shell: ``bash``, ``zsh`` or ``fish``.
        prog_name: the command the script completes.

    Raises:
        KeyError: an unsupported shell.
    """
    func = "_" + re.sub(r"\W", "_", prog_name) + "_completion"
    return SCRIPTS[shell] % {"prog": prog_name, "var": COMPLETE_VAR, "func": func}


def split_line(line: str) -> tuple[list[str], str]:
    """Split the command line up to the cursor into the complete args and the word being typed.

    Words are split as a POSIX shell would; an unclosed quote keeps its partial word.

    Args:
        line: the line, starting with the command name.

    Returns:
        The arguments after the command name, and the incomplete word ("" after a space).
    """
    import shlex

    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    try:
        words.extend(lexer)
    except ValueError:
        words.append(lexer.token)  # unclosed quote or trailing backslash: keep the partial word
    words = words[1:]
    if words and not line[-1:].isspace():
        return words[:-1], words[-1]
    return words, ""


def plain_help(text: str) -> str:
    """``text`` without Rich markup, on one line, for the description next to a word."""
    return _MARKUP.sub("", re.sub(r"\s+", " ", text)).replace("\\[", "[").strip()


def option_head(typed: str) -> str:
    """``--opt=`` when ``typed`` is ``--opt=value``: click then completes the value alone."""
    return typed.partition("=")[0] + "=" if typed.startswith("-") and "=" in typed else ""


def bash_reply(value: str, typed: str, word: str, wordbreaks: str = DEFAULT_WORDBREAKS) -> str:
    """What bash must insert for ``value``.

    readline replaces only the text after the word's last ``COMP_WORDBREAKS`` character (after
    the ``:`` of ``llama3.1:8``, after the ``=`` of ``--stage=tri``), and click answers
    ``--stage=tri`` with ``triage``: the reply is the completed word minus what stays.

    Args:
        value: the completion offered.
        typed: the word being typed, as attune split the line (``--stage=tri``).
        word: bash's own current word (``COMP_WORDS[COMP_CWORD]``), to see an open quote.
        wordbreaks: bash's ``COMP_WORDBREAKS``.
    """
    if word[:1] in ("'", '"'):
        return value  # inside an open quote readline replaces what follows the quote
    full = option_head(typed) + value
    breaks = set(wordbreaks) - set(" \t\n\"'")
    cut = max((i + 1 for i, char in enumerate(typed) if char in breaks), default=0)
    return full[cut:] if full.startswith(typed[:cut]) else value


def format_bash(
    items: Sequence[Item], typed: str, word: str, wordbreaks: str = DEFAULT_WORDBREAKS
) -> str:
    """One reply per line; nothing for a path, so bash completes file names itself."""
    return "\n".join(
        bash_reply(i.value, typed, word, wordbreaks) for i in items if i.type == "plain"
    )


def format_zsh(items: Sequence[Item], typed: str = "") -> str:
    """A call of zsh's ``_arguments`` with each word and its description (or ``_files``).

    zsh matches the words against the whole current word, so after ``--opt=`` each word
    carries that head.
    """

    def escape(text: str) -> str:
        return (
            text.replace('"', '""')
            .replace("'", "''")
            .replace("$", "\\$")
            .replace("`", "\\`")
            .replace(":", r"\\:")
        )

    plain = [i for i in items if i.type == "plain"]
    if not plain:
        return "_files -/" if any(i.type == "dir" for i in items) else "_files"
    head = option_head(typed)
    words = "\n".join(
        f'"{escape(head + i.value)}":"{escape(plain_help(i.help))}"'
        if i.help
        else f'"{escape(head + i.value)}"'
        for i in plain
    )
    return f"_arguments '*: :(({words}))'"


def format_fish(items: Sequence[Item], typed: str = "") -> str:
    """``word<TAB>description`` per line; nothing for a path (the script completes paths).

    fish replaces the whole token, so after ``--opt=`` each word carries that head.
    """
    head = option_head(typed)
    return "\n".join(
        f"{head}{i.value}\t{plain_help(i.help)}" if i.help else head + i.value
        for i in items
        if i.type == "plain"
    )


def answer(environ: Mapping[str, str] | None = None) -> int | None:
    """Answer the completion request in ``environ`` from the generated command tree.

    Args:
        environ: the process environment (``os.environ`` when omitted).

    Returns:
        The exit status once the words are printed, or None when this path cannot answer
        exactly (not a completion request, an unusual line, a stale or missing tree): the
        caller then runs the app, which answers through click.
    """
    env = os.environ if environ is None else environ
    shell = env.get(COMPLETE_VAR, "").removeprefix("complete_")
    if shell == "bash":
        line = env.get("COMP_LINE")
    elif shell == "zsh" or (
        shell == "fish" and env.get("_TYPER_COMPLETE_FISH_ACTION") == "get-args"
    ):
        line = env.get("_TYPER_COMPLETE_ARGS")
    else:
        return None
    if line is None:
        return None
    try:
        from attune_cli.cli.completion_tree import TREE
    except ImportError:
        return None
    args, typed = split_line(line)
    try:
        items = complete_from_tree(TREE, args, typed)
    except (KeyError, TypeError, IndexError):
        return None  # a tree in an older shape: click still knows the answer
    if items is None:
        return None
    if shell == "bash":
        word = env.get("COMP_WORD", typed)
        text = format_bash(items, typed, word, env.get("COMP_WORDBREAKS", DEFAULT_WORDBREAKS))
    elif shell == "zsh":
        text = format_zsh(items, typed)
    else:
        text = format_fish(items, typed)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0


class _Unsure(Exception):
    """The line holds something only click's own parser can judge."""


def complete_from_tree(
    tree: Mapping[str, Any], args: list[str], incomplete: str
) -> list[Item] | None:
    """The completions click would give for ``args`` + ``incomplete``, or None when unsure.

    Mirrors ``typer._click.shell_completion``: resolve the sub-command the words lead to
    (each group's options parsed up to its first positional word), then decide whether the
    incomplete word is an option name, an option's value, an argument, or a sub-command.

    Args:
        tree: a node of ``completion_tree.TREE``.
        args: the complete words after the program name.
        incomplete: the word being typed.
    """
    try:
        node, given = _resolve(tree, list(args))
        return _complete(node, given, list(args), incomplete)
    except _Unsure:
        return None


def _resolve(tree: Mapping[str, Any], args: list[str]) -> tuple[Mapping[str, Any], set[int]]:
    node = tree
    while True:
        if not node["plain"]:
            raise _Unsure
        given, rest = _parse(node, args)
        commands = node.get("commands")
        if commands is None or not rest:
            return node, given
        child = commands.get(rest[0])
        if child is None:
            raise _Unsure  # click goes on completing the group: leave such oddities to it
        node, args = child, rest[1:]


def _parse(node: Mapping[str, Any], args: list[str]) -> tuple[set[int], list[str]]:
    """Which params the words give, and (for a group) the words from its sub-command on."""
    params: list[dict[str, Any]] = node["params"]
    by_name = {
        name: i for i, p in enumerate(params) if p["kind"] == "option" for name in p["names"]
    }
    given: set[int] = set()
    positional: list[str] = []
    is_group = node.get("commands") is not None
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "--":
            raise _Unsure
        if word[:1] == "-" and len(word) > 1:
            name, eq, _ = word.partition("=")
            index = by_name.get(name)
            if index is None:
                raise _Unsure  # unknown or clustered short options
            option = params[index]
            if option["takes_value"] and option["nargs"] != 1:
                raise _Unsure
            if option["takes_value"]:
                if not eq:
                    if not words:
                        break  # its value is the word being typed
                    words.pop(0)
            elif eq:
                raise _Unsure
            given.add(index)
        elif is_group:
            return given, [word, *words]
        else:
            positional.append(word)
    arguments = [i for i, p in enumerate(params) if p["kind"] == "argument"]
    for index in arguments:
        nargs = params[index]["nargs"]
        if nargs == -1:
            if positional:
                given.add(index)
            positional = []
        elif nargs == 1:
            if positional:
                given.add(index)
                positional.pop(0)
        else:
            raise _Unsure
    return given, []


def _complete(
    node: Mapping[str, Any], given: set[int], args: list[str], incomplete: str
) -> list[Item]:
    params: list[dict[str, Any]] = node["params"]
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete[:1] == "-":
        name, _, incomplete = incomplete.partition("=")
        args.append(name)

    if "--" not in args and incomplete[:1] == "-":
        return _options(params, given, incomplete)

    last = args[-1] if args else ""
    if last[:1] == "-":
        for param in params:
            if param["kind"] == "option" and param["takes_value"] and last in param["opts"]:
                if param["nargs"] != 1:
                    raise _Unsure
                return _values(param["values"], incomplete)

    for index, param in enumerate(params):
        if param["kind"] == "argument" and (param["nargs"] == -1 or index not in given):
            return _values(param["values"], incomplete)

    items = [
        Item(name, child["help"])
        for name, child in (node.get("commands") or {}).items()
        if name.startswith(incomplete) and not child["hidden"]
    ]
    if incomplete and not incomplete[0].isalnum():
        items.extend(_options(params, given, incomplete))
    return items


def _options(params: list[dict[str, Any]], given: set[int], incomplete: str) -> list[Item]:
    return [
        Item(name, param["help"])
        for index, param in enumerate(params)
        if param["kind"] == "option"
        and not param["hidden"]
        and (param["multiple"] or index not in given)
        for name in param["names"]
        if name.startswith(incomplete)
    ]


def _values(spec: Sequence[Any] | None, incomplete: str) -> list[Item]:
    if spec is None:
        return []
    kind = spec[0]
    if kind == "choices":
        choices: Iterable[str] = spec[1]
        if spec[2]:
            return [Item(c) for c in choices if c.startswith(incomplete)]
        lowered = incomplete.lower()
        return [Item(c) for c in choices if c.lower().startswith(lowered)]
    if kind == "call":
        try:
            function: Callable[[str], Iterable[Any]] = getattr(
                importlib.import_module(spec[1]), spec[2]
            )
            items = []
            for entry in function(incomplete):
                item = Item(entry[0], entry[1]) if isinstance(entry, tuple) else Item(entry)
                if item.value.startswith(incomplete):
                    items.append(item)
        except Exception:
            raise _Unsure from None  # a stale tree or a broken callback: let click judge
        return items
    if kind == "file":
        return [Item(incomplete, type="file")]
    raise _Unsure
