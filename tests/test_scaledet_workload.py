"""The real `scaledet` workload through `harness run` on the embedded demo (tiny schedules, debug executor):
pretrain -> direct + finetune + fewshot cells, their records, a re-run that computes nothing, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.catalog.datasets import get_dataset
from harness.cli import main
from harness.run.results import iter_records

TINY = ["--set", "train.max_steps=2", "--set", "train.checkpoint_every=1", "--set", "train.warmup_steps=1"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    args = ["run", "--suite", "demo", "--mode", "direct,finetune,fewshot", "--shots", "1", "--seeds", "3,30",
            "--results-root", str(root / "results"), "--runs-root", str(root / "runs"),
            "--report-dir", str(root / "report"), "--sweep", "tiny", *TINY]
    code = main(args)
    return {"root": root, "args": args, "code": code,
            "records": {r.job_id: r for r in iter_records(root / "results", "tiny")}}


@pytest.mark.slow
def test_every_stage_runs_and_writes_its_records(demo_run):
    assert demo_run["code"] == 0
    records = list(demo_run["records"].values())
    assert all(r.status == "done" for r in records), [(r.job_id, r.error) for r in records if r.status != "done"]
    by_mode: dict[str, list] = {}
    for record in records:
        by_mode.setdefault(record.spec["mode"], []).append(record)
    # 1 pretrain (first seed), then 2 datasets x 2 seeds for direct and finetune, x 1 shot for fewshot
    assert {mode: len(v) for mode, v in by_mode.items()} == {"pretrain": 1, "direct": 4, "finetune": 4, "fewshot": 4}
    (pretrain,) = by_mode["pretrain"]
    assert pretrain.spec["dataset"] == "Aquarium+Packages+Raccoon"
    assert set(pretrain.metrics) >= {"AP", "AP/Aquarium", "AP/Packages", "AP/Raccoon"}
    assert pretrain.text_encoder == "minilm-l6-v2" and pretrain.config["model"]["fpn_channels"] == 128
    checkpoint = demo_run["root"] / "runs" / pretrain.job_id / "checkpoints" / "last.pt"
    assert checkpoint.is_file()
    for record in by_mode["direct"] + by_mode["finetune"] + by_mode["fewshot"]:
        overrides = dict(tuple(p) for p in record.spec["overrides"])
        assert overrides["pretrain_job"] == pretrain.job_id and overrides["upstream"] == "Aquarium+Packages+Raccoon"
        assert 0.0 <= record.metrics["AP"] <= 1.0
        names = set(get_dataset(record.spec["dataset"], "demo").class_names)
        assert set(record.per_class_ap) == names  # per-class AP in the target's own vocabulary
        assert record.config["work"]["start_checkpoint"] == str(checkpoint)
        assert record.dataset_sha and record.label_space_fingerprint and record.split_policy == "test"  # the demo's
    for record in by_mode["finetune"]:
        assert record.metrics["best_step"] in (1.0, 2.0) and "valid_AP_best" in record.metrics
        assert (demo_run["root"] / "runs" / record.job_id / "selection.pt").is_file()


@pytest.mark.slow
def test_fewshot_subsets_are_saved_and_change_with_the_seed(demo_run):
    shots = {(r.spec["dataset"], r.spec["seed"]): r.image_ids for r in demo_run["records"].values()
             if r.spec["mode"] == "fewshot"}
    for dataset in ("NorthAmericaMushrooms", "Raccoon"):
        assert shots[(dataset, 3)] and shots[(dataset, 30)]
        assert shots[(dataset, 3)] != shots[(dataset, 30)]


@pytest.mark.slow
def test_a_rerun_computes_nothing_and_the_report_is_rendered(demo_run, capsys):
    report = demo_run["root"] / "report" / "README.md"
    assert report.is_file()
    text = report.read_text()
    assert "scaledet [Aquarium+Packages+Raccoon]" in text and "NorthAmericaMushrooms" in text
    assert "- rendered by: `harness run --suite demo --mode direct,finetune,fewshot" in text
    assert main(demo_run["args"]) == 0
    out = capsys.readouterr().out
    assert "stage 1/2 (pretrain): 1 cells, 0 submitted, 1 already there" in out
    assert "stage 2/2 (direct+finetune+fewshot): 12 cells, 0 submitted, 12 already there" in out
    assert f"report: {report}" in out


@pytest.mark.slow
def test_a_transfer_from_a_given_checkpoint_needs_no_pretraining(demo_run, tmp_path: Path, capsys):
    pretrain = next(r for r in demo_run["records"].values() if r.spec["mode"] == "pretrain")
    checkpoint = demo_run["root"] / "runs" / pretrain.job_id / "checkpoints" / "last.pt"
    code = main(["run", "--suite", "demo", "--datasets", "Raccoon", "--mode", "direct", "--checkpoint", str(checkpoint),
                 "--results-root", str(tmp_path / "results"), "--runs-root", str(tmp_path / "runs"), "--no-report"])
    assert code == 0
    assert "1 cells in 1 stage(s) (direct)" in capsys.readouterr().out
    (record,) = iter_records(tmp_path / "results")
    same = next(r for r in demo_run["records"].values()
                if r.spec["mode"] == "direct" and r.spec["dataset"] == "Raccoon" and r.spec["seed"] == 3)
    assert record.metrics["AP"] == pytest.approx(same.metrics["AP"], abs=1e-9)  # same weights, same numbers


def test_a_pretrain_cell_can_start_from_a_pretrained_model(demo_run, tmp_path: Path):
    """Table 2's '*' rows: a multi-dataset model trained further on one dataset. The pretrain cell starts from the
    checkpoint's weights (at lr 0 they are still the checkpoint's after a step), takes its text encoder and says so."""
    import torch

    pretrain = next(r for r in demo_run["records"].values() if r.spec["mode"] == "pretrain")
    checkpoint = demo_run["root"] / "runs" / pretrain.job_id / "checkpoints" / "last.pt"
    code = main(["run", "--suite", "demo", "--datasets", "Raccoon", "--mode", "pretrain", "--checkpoint",
                 str(checkpoint), "--results-root", str(tmp_path / "results"), "--runs-root", str(tmp_path / "runs"),
                 "--no-report", "--set", "train.max_steps=1", "--set", "train.lr=0.0", "--set", "train.warmup_steps=0"])
    assert code == 0
    (record,) = iter_records(tmp_path / "results")
    assert record.spec["dataset"] == "Raccoon" and record.status == "done"
    assert record.config["work"]["start_checkpoint"] == str(checkpoint)
    assert record.config["work"]["text_encoder_from"] == "checkpoint" and record.text_encoder == pretrain.text_encoder
    start = torch.load(checkpoint, weights_only=True)["model"]
    after = torch.load(tmp_path / "runs" / record.job_id / "checkpoints" / "last.pt", weights_only=True)["model"]
    weights = [k for k in start if k.startswith("backbone.") and k.endswith(".weight")]
    assert weights and all(torch.equal(start[k], after[k]) for k in weights)
