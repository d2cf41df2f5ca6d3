"""Figures: PNG files of the expected pixel size, and plotted values read back from the artists equal
the table cells they come from."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image
from report_fixtures import golden_report, render_golden, table

from harness.reporting.figures import DPI, SIZES
from harness.reporting.model import Stat

# stem -> SIZES kind (None: sized for the datasets and rows it draws)
EXPECTED_PNGS = {"figure3_scaling": "scaling", "figure4_per_dataset": None, "bars_scaledet_lvis_coco": "bars",
                 "fewshot_shots": "shots", "per_dataset_direct": None, "per_dataset_finetune": None}  # fmt: skip


def _means(cells) -> list[float]:
    return [c.mean if isinstance(c, Stat) else math.nan for c in cells]


def test_pngs_exist_with_expected_pixel_size_and_white_background(tmp_path: Path) -> None:
    render_golden(tmp_path)
    report = golden_report()
    for stem, kind in EXPECTED_PNGS.items():
        image = Image.open(tmp_path / "figures" / f"{stem}.png")
        width, height = SIZES[kind] if kind else report.figures[stem][1].get_size_inches()
        assert image.size == (round(width * DPI), round(height * DPI)), stem
        assert image.convert("RGB").getpixel((2, 2)) == (255, 255, 255), stem
    assert sorted(p.stem for p in (tmp_path / "figures").glob("*.png")) == sorted(EXPECTED_PNGS)


def test_figure3_lines_equal_the_scaling_table() -> None:
    report = golden_report()
    scaling = table(report, "scaling")
    ax = report.figures["figure3_scaling"][1].axes[0]
    assert [line.get_label() for line in ax.lines] == [
        "mAP over datasets", "mAP over classes", "mAP over unseen classes"]
    for line, column in zip(ax.lines, ("mAP", "mAP_C", "mAP_unseen"), strict=True):
        expected = _means(scaling.cell(row.label, column) for row in scaling.rows)
        assert list(line.get_ydata()) == pytest.approx(expected)
        assert list(line.get_xdata()) == [1, 2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1: LVIS", "2: LVIS+\nCOCO"]
    annotations = [t.get_text() for t in ax.texts]
    assert scaling.cell("1: LVIS", "mAP").text() in annotations


def test_figure4_one_panel_per_dataset_equal_to_the_table() -> None:
    report = golden_report()
    scaling = table(report, "scaling")
    axes = [ax for ax in report.figures["figure4_per_dataset"][1].axes if ax.lines]
    assert [ax.get_title() for ax in axes] == list(report.inp.datasets)
    for ax in axes:
        expected = _means(scaling.cell(row.label, ax.get_title()) for row in scaling.rows)
        assert list(ax.lines[0].get_ydata()) == pytest.approx(expected)


def test_bar_heights_equal_the_per_dataset_tables() -> None:
    report = golden_report()
    ax = report.figures["bars_scaledet_lvis_coco"][1].axes[0]
    direct_bars, finetune_bars = ax.containers[1], ax.containers[3]  # containers: errorbar, bars, errorbar, bars
    datasets = report.inp.datasets
    for bars, name in ((direct_bars, "per_dataset_direct"), (finetune_bars, "per_dataset_finetune")):
        expected = _means(table(report, name).cell("scaledet [LVIS+COCO]", d) for d in datasets)
        assert [bar.get_height() for bar in bars] == pytest.approx(expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(datasets)


def test_shots_errorbars_equal_the_fewshot_table() -> None:
    report = golden_report()
    fewshot = table(report, "fewshot")
    ax = report.figures["fewshot_shots"][1].axes[0]
    (container,) = ax.containers
    row = fewshot.rows[0]
    assert list(container.lines[0].get_xdata()) == [1, 3]
    assert list(container.lines[0].get_ydata()) == pytest.approx(_means(row.cells))
    segments = container.lines[2][0].get_segments()  # vertical error bars: (y - std, y + std)
    for segment, cell in zip(segments, row.cells, strict=True):
        assert segment[1][1] - segment[0][1] == pytest.approx(2 * cell.std)


def test_figures_without_data_are_named_as_not_drawn(tmp_path: Path) -> None:
    from report_fixtures import write_cell

    from harness.reporting.cells import load_cells
    from harness.reporting.render import build_report, markdown
    from harness.reporting.tables import ReportInput

    write_cell(tmp_path, "A", 0.4, method="baseline")
    cells = load_cells(tmp_path, "demo")
    report = build_report(ReportInput("demo", ("A",), cells), "t")
    assert list(report.figures) == ["per_dataset_direct"]  # what direct results alone support
    text = markdown(report)
    assert "- Per-dataset AP, fine-tune transfer, beside the published rows: not drawn (no finetune results).\n" in text
    assert "- Figure 3 style: averages vs upstream datasets: not drawn (no direct results of scaledet).\n" in text
    assert "- AP vs shots: not drawn (no few-shot results).\n" in text


def test_a_finetune_only_store_draws_its_per_dataset_chart_and_panels_sized_for_its_datasets(tmp_path: Path):
    from report_fixtures import write_cell

    from harness.reporting.cells import load_cells
    from harness.reporting.render import build_report
    from harness.reporting.tables import ReportInput

    for dataset, ap in (("A", 0.4), ("B", 0.2)):  # the headline command's store: fine-tune results only
        write_cell(tmp_path, dataset, ap, mode="finetune")
    report = build_report(ReportInput("demo", ("A", "B"), load_cells(tmp_path, "demo")), "t")
    assert list(report.figures) == ["per_dataset_finetune"]
    ax = report.figures["per_dataset_finetune"][1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "mean"]
    assert [round(bar.get_height(), 6) for bar in ax.patches] == [40.0, 20.0, 30.0]  # the table's cells

    for dataset in ("A", "B"):  # direct results of 1 and 2 upstream datasets: Figure 4 for two datasets
        for upstream, ap in (("LVIS", 0.1), ("LVIS+COCO", 0.2)):
            write_cell(tmp_path, dataset, ap, upstream=upstream)
    report = build_report(ReportInput("demo", ("A", "B"), load_cells(tmp_path, "demo")), "t")
    fig4 = report.figures["figure4_per_dataset"][1]
    assert len(fig4.axes) == 2 and all(ax.lines for ax in fig4.axes)  # one row of two panels, none empty
    assert tuple(fig4.get_size_inches()) == pytest.approx((6.0, 3.2))

