"""How ``auth test`` and ``doctor`` look: one block per provider, a mark per finding."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from attune_cli.core.auth_check import Verdict

if TYPE_CHECKING:
    from attune_cli.core.auth_check import ProviderCheck

MARKS = {
    Verdict.OK: ("✓", "green"),
    Verdict.FAILED: ("✗", "red"),
    Verdict.UNKNOWN: ("?", "yellow"),
    Verdict.SKIPPED: ("-", "dim"),
}


def line(verdict: Verdict, label: str, detail: str = "") -> Text:
    """``  ✓ label: detail`` (``detail`` is data: plain text, never markup)."""
    from attune_cli.core.safe_text import visible

    mark, style = MARKS[verdict]
    text = Text("  ")
    text.append(mark, style)
    text.append(f" {label}")
    if detail:
        text.append(f": {visible(detail)}")
    return text


def provider_checks_view(checks: Iterable[ProviderCheck]) -> RenderableType:
    """One block per provider: reachable, key accepted, models listed."""
    from attune_cli.core.formats import format_ms
    from attune_cli.core.safe_text import visible

    parts: list[RenderableType] = []
    for check in checks:
        head = Text(check.provider, "bold")
        head.append(f" · {visible(check.base_url)}")
        parts.append(head)
        if check.provider == "claude-code":
            parts.extend(_claude_code_lines(check))
            continue
        if check.reachable is Verdict.SKIPPED:
            parts.append(
                line(Verdict.SKIPPED, "not configured", f"attune auth login {check.provider}")
            )
            continue
        answered = (
            f"HTTP {check.status} in {format_ms(check.latency_ms)} ms"
            if check.status is not None and check.latency_ms is not None
            else (check.detail or "")
        )
        parts.append(line(check.reachable, "reachable", answered))
        source = {"env": "from the environment", "stored": "from credentials.toml"}.get(
            check.key_source or "", "no key"
        )
        key = f"{check.key_hint} {source}" if check.key_hint else source
        if check.key_accepted is Verdict.FAILED:
            key += f"; {check.detail}" if check.detail else ""
        label = {
            Verdict.OK: "key accepted",
            Verdict.FAILED: "key not accepted",
        }.get(check.key_accepted, "key not checked")
        parts.append(line(check.key_accepted, label, key))
        parts.append(line(check.models, "models listed", _models(check)))
    return Group(*parts)


def _claude_code_lines(check: ProviderCheck) -> list[RenderableType]:
    """The subscription path: the executable, its login, one minimal call."""
    from attune_cli.core.formats import format_ms

    if check.reachable is Verdict.SKIPPED:
        return [line(Verdict.SKIPPED, "not found", check.detail or "")]
    if check.reachable is Verdict.FAILED:
        return [line(Verdict.FAILED, "claude runs", check.detail or "")]
    lines: list[RenderableType] = [line(Verdict.OK, "claude runs", check.version or "")]
    if check.models is Verdict.UNKNOWN:
        lines.append(
            line(Verdict.SKIPPED, "not called", "`attune auth test claude-code` makes one call")
        )
        return lines
    label = {Verdict.OK: "logged in", Verdict.FAILED: "not logged in"}.get(
        check.key_accepted, "login not checked"
    )
    detail = check.detail if check.key_accepted is Verdict.FAILED else ""
    lines.append(line(check.key_accepted, label, detail or ""))
    took = f"in {format_ms(check.latency_ms)} ms" if check.latency_ms is not None else ""
    if check.models is Verdict.OK:
        lines.append(line(Verdict.OK, "answered", f"{', '.join(check.listed)} {took}".strip()))
    elif check.key_accepted is not Verdict.FAILED:
        lines.append(line(Verdict.FAILED, "answered", check.detail or ""))
    return lines


def _models(check: ProviderCheck) -> str:
    if check.models is Verdict.UNKNOWN:
        if check.key_accepted is Verdict.FAILED:
            return "cannot tell without an accepted key"
        return (check.detail or "cannot tell") if check.reachable is Verdict.OK else "not asked"
    if check.listed:
        text = ", ".join(check.listed)
        if check.missing:
            text += f" (not listed: {', '.join(check.missing)})"
        return text
    served = f"{check.served:,} served" if check.served is not None else ""
    if check.others:
        served += f": {', '.join(check.others)}" + ("…" if (check.served or 0) > 5 else "")
    if check.missing:
        return f"none of {', '.join(check.missing)}; {served}".rstrip("; ")
    return served or "none"
