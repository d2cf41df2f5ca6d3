"""Table 1's grid and Table 8a, end to end: a rehearsal of benchmarks/scaledet_table1.yaml (the paper's upstream
sweep file: 7 Table 1 models and Table 8a's 2 L_hl models, real R50 detectors at toy scale on stand-ins of LVIS,
COCO, Objects365 and OpenImages in their own layouts) writes for every model a pretrain record scored on all four
upstream datasets, and the rehearsal's report has the Table 1 and Table 8a sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.run.results import iter_records

TABLE1 = Path(__file__).resolve().parents[1] / "benchmarks" / "scaledet_table1.yaml"
UPSTREAM = ("lvis", "coco", "objects365", "openimages")


@pytest.mark.slow
def test_table1_file_rehearses_into_the_grid_and_both_tables(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(TABLE1), "--rehearse", "--executor", "debug"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "rehearsal: 9 cells, 9 done, 0 failed"
    records = list(iter_records(Path("rehearsal/results")))
    assert len({r.job_id for r in records}) == 9
    for record in records:
        scored = [record.metrics[f"AP/{name}"] for name in UPSTREAM]
        assert record.metrics["AP"] == pytest.approx(sum(scored) / 4)
        trained = record.spec["dataset"].split("+")
        assert record.metrics["AP_trained"] == pytest.approx(sum(record.metrics[f"AP/{n}"] for n in trained)
                                                             / len(trained))
        assert set(record.config["scoring"]) == set(UPSTREAM)
        assert record.config["scoring"]["lvis"]["detections_per_image"] == 300
    report = Path("rehearsal/reports/upstream/README.md").read_text()
    table1 = report.split("(like Table 1)")[1].split("\n## ")[0]
    table8a = report.split("(like Table 8a)")[1].split("\n## ")[0]
    for label in ("baseline [lvis]", "baseline [openimages]", "scaledet [lvis+coco+objects365+openimages]",
                  "scaledet-hard [lvis+coco]", "scaledet [lvis+coco] (published)"):
        assert f"| {label} " in table1, label
    for label in ("L_hl [lvis+coco]", "L_hl+L_sl [lvis+coco]", "L_hl [lvis+coco+objects365+openimages]",
                  "L_hl+L_sl [lvis+coco+objects365+openimages]", "scaledet-hard [lvis+coco] (published)"):
        assert f"| {label} " in table8a, label
    assert "missing" not in table1.split("1. Upstream AP")[0]  # every model has all four and the mean
    table4 = report.split("(like Table 4)")[1].split("\n## ")[0]  # the R50 ScaleDet runs beside Detic's
    ran = "(r50, rehearsal-standin-clip-512)"  # the planned backbone; the text encoder that ran (CLIP's stand-in)
    for label in (f"scaledet [lvis+coco] {ran}", f"scaledet [lvis+coco+objects365+openimages] {ran}",
                  "Detic [lvis+coco] (published)"):
        assert f"| {label} " in table4, table4
