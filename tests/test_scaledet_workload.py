"""The real `scaledet` workload through `harness run` on the embedded demo, at the demo's own schedules (the
README's main command, shared with CI: tests/demo_fixtures.py): every stage's records, that training learned
(the floors a broken pipeline cannot reach), that transfer starts from the pretrained weights, that a few-shot
subset changes the result, a re-run that computes nothing, and transfers from a given checkpoint."""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from report_fixtures import REAL_RECORD, real_record

from harness.catalog.datasets import get_dataset, get_suite, load_split
from harness.cli import main
from harness.run.results import iter_records, result_path
from scaledet.checkpoints import load_checkpoint
from scaledet.config import load_config
from scaledet.detector import build_detector
from scaledet.labels import LabelSpace

pytestmark = pytest.mark.slow

# Floors (COCO AP, fractions): a third or less of what the demo measures on 2 CPU cores (README, "The demo":
# fine-tuned 0.525 on Mushrooms and 0.321 on Raccoon, direct 0.307 on Raccoon), and ten times what an untrained or
# mis-wired detector scores (AP < 0.01 at random init; the 1- and 2-dataset checkpoints of the scaling sweep, which
# never saw a raccoon, score 0.001-0.009 on it). Direct transfer to Mushrooms' unseen classes is not floored: 5
# test images are too few.
FINETUNE_FLOOR = 0.10
DIRECT_SEEN_FLOOR = 0.10
SEEN_DOWNSTREAM = "Raccoon"
UPSTREAM = "Aquarium+Packages+Raccoon"


def test_every_stage_ran_and_wrote_its_records(demo):
    records = demo.records
    assert all(r.status == "done" for r in records), [(r.job_id, r.error) for r in records if r.status != "done"]
    modes = sorted(r.spec["mode"] for r in records)
    assert modes == ["direct", "direct", "finetune", "finetune", "pretrain"]
    pretrain = demo.pretrain
    assert pretrain.spec["dataset"] == UPSTREAM
    assert set(pretrain.metrics) >= {"AP", "AP/Aquarium", "AP/Packages", "AP/Raccoon"}
    assert pretrain.text_encoder == "minilm-l6-v2" and pretrain.config["model"]["fpn_channels"] == 128
    assert pretrain.metrics["steps"] == pretrain.config["train"]["max_steps"] == 120
    assert demo.checkpoint.is_file()
    for dataset in get_suite("demo").datasets:
        for mode in ("direct", "finetune"):
            record = demo.cell(mode, dataset)
            overrides = dict(tuple(p) for p in record.spec["overrides"])
            assert overrides["pretrain_job"] == pretrain.job_id and overrides["upstream"] == UPSTREAM
            names = set(get_dataset(dataset, "demo").class_names)
            assert set(record.per_class_ap) == names  # per-class AP in the target's own vocabulary
            assert record.config["work"]["start_checkpoint"] == str(demo.checkpoint)
            assert record.dataset_sha and record.label_space_fingerprint and record.split_policy == "test"
            assert record.config["world_size"] == 1 and record.executor == "debug"
        finetune = demo.cell("finetune", dataset)
        assert finetune.metrics["best_step"] in (20.0, 40.0) and finetune.metrics["valid_AP_best"] > 0
        assert (demo.runs / finetune.job_id / "selection.pt").is_file()


def test_training_learned_enough_to_pass_the_floors(demo):
    for dataset in get_suite("demo").datasets:
        finetune, direct = demo.cell("finetune", dataset), demo.cell("direct", dataset)
        assert finetune.metrics["AP"] >= FINETUNE_FLOOR, (dataset, finetune.metrics)
        assert finetune.metrics["AP"] != direct.metrics["AP"]  # fine-tuning changed the model
    assert demo.cell("direct", SEEN_DOWNSTREAM).metrics["AP"] >= DIRECT_SEEN_FLOOR
    # the pretraining itself learned its datasets
    assert demo.pretrain.metrics["AP_trained"] >= DIRECT_SEEN_FLOOR
    mean = {mode: sum(demo.cell(mode, d).metrics["AP"] for d in get_suite("demo").datasets) for mode in
            ("direct", "finetune")}
    assert mean["finetune"] > mean["direct"]


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> float:
    return float(torch.sqrt(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in keys)))


