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
    assert len(sweeps) == 9  # Table 1's seven and Table 8a's two L_hl runs
    expected = 0.0
    for number, sweep in enumerate(sweeps, start=1):
        assert f"document {number}/9: sweep {sweep.sweep} " in out
        for spec in sweep.plan():
            overrides = dict(spec.overrides)
            batch = overrides["data.batch_size"]  # global: the 8 tasks of a job (its resources) share it
            assert re.search(rf"pretrain +{spec.method} +{re.escape(spec.dataset)} .* {spec.job_id} +- +"
                             rf"{batch} \({batch // 8} per rank on 8 ranks\) ", out)
            expected += budget.pretrain_hours(overrides["train.max_steps"], overrides["data.batch_size"],
                                              overrides["model.backbone"])
    total = float(re.search(r"^total: 9 sweep\(s\), 9 cell\(s\).*, ([\d,.]+) GPU-hours", out, re.MULTILINE)[1].replace(",", ""))
    assert total == pytest.approx(expected, abs=0.05)
    headers = [float(h.replace(",", "")) for h in re.findall(r"= ([\d,.]+) GPU-hours", TABLE1.read_text())]
    assert len(headers) == 9 and total == pytest.approx(sum(headers), abs=0.4)  # headers rounded to 0.1
    assert f"r50: {budget.RATES['r50'].images_per_second:.2f} images/s/GPU ({budget.RATES['r50'].source})" in out
    assert "n/a" not in out
    assert list(tmp_path.iterdir()) == []  # no results/, runs/ or reports/


def test_dry_run_of_every_paper_sweep_names_the_tables_with_their_gpu_hours(tmp_path, monkeypatch, capsys):
    """`harness sweep benchmarks/scaledet_sweeps/*.yaml --dry-run`: each sweep's title says which of the paper's
    tables it serves (Tables 4 and A read Table 1's and Table 2's runs), beside its GPU-hours."""
    files = sorted((TABLE1.parent / "scaledet_sweeps").glob("*.yaml"))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *map(str, files), "--dry-run"]) == 0
    out = capsys.readouterr().out
    totals = re.findall(r"^sweep (\S+): ([\d,.]+) GPU-hours \((Table .*)\)$", out, re.MULTILINE)
    sweeps = [sweep for path in files for sweep in load_sweep_files(path)]
    assert len(totals) == len(sweeps) == 27
    assert {name for name, _, _ in totals} == {sweep.sweep for sweep in sweeps}
    named = " ".join(title for _, _, title in totals)
    for table in ("Table 1", "Table 2", "Table 2 (B*)", "Table 3 (single", "Table 3 (multiple", "Table 4", "Table A",
                  "Table 7", "Table 8a", "Table 8b"):
        assert table in named, table
    assert all(float(hours.replace(",", "")) > 0 for _, hours, _ in totals)


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
    # 7 classes: at most 35 images, 5 steps of 8 an epoch (the last one partly filled: 40 images drawn)
    assert budget.estimate_cell(shots).hours == pytest.approx((12 * 5 * 8 + 127) / rate / 3600)
    assert budget.estimate_cell(shots).steps == 60



SCALED = """\
sweep: scaled
suite: demo
datasets: [Raccoon]
modes: [pretrain, finetune]
methods: [scaledet]
seeds: [3]
upstream: [[Aquarium]]
overrides: {{data.batch_size: {batch}}}
executor: slurm
resources: {{nodes: 2, ntasks_per_node: 4}}
"""


