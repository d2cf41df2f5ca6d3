"""The reports' leaderboard: measured rows (ScaleDet checkpoints, external models) beside published rows, each with
its protocol and a recomputed mean; cells a model trained on marked and left out of its zero-shot mean; published
means that disagree with their own columns flagged."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import yaml
from report_fixtures import render_golden

from harness.cli import main
from harness.reporting.cells import load_cells
from harness.reporting.leaderboard import flagged_means, leaderboard_table
from harness.reporting.model import Marked, Missing, Note, Stat
from harness.reporting.published import load_published
from harness.reporting.render import suite_datasets
from harness.reporting.tables import ReportInput
from harness.run.results import iter_records

EXTERNAL = Path(__file__).parents[1] / "harness" / "data" / "published_external.yaml"


def leaderboard(results: Path, suite: str):
    cells = load_cells(results, suite)
    return leaderboard_table(ReportInput(suite, suite_datasets(suite, cells), cells, load_published(suite)))


def row(table, label: str):
    return next(r for r in table.rows if r.label == label)


def test_published_means_that_disagree_with_their_columns_are_flagged(tmp_path: Path) -> None:
    text = render_golden(tmp_path).read_text(encoding="utf-8")
    assert "## Leaderboard: zero-shot (direct) transfer, measured and published" in text
    data = yaml.safe_load(EXTERNAL.read_text())["odinw13"]
    recomputed = statistics.fmean(data["GroundingDINO-T"]["ap"])
    assert abs(recomputed - 50.65) < 0.01  # mmdetection prints 51.4 for this column
    assert f"51.4 ≠ {recomputed:.2f}" in text
    table = leaderboard(Path(__file__).parent / "golden" / "store", "odinw13")
    flagged = flagged_means(table)
    assert "GroundingDINO-T (published)" in flagged and "GLIP-T(C) (published)" not in flagged
    columns = table.columns
    glip = row(table, "GLIP-T(C) (published)")
    assert glip.cells[columns.index("mean")].mean == statistics.fmean(data["GLIP-T(C)"]["ap"])
    assert isinstance(glip.cells[columns.index("protocol")], Note)
    assert "mmdetection" in glip.cells[columns.index("protocol")].text()


def test_a_model_trained_on_odinw_is_marked_everywhere_and_has_no_zero_shot_mean() -> None:
    table = leaderboard(Path(__file__).parent / "golden" / "store", "odinw13")
    base = row(table, "GroundingDINO-B (published)")
    values = base.cells[:13]
    assert all(isinstance(c, Marked) and c.mark == "†" for c in values)
    assert isinstance(base.cells[table.columns.index("zero-shot mean")], Missing)
    assert any(note.startswith("† GroundingDINO-B (published):") and "ODinW-35" in note for note in table.footnotes)
    tiny = row(table, "GroundingDINO-T (published)")
    assert not any(isinstance(c, Marked) for c in tiny.cells[:13])
    assert tiny.cells[table.columns.index("zero-shot mean")] == tiny.cells[table.columns.index("mean")]
    # rows are ranked by their recomputed mean
    means = [r.cells[table.columns.index("mean")] for r in table.rows]
    known = [m.mean for m in means if isinstance(m, Stat)]
    assert known == sorted(known, reverse=True)


def test_scaledet_and_external_measured_rows_with_leakage_marks(demo, tiny_models, tmp_path: Path) -> None:
    """The demo's ScaleDet records (pretrained on Aquarium+Packages+Raccoon) and a tiny external model's records in
    one store: Raccoon is marked for ScaleDet (its upstream), the external model's undeclared data is '?'."""
    results = tmp_path / "results"
    shutil.copytree(demo.results, results)
    for model in ("grounding-dino", "owlv2"):
        code = main(["run", "--suite", "demo", "--model", f"hf:{tiny_models[model]}", "--results-root", str(results),
                     "--runs-root", str(tmp_path / "runs"), "--no-report", "--set", "workers=0"])
        assert code == 0
    assert sum(r.spec["method"] == "hf" for r in iter_records(results)) == 4
    out = tmp_path / "report"
    assert main(["report", "--suite", "demo", "--results-root", str(results), "--out", str(out)]) == 0
    text = (out / "README.md").read_text(encoding="utf-8")
    table = leaderboard(results, "demo")
    assert table.columns[:2] == ("NorthAmericaMushrooms", "Raccoon")
    scaledet = next(r for r in table.rows if r.label.startswith("scaledet [Aquarium+Packages+Raccoon]"))
    mushrooms, raccoon = scaledet.cells[:2]
    assert isinstance(raccoon, Marked) and raccoon.mark == "†" and not isinstance(mushrooms, Marked)
    zero_shot = scaledet.cells[table.columns.index("zero-shot mean")]
    assert isinstance(zero_shot, Marked) and zero_shot.mark == " (1/2)" and zero_shot.mean == mushrooms.mean
    assert demo.cell("direct", "Raccoon").metrics["AP"] * 100 == raccoon.mean
    external = [r for r in table.rows if r.label.endswith("(transformers)")]
    assert len(external) == 2
    for entry in external:
        assert all(isinstance(c, Marked) and c.mark == "?" for c in entry.cells[:2])
        assert entry.cells[table.columns.index("protocol")].text() == "measured: split test, prompts names"
    assert any(r.label == "GroundingDINO-B (published)" for r in table.rows)  # the odinw13 block covers the demo
    assert "| scaledet [Aquarium+Packages+Raccoon]" in text and "(transformers)" in text
    assert "† scaledet [Aquarium+Packages+Raccoon]: trained on Raccoon (the record's upstream datasets): Raccoon." in text
    assert "? owlv2@" in text and "(transformers): training data not declared" in text
