"""Tables that never hide a figure: every report's table goes through ``fit_table``.

A figure (a number, an amount, a model id, a verdict) is never cut with "…" nor split across
lines. When a table is wider than the terminal, its least important columns are left out first
(and a line says which); when even the essential columns do not fit, each row becomes a block
of ``Header: value`` lines. A pipe renders at 80 columns, as Rich does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

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
) -> Fitted:
    """Lay ``rows`` out within ``width`` columns without cutting any cell.

    Args:
        columns: the columns, in the order shown.
        rows: one ``Text`` per column per row (values from data must already be ``Text``).
        width: the terminal's width.
        title: the table's title.
        caption: a line under the table.
        row_styles: a style per row (or None).

    Returns:
        The table (or record blocks) and the headers left out to make it fit.
    """
    styles = list(row_styles) if row_styles is not None else [None] * len(rows)
    kept = list(range(len(columns)))
    droppable = sorted(
        (i for i, c in enumerate(columns) if c.drop_order != ESSENTIAL),
        key=lambda i: (-columns[i].drop_order, -i),
    )
    while True:
        table = _table(columns, rows, kept, title, caption, styles)
        if _needed_width(table) <= width:
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
    )
    for i in kept:
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold" if column.wrap else "ignore",
            min_width=12 if column.wrap else None,
        )
    for row, style in zip(rows, styles, strict=True):
        table.add_row(*(row[i] for i in kept), style=style)
    return table


def _needed_width(table: RenderableType) -> int:
    """The columns ``table`` needs to show every unwrappable cell whole."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    assert isinstance(table, Table)
    probe = Console(width=10_000, color_system=None, file=_Discard())
    wrappable = [c for c in table.columns if not c.no_wrap]
    measured = Measurement.get(probe, probe.options, table)
    if not wrappable:
        return measured.maximum
    # Prose columns may wrap: count them at their minimum, every other column at its widest.
    return max(measured.minimum, measured.maximum - sum(_slack(probe, table, c) for c in wrappable))


def _slack(probe: Console, table: object, column: object) -> int:
    from rich.measure import Measurement
    from rich.table import Column as RichColumn
    from rich.table import Table

    assert isinstance(table, Table) and isinstance(column, RichColumn)
    widest = max(
        (Measurement.get(probe, probe.options, cell).maximum for cell in column.cells),
        default=0,
    )
    return max(0, widest - (column.min_width or 0))


def _records(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    title: str | Text | None,
    caption: str | Text | None,
    styles: Sequence[str | None],
) -> RenderableType:
    from rich.console import Group
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
            line = Text(f"{column.header or '':<{label_width}}  ", style="bold")
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


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None