def test_dry_run_shows_the_global_batch_and_each_ranks_share(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "scaled.yaml"
    path.write_text(SCALED.format(batch=64))
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "executor slurm, 8 rank(s) per job" in out  # nodes 2 x ntasks_per_node 4
    # the fine-tune starts from the pretrain cell's checkpoint: same config, same batch
    assert re.search(r"\n1 +pretrain .* 64 \(8 per rank on 8 ranks\) ", out)
    assert re.search(r"\n2 +finetune .* 64 \(8 per rank on 8 ranks\) ", out)
    assert main(["sweep", str(path), "--dry-run", "--nodes", "1"]) == 0  # the command line's resources count
    assert "64 (16 per rank on 4 ranks)" in capsys.readouterr().out
    assert main(["sweep", str(path), "--dry-run", "--executor", "debug"]) == 0  # one in-process task
    assert "64 (64 per rank on 1 rank)" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [path]


def test_indivisible_batch_fails_before_anything_is_submitted(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("harness.run.orchestrate.submit", lambda *a, **k: pytest.fail("submitted"))
    path = tmp_path / "scaled.yaml"
    path.write_text(SCALED.format(batch=60))
    for extra in (["--dry-run"], []):
        assert main(["sweep", str(path), *extra]) == 1
        err = capsys.readouterr().err
        assert f"harness sweep: error: {path}: sweep scaled: job " in err
        assert "data.batch_size 60 is not divisible by the world size 8" in err
        assert "resources nodes 2 x ntasks_per_node 4" in err
    # `harness run`: the demo's pretrain batch (4) on 3 local tasks
    assert main(["run", "--suite", "demo", "--mode", "pretrain", "--executor", "local", "--ntasks-per-node", "3",
                 "--no-report"]) == 1
    assert "data.batch_size 4 is not divisible by the world size 3" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [path]  # no results/, runs/ or reports/


def test_rank_batches_by_hand():
    pretrain = JobSpec("demo", "Aquarium", "pretrain", "scaledet", 3, overrides={"data.batch_size": 32})
    follows = JobSpec("demo", "Raccoon", "finetune", "scaledet", 3, overrides={"pretrain_job": pretrain.job_id})
    own = JobSpec("demo", "Raccoon", "fewshot", "scaledet", 3, 1, overrides={"checkpoint": "x.pt", "data.batch_size": 8})
    unknown = JobSpec("demo", "Raccoon", "finetune", "scaledet", 3, overrides={"checkpoint": "x.pt"})
    direct = JobSpec("demo", "Raccoon", "direct", "scaledet", 3, overrides={"pretrain_job": pretrain.job_id})
    assert budget.rank_batches([pretrain, follows, own, unknown, direct], 4) == {
        pretrain.job_id: (32, 8), follows.job_id: (32, 8), own.job_id: (8, 2), unknown.job_id: None}
    with pytest.raises(ConfigError, match=rf"job {own.job_id} \(fewshot Raccoon\): data.batch_size 8 is not "
                                          r"divisible by the world size 16.*\(world size 16: 2 nodes\)"):
        budget.rank_batches([pretrain, own], 16, "2 nodes")


UPSTREAM_ENV = ("SCALEDET_LVIS_ROOT", "SCALEDET_COCO_ROOT", "SCALEDET_OBJECTS365_ROOT", "SCALEDET_OPENIMAGES_ROOT")


@pytest.fixture
def no_upstream_data(tmp_path, monkeypatch) -> Path:
    """A working directory and a data root without the upstream datasets; returns the data root."""
    monkeypatch.chdir(tmp_path)
    for name in UPSTREAM_ENV:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "data"
    monkeypatch.setenv("SCALEDET_DATA", str(root))
    return root


def test_run_dry_run_plans_the_papers_pretraining_then_the_13_finetunes(no_upstream_data, tmp_path, capsys):
    assert main(["run", "--suite", "odinw13", "--mode", "finetune", "--dry-run"]) == 0  # no data needed
    out = capsys.readouterr().out
    paper = load_sweep_file(Path(__file__).resolve().parents[1] / "benchmarks" / "scaledet_sweeps"
                            / "table1_scaledet_L+C+O365+OID.yaml").plan()[0]  # ScaleDet-R, Tables 1, 7, 8
    assert re.search(rf"\n1 +pretrain +scaledet +coco\+lvis\+objects365\+openimages .* {paper.job_id} .* 750,000 "
                     r"+2,266\.67 ", out)  # the same cell as the paper's sweep file: it runs once
    finetunes = re.findall(r"\n2 +finetune +scaledet +(\w+) +lvis\+coco\+objects365\+openimages .* 4 \(4 per rank "
                           r"on 1 rank\) +([\d,]+) ", out)
    assert len(finetunes) == 13 and dict(finetunes)["Packages"] == "60"  # 12 epochs of 19 images at 4 a step
    total = float(re.search(r"^total: 1 sweep\(s\), 14 cell\(s\).*, ([\d,.]+) GPU-hours", out, re.MULTILINE)[1]
                  .replace(",", ""))
    assert total == pytest.approx(2273.7, abs=0.05)
    assert "dry run: nothing submitted, nothing written" in out
    assert list(tmp_path.iterdir()) == [] and not no_upstream_data.exists()


def test_run_without_upstream_data_names_what_is_missing_and_submits_nothing(no_upstream_data, tmp_path,
                                                                            monkeypatch, capsys):
    monkeypatch.setattr("harness.run.orchestrate.submit", lambda *a, **k: pytest.fail("submitted"))
    coco = no_upstream_data / "coco" / "annotations"  # COCO is there; the other three are not
    coco.mkdir(parents=True)
    for split in ("train", "val"):
        (coco / f"instances_{split}2017.json").write_text("{}")
    assert main(["run", "--suite", "odinw13", "--mode", "finetune"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()  # one message
    assert line.startswith("harness run: error: upstream data for pretraining (job ")
    for name, title in (("lvis", "LVIS v1"), ("objects365", "Objects365 v2"), ("openimages", "OpenImages v6")):
        assert f"{title} ({name}): no train or val annotations in {no_upstream_data / name}" in line
        assert f"$SCALEDET_{name.upper()}_ROOT" in line
    assert "COCO 2017" not in line and "lvis_v1_train.json" in line
    assert "--checkpoint PATH" in line
    assert "sweep " not in captured.out  # stopped before the launch began
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no results/, runs/ or reports/
