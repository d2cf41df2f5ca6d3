"""PNG figures drawn from the report's tables (never from the raw cells), with the Agg backend.

Every figure has a solid white background and black text, so it reads the same in a dark or light
viewer, and a fixed size in inches saved at ``DPI`` (no tight bounding box: the pixel size is known).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.reporting.model import Cell, Missing, Stat, Table
from scaledet.files import atomic_write_bytes

DPI = 150
SIZES = {"scaling": (8.0, 4.5), "per_dataset_scaling": (12.0, 10.0), "bars": (10.0, 4.5),
         "shots": (6.4, 4.5), "table": (10.0, 4.5)}  # fmt: skip
PANEL_COLUMNS = 4  # Figure 4 style panels per row (fewer when fewer datasets)
PANEL_SIZE = (3.0, 2.4)  # inches per panel
STYLE = {"figure.facecolor": "white", "axes.facecolor": "white", "text.color": "black"}
AVERAGE_LABELS = {"mAP": "over datasets", "mAP_C": "over classes", "mAP_unseen": "over unseen classes"}


def value(cell: Cell) -> float:
    """The plotted value of a cell: its mean, NaN when missing (drawn as a gap)."""
    return cell.mean if isinstance(cell, Stat) else math.nan


def error(cell: Cell) -> float:
    return cell.std if isinstance(cell, Stat) else 0.0


def _figure(kind: str, size: tuple[float, float] | None = None) -> Figure:
    fig = Figure(figsize=size or SIZES[kind], dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Axes) -> None:
    ax.set_facecolor("white")
    ax.grid(True, color="0.85", linewidth=0.6)
    ax.tick_params(colors="black", labelsize=7)
    for spine in ax.spines.values():
        spine.set_color("black")


def _tick_labels(table: Table) -> list[str]:
    """Tick labels ``n: name+name``, the number of upstream datasets then their names, one per line."""
    return [row.label.replace("+", "+\n") for row in table.rows]


def scaling_figure(table: Table) -> Figure:
    """Figure 3 style: the three averages vs the number of upstream datasets, points annotated."""
    fig = _figure("scaling")
    ax = fig.add_subplot()
    xs = list(range(1, len(table.rows) + 1))
    for column, label in AVERAGE_LABELS.items():
        ys = [value(table.cell(row.label, column)) for row in table.rows]
        (line,) = ax.plot(xs, ys, marker="o", label=f"mAP {label}")
        for x, y in zip(xs, ys, strict=True):
            if not math.isnan(y):
                ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(8, -3),
                            fontsize=7, color=line.get_color())  # fmt: skip
    _style(ax)
    ax.set_xticks(xs, _tick_labels(table))
    ax.margins(x=0.15)
    ax.set_xlabel("upstream datasets (1 … K)", fontsize=8)
    ax.set_ylabel("AP x100", fontsize=8)
    ax.set_title(table.title, fontsize=9)
    ax.legend(fontsize=7, facecolor="white", edgecolor="black")
    fig.subplots_adjust(bottom=0.25)
    return fig


def per_dataset_scaling_figure(table: Table, datasets: tuple[str, ...]) -> Figure:
    """Figure 4 style: one small panel per downstream dataset present, AP vs number of upstream datasets; the
    grid is sized for them (two datasets: one row of two panels; ODinW-35: nine rows of four)."""
    cols = max(1, min(PANEL_COLUMNS, len(datasets)))
    rows = max(1, math.ceil(len(datasets) / cols))
    fig = _figure("per_dataset_scaling", (PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows + 0.8))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    xs = list(range(1, len(table.rows) + 1))
    for ax, dataset in zip(axes, datasets, strict=False):
        ax.plot(xs, [value(table.cell(row.label, dataset)) for row in table.rows], marker="o")
        _style(ax)
        ax.set_xticks(xs, [str(len(row.upstream.split("+"))) for row in table.rows])
        ax.set_title(dataset, fontsize=8)
    for ax in axes[len(datasets):]:
        ax.set_axis_off()
    fig.suptitle(f"{table.title}: AP per dataset vs number of upstream datasets", fontsize=9)
    fig.subplots_adjust(hspace=0.5, wspace=0.3)
    return fig


def bars_figure(direct: Table, finetune: Table, label: str) -> Figure:
    """Per-dataset bars of fine-tune vs direct AP for row ``label`` (present in both tables)."""
    fig = _figure("bars")
    ax = fig.add_subplot()
    datasets = [c for c in direct.columns if c != "mean"]
    xs = list(range(len(datasets)))
    for offset, (name, table) in zip((-0.2, 0.2), (("direct", direct), ("fine-tune", finetune)), strict=True):
        cells = [table.cell(label, d) for d in datasets]
        ax.bar([x + offset for x in xs], [value(c) for c in cells], width=0.4, label=name,
               yerr=[error(c) for c in cells], capsize=2)  # fmt: skip
    _style(ax)
    ax.set_xticks(xs, datasets, rotation=45, ha="right")
    ax.set_ylabel("AP x100", fontsize=8)
    ax.set_title(f"{label}: fine-tune vs direct transfer per dataset", fontsize=9)
    ax.legend(fontsize=7, facecolor="white", edgecolor="black")
    fig.subplots_adjust(bottom=0.35)
    return fig


def table_figure(table: Table) -> Figure:
    """A per-dataset table as a chart (Table D as bars): one group per dataset column (the mean last), one bar
    per row, published rows hatched; error bars over seeds. Wide enough for ODinW-35's columns."""
    columns = list(table.columns)
    fig = _figure("table", (max(SIZES["table"][0], 0.45 * len(columns) * max(1, len(table.rows)) ** 0.5 + 2),
                            SIZES["table"][1]))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(table.rows))
    for index, row in enumerate(table.rows):
        cells = [table.cell(row.label, column) for column in columns]
        xs = [x - 0.4 + width * (index + 0.5) for x in range(len(columns))]
        ax.bar(xs, [value(c) for c in cells], width=width, label=row.label, yerr=[error(c) for c in cells],
               capsize=1.5, hatch="//" if row.published else None, edgecolor="black", linewidth=0.3)
    _style(ax)
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right")
    ax.set_ylabel("AP x100", fontsize=8)
    ax.set_title(table.title, fontsize=9)
    ax.legend(fontsize=6, facecolor="white", edgecolor="black", ncols=2)
    fig.subplots_adjust(bottom=0.35)
    return fig


