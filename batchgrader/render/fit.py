"""Tables that fit the width they are drawn at, and plain lines where there is no terminal.

On a terminal, a ``FitTable`` is laid out for the width it is given. Numbers, ids,
paths and money are never cut, wrapped or ellipsised. When the table is wider than the
screen, the table's ``shrink`` order is applied one step at a time until it fits: the
listed columns whose cells are all zero or blank go first, then the listed columns in
order: a figure or text column is dropped (a line under the table names what is hidden),
an id or path column moves its values under the table as numbered notes (``[1] value``)
and keeps a short label in the table. Free text (``wrap`` columns: errors) wraps.

Anywhere else (a pipe, a file, CI logs), the same table prints as plain aligned lines at
its natural width: a header line, then one line per row; nothing is dropped, moved or
wrapped, so ``grep`` and ``awk`` see every value whole. (``--json`` is the format for
programs; these lines are for people reading a log.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

from rich.box import Box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

#: ``num``: right-aligned figure; ``text``: a short word (status, model); ``id`` and
#: ``path``: long values that move under the table rather than be cut; ``wrap``: free
#: text that may wrap over several lines.
Kind = Literal["num", "text", "id", "path", "wrap"]

#: Spaces between two columns.
GAP = 2
#: Narrowest a ``wrap`` column is squeezed to before other steps are needed.
WRAP_MIN = 16
#: A heavy rule under the header, a light one between sections, no vertical lines.
BOX = Box("    \n    \n ━━ \n    \n ── \n ━━ \n    \n    \n")
BLANK = frozenset({"", "-", "0", "0/0", "$0.00"})


@dataclass(frozen=True)
class Long:
    """A long cell (id, path) and the label it leaves in the table when it moves below."""

    value: str
    short: str = ""
    style: str = ""


Cell = str | Text | Long


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind = "text"
    style: str = ""


@dataclass
class _Row:
    cells: list[Cell]
    end_section: bool = False


def _plain(cell: Cell) -> str:
    if isinstance(cell, Long):
        return cell.value
    return cell.plain if isinstance(cell, Text) else cell


def _short(cell: Long | str, kind: Kind) -> str:
    """The label a moved id or path keeps in the table (a path keeps its file name)."""
    if isinstance(cell, Long):
        return cell.short
    return PurePath(cell).name if kind == "path" else ""


@dataclass
class FitTable:
    """A table with a shrink order; see the module docstring for how it fits."""

    title: str | Text | None = None
    caption: Sequence[RenderableType] = ()
    #: Column headers in the order they give way when the table is too wide.
    shrink: Sequence[str] = ()
    columns: list[Column] = field(default_factory=list)
    rows: list[_Row] = field(default_factory=list)

    def column(self, header: str, kind: Kind = "text", style: str = "") -> None:
        self.columns.append(Column(header, kind, style))

    def row(self, *cells: Cell, end_section: bool = False) -> None:
        assert len(cells) == len(self.columns), "one cell per column"
        self.rows.append(_Row(list(cells), end_section))

    # --- layout ---------------------------------------------------------------------

    def blank(self, index: int) -> bool:
        """Whether a column holds only zeros, dashes or nothing."""
        return all(_plain(r.cells[index]).strip() in BLANK for r in self.rows)

    def steps(self) -> list[str]:
        """The shrink order with all-blank columns first."""
        names = [c.header for c in self.columns]
        listed = [h for h in self.shrink if h in names]
        empty = [h for h in listed if self.blank(names.index(h))]
        return empty + [h for h in listed if h not in empty]

    def layout(self, width: int) -> _Layout:
        """The columns kept, dropped and the cells moved to fit ``width`` (best effort
        below the narrowest layout the shrink order allows)."""
        layout = _Layout(self)
        for header in self.steps():
            if layout.width() <= width:
                break
            index = next(i for i, c in enumerate(self.columns) if c.header == header)
            if self.columns[index].kind not in ("id", "path"):
                layout.dropped.append(header)
                continue
            while layout.width() > width and layout.move_widest(index):
                pass
        return layout

    # --- drawing --------------------------------------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.title is not None:
            yield self.title if isinstance(self.title, Text) else Text(self.title, style="bold")
        if options.is_terminal:
            yield from self.layout(options.max_width).render(options.max_width)
        else:
            yield from self._plain_lines()
        yield from self.caption

    def _plain_lines(self) -> Iterable[Text]:
        widths = [
            max([cell_len(c.header)] + [cell_len(_plain(r.cells[i])) for r in self.rows])
            for i, c in enumerate(self.columns)
        ]
        yield _line([Text(c.header) for c in self.columns], widths, self.columns)
        for r in self.rows:
            cells = [_renderable(c) for c in r.cells]
            yield _line(cells, widths, self.columns)


def _line(cells: list[Text], widths: list[int], columns: list[Column]) -> Text:
    out = Text(no_wrap=True, overflow="ignore", end="\n")
    for i, (cell, width, column) in enumerate(zip(cells, widths, columns, strict=True)):
        pad = " " * (width - cell.cell_len)
        last = i == len(cells) - 1
        if column.kind == "num":
            out.append(pad)
            out.append_text(cell)
        else:
            out.append_text(cell)
            if not last:
                out.append(pad)
        if not last:
            out.append(" " * GAP)
    out.rstrip()
    return out


@dataclass
class _Layout:
    table: FitTable
    dropped: list[str] = field(default_factory=list)
    #: ``(row, column) -> n``: the cells shown as a numbered note under the table.
    moved: dict[tuple[int, int], int] = field(default_factory=dict)

    def kept(self) -> list[tuple[int, Column]]:
        return [(i, c) for i, c in enumerate(self.table.columns) if c.header not in self.dropped]

    def movable(self, row: int, index: int) -> bool:
        cell = self.table.rows[row].cells[index]
        if isinstance(cell, Text) or (row, index) in self.moved:
            return False
        value = _plain(cell)
        return value.strip() not in BLANK and cell_len(self.label(row, index)) < cell_len(value)

    def move_widest(self, index: int) -> bool:
        """Move the column's widest cell under the table; False when none is left."""
        rows = [r for r in range(len(self.table.rows)) if self.movable(r, index)]
        if not rows:
            return False
        widest = max(rows, key=lambda r: (cell_len(_plain(self.table.rows[r].cells[index])), -r))
        self.moved[(widest, index)] = 0
        for n, key in enumerate(sorted(self.moved), start=1):  # numbered in table order
            self.moved[key] = n
        return True

    def label(self, row: int, index: int) -> str:
        """What a moved cell leaves in the table: ``name [n]`` for a path, ``[n]`` else."""
        cell = self.table.rows[row].cells[index]
        assert not isinstance(cell, Text)
        short = _short(cell, self.table.columns[index].kind)
        n = self.moved.get((row, index), len(self.moved) + 1)
        return f"{short} [{n}]" if short else f"[{n}]"

    def cell(self, row: int, index: int) -> Cell:
        if (row, index) in self.moved:
            return self.label(row, index)
        return self.table.rows[row].cells[index]

    def column_width(self, index: int, column: Column) -> int:
        header = max(cell_len(word) for word in column.header.split() or [""])
        cells = [cell_len(_plain(self.cell(r, index))) for r in range(len(self.table.rows))]
        natural = max([header, *cells])
        if column.kind == "wrap":
            return max(header, min(natural, WRAP_MIN))
        return natural

    def width(self) -> int:
        kept = self.kept()
        return sum(self.column_width(i, c) for i, c in kept) + GAP * (len(kept) - 1)

    def widths(self, width: int) -> dict[int, int]:
        """Each kept column's width: what ``layout`` fitted, then wider where a header
        would wrap, while the table stays within ``width``."""
        kept = self.kept()
        widths = {i: self.column_width(i, c) for i, c in kept}
        spare = width - self.width()
        for i, c in kept:
            grow = min(max(0, cell_len(c.header) - widths[i]), max(0, spare))
            widths[i] += grow
            spare -= grow
        return widths

    def render(self, width: int) -> Iterable[RenderableType]:
        table = Table(
            box=BOX,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            header_style="bold",
            expand=False,
        )
        kept = self.kept()
        widths = self.widths(width)
        for i, c in kept:
            wraps = c.kind == "wrap"
            table.add_column(
                Text(c.header, no_wrap=False, overflow="fold"),  # a header may wrap at spaces
                justify="right" if c.kind == "num" else "left",
                style=c.style,
                no_wrap=not wraps,
                overflow="fold",
                width=None if wraps else widths[i],
            )
        for n, r in enumerate(self.table.rows):
            cells = [_renderable(self.cell(n, i)) for i, _ in kept]
            table.add_row(*cells, end_section=r.end_section)
        yield table
        names = [c.header for c in self.table.columns]
        hidden = [h for h in self.dropped if not self.table.blank(names.index(h))]
        if hidden:  # an empty column is not worth a mention
            yield Text(f"Not shown at {width} columns: {', '.join(hidden)}.", style="dim")
        for (row, index), n in sorted(self.moved.items(), key=lambda item: item[1]):
            value = _plain(self.table.rows[row].cells[index])
            yield Text(f"[{n}] {value}", no_wrap=True, overflow="ignore")


def _renderable(cell: Cell) -> Text:
    if isinstance(cell, Long):
        return Text(cell.value, style=cell.style)
    return cell if isinstance(cell, Text) else Text(cell)


def soft(text: str, style: str = "") -> Text:
    """A line that is never wrapped or cut (a path, an id): the terminal wraps it."""
    return Text(text, style=style, no_wrap=True, overflow="ignore")
