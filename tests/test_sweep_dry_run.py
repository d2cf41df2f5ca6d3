"""`harness sweep FILE... --dry-run`, multi-document sweep files, and harness.workloads.scaledet.budget's estimates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.job import JobSpec
from harness.plan.sweepfile import load_sweep_file, load_sweep_files
from harness.workloads.scaledet import budget
from scaledet.errors import ConfigError

TABLE1 = Path(__file__).resolve().parents[1] / "benchmarks" / "scaledet_table1.yaml"
TOY = """\
# two toy sweeps
sweep: first
suite: demo
datasets: [A, B]
modes: [direct]
methods: [scaledet]
seeds: [3]
overrides: {{toy.steps: 1}}
workload: toy
---
# the second
sweep: second
suite: demo
datasets: [A]
modes: [direct]
methods: [scaledet]
{seeds}
overrides: {{toy.steps: 1}}
workload: toy
"""


def test_dry_run_of_table1_lists_every_cell_and_the_total_budget(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(TABLE1), "--dry-run"]) == 0
    out = capsys.readouterr().out
    sweeps = load_sweep_files(TABLE1)
    assert len(sweeps) == 7
    expected = 0.0
    for number, sweep in enumerate(sweeps, start=1):
        assert f"document {number}/7: sweep {sweep.sweep} " in out
        for spec in sweep.plan():
            assert re.search(rf"pretrain +{spec.method} +{re.escape(spec.dataset)} .* {spec.job_id} ", out)
            overrides = dict(spec.overrides)
            expected += budget.pretrain_hours(overrides["train.max_steps"], overrides["data.batch_size"],
                                              overrides["model.backbone"])
    total = float(re.search(r"^total: 7 sweep\(s\), 7 cell\(s\).*, ([\d,.]+) GPU-hours", out, re.MULTILINE)[1].replace(",", ""))
    assert total == pytest.approx(expected, abs=0.05)
    headers = [float(h.replace(",", "")) for h in re.findall(r"= ([\d,.]+) GPU-hours", TABLE1.read_text())]
    assert len(headers) == 7 and total == pytest.approx(sum(headers), abs=0.4)  # headers rounded to 0.1
    assert f"r50: {budget.RATES['r50'].images_per_second:.2f} images/s/GPU ({budget.RATES['r50'].source})" in out
    assert "n/a" not in out
    assert list(tmp_path.iterdir()) == []  # no results/, runs/ or reports/


def test_dry_run_shows_existing_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "toy.yaml"
    path.write_text(TOY.format(seeds="seeds: [3]"))
    assert main(["sweep", str(path), "--results-root", "r", "--runs-root", "w", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"{path}, document 1/2:" in out and f"{path}, document 2/2:" in out  # both documents ran, in order
    assert out.index("sweep first:") < out.index("sweep second:")
    assert len(list((tmp_path / "r" / "first").glob("*.json"))) == 2
    assert len(list((tmp_path / "r" / "second").glob("*.json"))) == 1
    assert main(["sweep", str(path), "--dry-run", "--results-root", "r"]) == 0
    out = capsys.readouterr().out
    assert out.count(" done ") == 3 and "n/a (toy workload: CPU only)" in out  # A is one cell in both
    assert "total: 2 sweep(s), 2 cell(s)" in out and "n/a GPU-hours (no cell has an estimate)" in out


def test_multi_document_errors_name_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "two.yaml"
    path.write_text(TOY.format(seeds="seed: [3]"))  # line 17, in the second document
    with pytest.raises(ConfigError, match=rf"{path}:17: unknown sweep key 'seed' \(did you mean 'seeds'\?\)"):
        load_sweep_files(path)
    assert main(["sweep", str(path), "--dry-run"]) == 1
    assert f"harness sweep: error: {path}:17: unknown sweep key 'seed'" in capsys.readouterr().err
    path.write_text(TOY.format(seeds=""))
    with pytest.raises(ConfigError, match=rf"{path}:12 \(document 2\): missing required key 'seeds'"):
        load_sweep_files(path)
    path.write_text(TOY.format(seeds="seeds: [3]") + "---\n")  # a trailing empty document is ignored
    assert [s.sweep for s in load_sweep_files(path)] == ["first", "second"]
    with pytest.raises(ConfigError, match=rf"{path}: holds 2 sweep documents \(starting at lines 2, 12\).*load_sweep_files"):
        load_sweep_file(path)
    path.write_text(TOY.format(seeds="seeds: [3]").split("---")[0] + "---\n- not a mapping\n")
    with pytest.raises(ConfigError, match=rf"{path}:11 \(document 2\): expected a mapping"):
        load_sweep_files(path)
    single = tmp_path / "one.yaml"
    single.write_text(TOY.format(seeds="seeds: [3]").split("---")[0])
    assert load_sweep_file(single) == load_sweep_files(single)[0]


def test_unknown_backbone_gives_na(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "vit.yaml"
    path.write_text("suite: upstream\ndatasets: [coco]\nmodes: [pretrain]\nmethods: [scaledet]\nseeds: [3]\n"
                    "overrides: {model.backbone: vit-h, train.max_steps: 10}\n")
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "n/a (no rate for backbone vit-h)" in out and "n/a GPU-hours" in out
    assert list(tmp_path.iterdir()) == [path]
    transfer = JobSpec("odinw13", "Aquarium", "direct", "scaledet", 3, overrides={"checkpoint": "x.pt"})
    assert budget.estimate_cell(transfer) == budget.Estimate(
        None, "n/a (backbone of the starting checkpoint unknown: set model.backbone)")


def test_transfer_estimates_by_hand():
    rate = budget.RATES["r50"].images_per_second
    direct = JobSpec("odinw13", "EgoHands", "direct", "scaledet", 3, overrides={"model.backbone": "r50"})
    assert budget.estimate_cell(direct).hours == pytest.approx(480 / rate / 3600)  # mini_val counted as valid
    finetune = JobSpec("odinw13", "Aquarium", "finetune", "scaledet", 3, overrides={"model.backbone": "r50"})
    assert budget.estimate_cell(finetune).hours == pytest.approx((12 * 448 + 127) / rate / 3600)
    steps = JobSpec("odinw13", "Aquarium", "fewshot", "scaledet", 3, 5,
                    overrides={"model.backbone": "r50", "train.max_steps": 100, "data.batch_size": 4})
    assert budget.estimate_cell(steps).hours == pytest.approx((100 * 4 + 127) / rate / 3600)
    shots = JobSpec("odinw13", "Aquarium", "fewshot", "scaledet", 3, 5, overrides={"model.backbone": "r50"})
    assert budget.estimate_cell(shots).hours == pytest.approx((12 * 5 * 7 + 127) / rate / 3600)  # 7 classes

