"""Tables that never hide a figure: every report's table goes through ``fit_table``.

A figure (a number, an amount, a model id, a verdict) is never cut with "…" nor split across
lines. When a table is wider than the terminal, its least important columns are left out first
(and a line says which); when even the essential columns do not fit, each row becomes a block
of ``Header: value`` lines. A pipe renders at 80 columns, as Rich does.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from attune_cli.core.formats import format_ms, format_pct, format_score
from attune_cli.core.money import format_usd

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

# Columns with this priority are never left out; higher numbers give way first.
ESSENTIAL = 0


@dataclass(frozen=True)
class Column:
    """One column of a report.

    Attributes:
        header: what the column is called.
        justify: "right" for figures, "left" for names.
        drop_order: 0 keeps the column at every width; higher numbers are left out first.
        wrap: whether the cell may wrap (prose only: never a figure or an id).
    """

    header: str
    justify: Literal["left", "right"] = "left"
    drop_order: int = ESSENTIAL
    wrap: bool = False


@dataclass(frozen=True)
class Fitted:
    """What ``fit_table`` chose: the renderable, and the columns it left out."""

    renderable: RenderableType
    dropped: tuple[str, ...]
    records: bool


def fit_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    *,
    width: int,
    title: str | Text | None = None,
    caption: str | Text | None = None,
    row_styles: Sequence[str | None] | None = None,
    lines: bool = False,
) -> Fitted:
    """Lay ``rows`` out within ``width`` columns without cutting any cell.

    Args:
        columns: the columns, in the order shown.
        rows: one ``Text`` per column per row (values from data must already be ``Text``).
        width: the terminal's width.
        title: the table's title.
        caption: a line under the table.
        row_styles: a style per row (or None).
        lines: a rule between rows (for rows of several lines of prose).

    Returns:
        The table (or record blocks) and the headers left out to make it fit.
    """
    styles = list(row_styles) if row_styles is not None else [None] * len(rows)
    kept = list(range(len(columns)))
    droppable = sorted(
        (i for i, c in enumerate(columns) if c.drop_order != ESSENTIAL),
        key=lambda i: (-columns[i].drop_order, -i),
    )
    # Each cell is measured once; a narrower try reuses the figures of the columns it keeps.
    measured = _column_spans(columns, rows)
    while True:
        spans = [measured[i] for i in kept]
        gutters = _gutters(len(kept))
        if _needed_width(spans, gutters) <= width:
            widths = _prose_widths(spans, gutters, width)
            table = _table(columns, rows, kept, title, caption, styles, lines, widths)
            dropped = tuple(columns[i].header for i in range(len(columns)) if i not in kept)
            return Fitted(table, dropped, records=False)
        if not droppable:
            break
        kept.remove(droppable.pop(0))
    return Fitted(_records(columns, rows, title, caption, styles), (), records=True)


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    *,
    title: str | Text | None = None,
    caption: str | Text | None = None,
    row_styles: Sequence[str | None] | None = None,
    json_hint: bool = True,
) -> Fitted:
    """``fit_table`` at the console's width, printed, with a line naming what was left out."""
    fitted = fit_table(
        columns, rows, width=console.width, title=title, caption=caption, row_styles=row_styles
    )
    # Not cropped: a record line holding an id longer than the terminal stays whole (the
    # terminal shows it on two rows; a pipe keeps it on one line).
    console.print(fitted.renderable, crop=False)
    if fitted.dropped:
        from rich.text import Text

        where = " (--json has every column)" if json_hint else ""
        console.print(
            Text(
                f"Left out to fit {console.width} columns: {', '.join(fitted.dropped)}{where}.",
                style="dim",
            )
        )
    return fitted


def _table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    kept: list[int],
    title: str | Text | None,
    caption: str | Text | None,
    styles: Sequence[str | None],
    lines: bool = False,
    widths: Sequence[int | None] | None = None,
) -> RenderableType:
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        show_lines=lines,
    )
    for position, i in enumerate(kept):
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold" if column.wrap else "ignore",
            width=widths[position] if widths is not None else None,
        )
    for row, style in zip(rows, styles, strict=True):
        table.add_row(*(row[i] for i in kept), style=style)
    return table