def test_finetuning_started_from_the_pretrained_weights(demo):
    """The fine-tuned weights moved from the pretrained checkpoint's and lie far closer to them than to where
    pretraining started (the same seeded initialisation and ImageNet backbone): a fine-tune that ignored its
    starting checkpoint would start from there instead."""
    pretrained = load_checkpoint(demo.checkpoint)
    cfg = load_config(pretrained["config"])
    torch.manual_seed(cfg.train.seed)
    fresh = build_detector(cfg.model, LabelSpace.from_state(pretrained["label_space"])).state_dict()
    for dataset in get_suite("demo").datasets:
        tuned = torch.load(demo.runs / demo.cell("finetune", dataset).job_id / "selection.pt",
                           weights_only=True)["state"]
        keys = [k for k, v in tuned.items() if v.is_floating_point() and k in pretrained["model"]
                and pretrained["model"][k].shape == v.shape and not torch.equal(fresh[k], pretrained["model"][k])]
        assert len(keys) > 50
        moved, from_scratch = _distance(tuned, pretrained["model"], keys), _distance(tuned, fresh, keys)
        assert 0 < moved < from_scratch / 2, (dataset, moved, from_scratch)


@pytest.fixture(scope="module")
def fewshot(demo, tmp_path_factory):
    """1-shot cells on Raccoon for two seeds, from the demo's pretrain cell, at the demo's fine-tune schedule."""
    results, runs = demo.fork(tmp_path_factory.mktemp("fewshot"), share_runs=True)
    code = main(["run", "--suite", "demo", "--datasets", SEEN_DOWNSTREAM, "--mode", "fewshot", "--shots", "1",
                 "--seeds", "3,30", "--sweep", demo.sweep, "--results-root", str(results), "--runs-root", str(runs),
                 "--no-report"])
    assert code == 0
    return {r.spec["seed"]: r for r in iter_records(results) if r.spec["mode"] == "fewshot"}


def test_a_fewshot_subset_is_saved_changes_with_the_seed_and_changes_the_result(demo, fewshot):
    assert sorted(fewshot) == [3, 30] and all(r.status == "done" for r in fewshot.values())
    train_images = len(load_split(get_dataset(SEEN_DOWNSTREAM, "demo"), "train").images)
    subsets = {seed: r.image_ids for seed, r in fewshot.items()}
    assert subsets[3] != subsets[30] and all(0 < len(ids) < train_images for ids in subsets.values())
    # the same seed, the same schedule, the same starting weights: only the training images differ
    full = demo.cell("finetune", SEEN_DOWNSTREAM)
    assert full.spec["seed"] == fewshot[3].spec["seed"] and full.image_ids == []
    assert fewshot[3].config["train"] == full.config["train"]
    assert fewshot[3].metrics["AP"] != full.metrics["AP"]
    assert fewshot[3].metrics["AP"] != fewshot[30].metrics["AP"]
    assert all(r.config["work"]["start_checkpoint"] == str(demo.checkpoint) for r in fewshot.values())


