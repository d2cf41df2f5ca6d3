"""The report's table model: a cell is a statistic over seeds or an explicit reason why it is missing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of a value (AP points x100) over ``n`` seeds."""

    mean: float
    std: float
    n: int

    def text(self) -> str:
        """``45.3 ± 1.2`` over several seeds, ``45.3`` for one."""
        return f"{self.mean:.1f} ± {self.std:.1f}" if self.n > 1 else f"{self.mean:.1f}"

    def latex(self) -> str:
        return f"{self.mean:.1f} $\\pm$ {self.std:.1f}" if self.n > 1 else f"{self.mean:.1f}"


@dataclass(frozen=True)
class Missing:
    """A cell with no value; ``reason`` is what the report prints in its place."""

    reason: str = "missing"

    def text(self) -> str:
        return self.reason

    def latex(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Marked(Stat):
    """A value with a mark after it (``†``: trained on the dataset; ``?``: not known to be zero-shot), explained in
    the table's footnotes."""

    mark: str = ""

    def text(self) -> str:
        return super().text() + self.mark

    def latex(self) -> str:
        return super().latex() + self.mark.replace("†", "$^\\dagger$")


@dataclass(frozen=True)
class Note:
    """A text cell (e.g. a row's protocol)."""

    value: str

    def text(self) -> str:
        return self.value

    def latex(self) -> str:
        return self.value


Cell = Stat | Missing | Note


@dataclass(frozen=True)
class Row:
    """One table row: its printed label, the method/checkpoint it stands for and its cells."""

    label: str
    cells: tuple[Cell, ...]
    method: str = ""
    upstream: str = ""
    published: bool = False


@dataclass(frozen=True)
class Table:
    """A rendered-anywhere table: Markdown, CSV and LaTeX are all written from this."""

    name: str  # file stem, e.g. "per_dataset_direct"
    title: str
    columns: tuple[str, ...]  # value columns (the row-label column is ``stub``)
    rows: tuple[Row, ...]
    stub: str = "method"
    footnotes: tuple[str, ...] = ()

    def cell(self, label: str, column: str) -> Cell:
        """The cell at row ``label`` and ``column``."""
        row = next(r for r in self.rows if r.label == label)
        return row.cells[self.columns.index(column)]


def row_label(method: str, upstream: str, published: bool = False, checkpoint: str = "") -> str:
    """``GLIP-T (published)``, ``scaledet [LVIS+COCO]``, ``scaledet (ckpt.pth)`` or ``scaledet``."""
    if published:
        return f"{method} (published)"
    label = f"{method} [{upstream}]" if upstream else method
    return f"{label} ({checkpoint})" if checkpoint else label