def _needed_width(spans: list[tuple[int, int, bool]], gutters: int) -> int:
    """The columns a table needs to show every cell without cutting a word.

    A figure column (no wrap) counts at its widest; a prose column at its longest word, so
    prose wraps between words and never folds one (a model id in a sentence stays whole).
    """
    return gutters + sum(high if no_wrap else low for low, high, no_wrap in spans)


def _column_spans(
    columns: Sequence[Column], rows: Sequence[Sequence[Text]]
) -> list[tuple[int, int, bool]]:
    """Each column's (longest word, widest cell, no_wrap), header included."""
    from rich.measure import Measurement

    probe = _probe()
    spans = []
    for i, column in enumerate(columns):
        cells: list[RenderableType] = [column.header, *(row[i] for row in rows)]
        measured = [Measurement.get(probe, probe.options, cell) for cell in cells]
        spans.append(
            (max(m.minimum for m in measured), max(m.maximum for m in measured), not column.wrap)
        )
    return spans


@functools.cache
def _gutters(count: int) -> int:
    """The width a table of ``count`` columns adds to its cells (padding, rules)."""
    from rich.measure import Measurement
    from rich.text import Text

    columns = [Column(header="x") for _ in range(count)]
    table = _table(columns, [[Text("x")] * count], list(range(count)), None, None, [None])
    probe = _probe()
    return Measurement.get(probe, probe.options, table).maximum - count


def _probe() -> Console:
    from rich.console import Console

    return Console(width=10_000, color_system=None, file=io.StringIO())


def _prose_widths(
    spans: list[tuple[int, int, bool]], gutters: int, width: int
) -> list[int | None] | None:
    """Widths that give each prose column at least its longest word, or None when all fit.

    Rich narrows the widest prose columns first and may fold a word doing so; here each prose
    column gets its longest word, and the room left is shared by how much each would use.
    """
    if gutters + sum(high for _, high, _ in spans) <= width or all(n for _, _, n in spans):
        return None
    widths = [high if no_wrap else low for low, high, no_wrap in spans]
    room = width - gutters - sum(widths)
    wants = [0 if no_wrap else high - low for low, high, no_wrap in spans]
    total = sum(wants)
    for index, want in enumerate(wants):
        if want and total:
            widths[index] += min(want, room * want // total)
    return [None if no_wrap else w for w, (_, _, no_wrap) in zip(widths, spans, strict=True)]


def _records(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    title: str | Text | None,
    caption: str | Text | None,
    styles: Sequence[str | None],
) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = []
    if title is not None:
        parts.append(Text(title, style="italic") if isinstance(title, str) else title)
    label_width = max(len(c.header) for c in columns)
    for row, style in zip(rows, styles, strict=True):
        parts.append(Text(""))
        for column, cell in zip(columns, row, strict=True):
            if not column.header and not cell.plain:
                continue
            label = Text(f"{column.header or '':<{label_width}}", style="bold")
            if column.wrap:
                # Prose wraps under its label, between words.
                grid = Table.grid(padding=(0, 2))
                grid.add_column(no_wrap=True)
                grid.add_column()
                grid.add_row(label, cell)
                parts.append(grid)
                continue
            line = label + Text("  ")
            line.append_text(cell)
            if style:
                line.stylize(style)
            # A record line is never wrapped by Rich: a long id stays whole for the terminal.
            line.no_wrap = True
            line.overflow = "ignore"
            parts.append(line)
    if caption is not None:
        parts.append(Text(""))
        parts.append(Text(caption, style="dim") if isinstance(caption, str) else caption)
    return Group(*parts)


# Cells of a figure column: "-" where there is no figure.


def cell_count(value: int | None) -> str:
    """A count with thousands separators."""
    return "-" if value is None else f"{value:,}"


def cell_ms(value: float | None) -> str:
    """A duration in milliseconds."""
    return "-" if value is None else format_ms(value)


def cell_usd(value: float | None) -> str:
    """An amount in US dollars."""
    return "-" if value is None else format_usd(value)


def cell_pct(value: float | None) -> str:
    """A rate from 0 to 1, as a percentage."""
    return "-" if value is None else format_pct(value)


def cell_score(value: float | None) -> str:
    """A routing score."""
    return "-" if value is None else format_score(value)