def test_a_rerun_computes_nothing_and_the_report_is_rendered(demo, capsys, monkeypatch):
    report = demo.report_dir / "README.md"
    assert report.is_file()
    text = report.read_text()
    assert f"scaledet [{UPSTREAM}]" in text and "NorthAmericaMushrooms" in text
    assert "- rendered by: `harness run --suite demo`" in text
    before = {r.job_id: r.finished_at for r in demo.records}
    monkeypatch.chdir(demo.root)
    assert main(["run", "--suite", "demo", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "stage 1/2 (pretrain): 1 cells, 0 submitted, 1 already there" in out
    assert "stage 2/2 (direct+finetune): 4 cells, 0 submitted, 4 already there" in out
    assert {r.job_id: r.finished_at for r in iter_records(demo.results)} == before


def test_a_transfer_from_a_given_checkpoint_needs_no_pretraining(demo, tmp_path: Path, capsys):
    code = main(["run", "--suite", "demo", "--datasets", "Raccoon", "--mode", "direct", "--checkpoint",
                 str(demo.checkpoint), "--results-root", str(tmp_path / "results"), "--runs-root",
                 str(tmp_path / "runs"), "--no-report"])
    assert code == 0
    assert "1 cells in 1 stage(s) (direct)" in capsys.readouterr().out
    (record,) = iter_records(tmp_path / "results")
    assert record.metrics["AP"] == demo.cell("direct", "Raccoon").metrics["AP"]  # same weights, same numbers
    assert record.per_class_ap == demo.cell("direct", "Raccoon").per_class_ap


def test_a_pretrain_cell_can_start_from_a_pretrained_model(demo, tmp_path: Path):
    """Table 2's '*' rows: a multi-dataset model trained further on one dataset. The pretrain cell starts from the
    checkpoint's weights (at lr 0 they are still the checkpoint's after a step), takes its text encoder and says so."""
    code = main(["run", "--suite", "demo", "--datasets", "Raccoon", "--mode", "pretrain", "--checkpoint",
                 str(demo.checkpoint), "--results-root", str(tmp_path / "results"), "--runs-root",
                 str(tmp_path / "runs"), "--no-report", "--set", "train.max_steps=1", "--set", "train.lr=0.0",
                 "--set", "train.warmup_steps=0"])
    assert code == 0
    (record,) = iter_records(tmp_path / "results")
    assert record.spec["dataset"] == "Raccoon" and record.status == "done"
    assert record.config["work"]["start_checkpoint"] == str(demo.checkpoint)
    assert record.config["work"]["text_encoder_from"] == "checkpoint" and record.text_encoder == demo.pretrain.text_encoder
    start = torch.load(demo.checkpoint, weights_only=True)["model"]
    after = torch.load(tmp_path / "runs" / record.job_id / "checkpoints" / "last.pt", weights_only=True)["model"]
    weights = [k for k in start if k.startswith("backbone.") and k.endswith(".weight")]
    assert weights and all(torch.equal(start[k], after[k]) for k in weights)


def test_the_report_links_figures_that_were_drawn(demo):
    links = re.findall(r"\]\(([^)]+\.png)\)", (demo.report_dir / "README.md").read_text())
    assert links
    for link in links:
        image = demo.report_dir / link
        assert image.is_file() and image.stat().st_size > 1000, image


def _keys(value):
    """The nested keys of a record (what the report code reads), leaves left out."""
    return {k: _keys(v) for k, v in value.items()} if isinstance(value, dict) else None


def test_the_report_fixtures_take_the_shape_of_a_real_record(demo):
    """Every report fixture record is built from a record the demo wrote (tests/report_fixtures.py): when the
    workload's records change shape, this fails until that file is refreshed from a new demo run's direct Raccoon
    cell, and the report tests then run on the new shape."""
    fresh, fixture = asdict(demo.cell("direct", "Raccoon")), asdict(real_record())
    for name in ("config", "metrics", "spec"):
        assert _keys(fixture[name]) == _keys(fresh[name]), f"{REAL_RECORD}: {name} is not what the workload writes"
    assert {k for k, v in fixture.items() if v is not None} == {k for k, v in fresh.items() if v is not None}
    assert (fixture["text_encoder"], fixture["split_policy"]) == (fresh["text_encoder"], fresh["split_policy"])


def test_a_finetune_only_store_gets_figures(demo, tmp_path: Path):
    """What `harness run --suite demo --mode finetune` leaves (the pretrain and fine-tune records, no direct cell):
    its report still draws Table D as a chart (before, every figure needed direct results)."""
    results = tmp_path / "results" / demo.sweep
    results.mkdir(parents=True)
    for record in demo.records:
        if record.spec["mode"] in ("pretrain", "finetune"):
            shutil.copy2(result_path(demo.results, demo.sweep, record.job_id), results)
    assert main(["report", "--suite", "demo", "--results-root", str(tmp_path / "results"),
                 "--out", str(tmp_path / "report")]) == 0
    figures = sorted(p.name for p in (tmp_path / "report").rglob("*.png"))
    assert "per_dataset_finetune.png" in figures, figures
    text = (tmp_path / "report" / "README.md").read_text()
    assert "per_dataset_finetune.png" in text