def transfer_curves_figure(table: Table) -> Figure:
    """GLIP's Figure 5: mean AP over datasets against the data (direct, k shots, full data; evenly spaced), one line
    per way of tuning, error bars over seeds."""
    fig = _figure("shots")
    ax = fig.add_subplot()
    xs = list(range(len(table.columns)))
    for row in table.rows:
        present = [(x, c) for x, c in zip(xs, row.cells, strict=True) if not isinstance(c, Missing)]
        ax.errorbar([x for x, _ in present], [value(c) for _, c in present], yerr=[error(c) for _, c in present],
                    marker="o", capsize=3, label=row.label)
    _style(ax)
    ax.set_xticks(xs, list(table.columns))
    ax.set_xlabel("training data", fontsize=8)
    ax.set_ylabel("mAP over datasets (AP x100)", fontsize=8)
    ax.set_title(table.title, fontsize=9)
    ax.legend(fontsize=6, facecolor="white", edgecolor="black")
    return fig


def shots_figure(table: Table) -> Figure:
    """AP (mean over datasets) vs number of shots, mean ± std over seeds, one line per row."""
    fig = _figure("shots")
    ax = fig.add_subplot()
    shots = [int(column.split("-")[0]) for column in table.columns]
    for row in table.rows:
        ax.errorbar(shots, [value(c) for c in row.cells], yerr=[error(c) for c in row.cells],
                    marker="o", capsize=3, label=row.label)  # fmt: skip
    _style(ax)
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("shots per class", fontsize=8)
    ax.set_ylabel("mAP over datasets (AP x100)", fontsize=8)
    ax.set_title(table.title, fontsize=9)
    ax.legend(fontsize=7, facecolor="white", edgecolor="black")
    return fig


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG at ``DPI`` atomically (temp file + replace)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png", facecolor="white", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
