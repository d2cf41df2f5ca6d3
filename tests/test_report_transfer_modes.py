"""Reports of the transfer modes (direct, linear probing, prompt tuning, full fine-tune, full-data and k-shot) and of
ODinW-35's 35 columns: hand-computed means, what is drawn, Markdown parts of at most PART_COLUMNS columns, and the
published ODinW-35 rows of the leaderboard under the registry's names."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest
from report_fixtures import write_cell

from harness.catalog.datasets import get_suite
from harness.reporting import render_report
from harness.reporting.formats import PART_COLUMNS, column_parts
from harness.reporting.published import EXTERNAL_NAMES, load_external, load_yaml

DEMO = ("NorthAmericaMushrooms", "Raccoon")
# (mode, shots) -> AP x100 on (Mushrooms, Raccoon)
AP = {("direct", None): (10.0, 30.0), ("linear", None): (20.0, 36.0), ("prompt", None): (14.0, 40.0),
      ("finetune", None): (50.0, 34.0), ("linear-fewshot", 1): (12.0, 31.0), ("prompt-fewshot", 1): (11.0, 33.0),
      ("fewshot", 1): (16.0, 29.0)}


def _store(root: Path, cells: dict) -> Path:
    for (mode, shots), values in cells.items():
        for dataset, ap in zip(DEMO, values, strict=True):
            write_cell(root, dataset, ap / 100, mode=mode, shots=shots, upstream="Aquarium")
    return root


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}")[1].split("\n## ")[0]


def test_transfer_modes_side_by_side_with_hand_computed_means(tmp_path: Path):
    out = render_report(_store(tmp_path / "results", AP), "demo", tmp_path / "report")
    text = out.read_text()
    modes = _section(text, "Transfer modes side by side")
    order = ["direct", "linear probing", "prompt tuning", "full fine-tune", "linear probing, 1-shot",
             "prompt tuning, 1-shot", "full fine-tune, 1-shot"]
    labels = re.findall(r"^\| scaledet \[Aquarium\]: ([^|]+?)\s+\|", modes, re.MULTILINE)
    assert labels == order
    assert re.search(r"\| scaledet \[Aquarium\]: prompt tuning\s+\| 14\.0\s+\| 40\.0\s+\| 27\.0\s+\|", modes)
    curves = _section(text, "Transfer modes by amount of data")
    assert "| direct " in curves and "| 1-shot " in curves and "| full data " in curves
    # linear probing: direct's 20.0 at zero, 21.5 at 1 shot, 28.0 on full data
    assert re.search(r"\| scaledet \[Aquarium\]: linear probing\s+\| 20\.0\s+\| 21\.5\s+\| 28\.0\s+\|", curves)
    assert re.search(r"\| scaledet \[Aquarium\]: full fine-tune\s+\| 20\.0\s+\| 22\.5\s+\| 42\.0\s+\|", curves)
    for figure in ("transfer_curves", "transfer_modes"):
        assert (tmp_path / "report" / "figures" / f"{figure}.png").stat().st_size > 10_000
        assert f"figures/{figure}.png" in text


def test_without_linear_or_prompt_results_the_transfer_tables_say_so(tmp_path: Path):
    cells = {key: value for key, value in AP.items() if key[0] in ("direct", "finetune", "fewshot")}
    text = render_report(_store(tmp_path / "results", cells), "demo", tmp_path / "report").read_text()
    assert "_No results for this table._" in _section(text, "Transfer modes side by side")
    assert "Transfer modes by amount of data (GLIP's Figure 5 style): not drawn (no linear-probing or prompt-tuning " \
           "results)" in text
    assert not (tmp_path / "report" / "figures" / "transfer_curves.png").exists()


def test_column_parts():
    assert column_parts(17) == [range(17)]  # ODinW-13's widest table stays whole
    assert column_parts(36) == [range(12), range(12, 24), range(24, 36)]
    assert column_parts(39)[-1] == range(36, 39)


@pytest.fixture(scope="module")
def odinw35_report(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """An ODinW-35 store with a direct result on each of the 35 (AP x100 = 1, 2, ..., 35)."""
    root = tmp_path_factory.mktemp("odinw35")
    aps = {dataset: float(i) for i, dataset in enumerate(get_suite("odinw35").datasets, 1)}
    for dataset, ap in aps.items():
        write_cell(root / "results", dataset, ap / 100, suite="odinw35")
    return render_report(root / "results", "odinw35", root / "report"), aps


def test_odinw35_tables_come_in_parts_and_score_the_mean_over_35(odinw35_report):
    out, aps = odinw35_report
    text = out.read_text()
    widest = max(line.count("|") - 1 for line in text.splitlines() if line.startswith("|"))
    assert widest <= PART_COLUMNS + 1  # the row label and at most PART_COLUMNS value columns a line
    per_dataset = _section(text, "Per-dataset AP, direct transfer")
    assert per_dataset.count("_Part ") == 3 and "columns 25-36 of 36_" in per_dataset
    assert re.search(r"\| scaledet \[LVIS\]\s+\|.*\| 18\.0\s+\|$", per_dataset, re.MULTILINE)  # mean of 1..35 = 18
    assert statistics.fmean(aps.values()) == 18.0
    assert (out.parent / "figures" / "per_dataset_direct.png").is_file()


def test_odinw35_leaderboard_has_the_published_rows_under_the_registrys_names(odinw35_report):
    out, _ = odinw35_report
    board = _section(out.read_text(), "Leaderboard")
    external = load_external()
    assert set(external["odinw35"]["datasets"]) == set(get_suite("odinw35").datasets)
    raw = load_yaml("published_external.yaml")["odinw35"]["datasets"]
    assert set(raw) - set(get_suite("odinw35").datasets) == set(EXTERNAL_NAMES)  # every renamed one is needed
    for method in ("GLIP-T(C)", "GroundingDINO-T", "GroundingDINO-B"):
        assert f"| {method} (published)" in board
        row = external["odinw35"][method]
        mean = statistics.fmean(row["ap"])  # the leaderboard's mean over 35, beside the mean the source printed
        assert abs(mean - row["recomputed_mean"]) < 0.006
        assert re.search(rf"\| {re.escape(method)} \(published\)\s+\|.*\| {mean:.1f}\s+\|", board), method
