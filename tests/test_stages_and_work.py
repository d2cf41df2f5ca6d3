"""Staged plans (pretrain first, transfer from its checkpoint), the scaledet workload's settings, few-shot subsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.catalog import datasets as registry
from harness.job import JobSpec
from harness.plan.stages import staged_plan
from harness.plan.suite_settings import PAPER_R50, suite_overrides
from harness.workloads.fewshot import sample_shots, subset
from harness.workloads.scaledet import SCALEDET
from harness.workloads.scaledet.work import settings, starting_checkpoint, upstream_order
from harness.workloads.schedule import Schedule
from scaledet.config import preset
from scaledet.data import CocoDataset
from scaledet.errors import CheckpointError, ConfigError, WeightsUnavailableError

PLAN = {"shots": (1,), "split_policy": "glip", "overrides": ()}


def _plan(modes, methods=("scaledet",), upstream=(), overrides=(), seeds=(3, 30)):
    return staged_plan(SCALEDET, "demo", ["NorthAmericaMushrooms", "Raccoon"], modes, methods, seeds,
                       **{**PLAN, "overrides": overrides}, upstream=upstream)


def test_transfer_without_checkpoint_pretrains_the_suite_upstream_first():
    pretrain, transfer = _plan(["direct", "finetune"])
    assert [(s.mode, s.dataset, s.seed) for s in pretrain] == [("pretrain", "Aquarium+Packages+Raccoon", 3)]
    assert len(transfer) == 2 * 2 * 2  # datasets x modes x seeds
    start = {"upstream": "Aquarium+Packages+Raccoon", "pretrain_job": pretrain[0].job_id}
    for spec in transfer:  # the suite's settings per mode are in the spec, hence in its job id and record
        assert dict(spec.overrides) == {**start, **suite_overrides("demo", spec.mode)}
    assert dict(pretrain[0].overrides)["model.box_batch_size_per_image"] == 128
    assert suite_overrides("demo", "direct") == {} and suite_overrides("demo", "finetune")["train.max_steps"] == 40


def test_user_overrides_win_over_suite_settings():
    pretrain, transfer = _plan(["finetune"], overrides=(("train.max_steps", 2),), seeds=(3,))
    assert dict(pretrain[0].overrides)["train.max_steps"] == 2
    assert {dict(s.overrides)["train.max_steps"] for s in transfer} == {2}
    assert dict(pretrain[0].overrides)["data.train_size"] == 320  # the rest of the demo settings stay


def test_upstream_sets_and_single_dataset_baselines():
    pretrain, transfer = _plan(["direct"], methods=("scaledet", "baseline"),
                               upstream=[["Aquarium"], ["Aquarium", "Packages"]], seeds=(3,))
    assert [(s.method, s.dataset) for s in pretrain] == [
        ("scaledet", "Aquarium"), ("scaledet", "Aquarium+Packages"), ("baseline", "Aquarium")]
    # baseline pretrains on single datasets only; each transfer cell points at its own pretrain job
    assert len(transfer) == 3 * 2
    by_job = {s.job_id: s for s in pretrain}
    for spec in transfer:
        start = by_job[dict(spec.overrides)["pretrain_job"]]
        assert start.method == spec.method and start.dataset == dict(spec.overrides)["upstream"]


def test_a_given_checkpoint_means_one_stage_and_no_pretraining():
    (only,) = _plan(["direct"], overrides=(("checkpoint", "runs/x/checkpoints/last.pt"),))
    assert {s.mode for s in only} == {"direct"} and all("pretrain_job" not in dict(s.overrides) for s in only)
    with pytest.raises(ConfigError, match="either a starting checkpoint or 'upstream' sets"):
        _plan(["direct"], overrides=(("checkpoint", "c.pt"),), upstream=[["Aquarium"]])


def test_odinw13_pretrains_as_the_paper_does_first(monkeypatch):
    """No checkpoint: ScaleDet-R on LVIS+COCO+O365+OID (the upstream suite, the paper's settings), then transfer."""
    pretrain, transfer = staged_plan(SCALEDET, "odinw13", ["Raccoon"], ["direct"], ["scaledet"], [3],
                                     **{**PLAN, "split_policy": "test"})
    (job,) = pretrain
    assert (job.suite, job.dataset, job.split_policy) == ("upstream", "coco+lvis+objects365+openimages", "glip")
    assert dict(job.overrides) == PAPER_R50.overrides() and job.override("text_encoder") == "clip"
    (cell,) = transfer
    assert (cell.suite, cell.split_policy) == ("odinw13", "test")
    assert dict(cell.overrides) == {"pretrain_job": job.job_id, "upstream": "lvis+coco+objects365+openimages"}


def test_suites_without_upstream_need_a_checkpoint_and_names_are_checked(monkeypatch):
    monkeypatch.setitem(registry.SUITES, "bare", registry.Suite("bare", ("Raccoon",)))
    with pytest.raises(ConfigError, match="no upstream datasets of its own: transfer jobs need --checkpoint"):
        staged_plan(SCALEDET, "bare", ["Raccoon"], ["direct"], ["scaledet"], [3], **PLAN)
    with pytest.raises(ConfigError, match=r"unknown dataset of suite 'demo' 'Mushrooms'"):
        staged_plan(SCALEDET, "demo", ["Mushrooms"], ["direct"], ["scaledet"], [3], **PLAN)


def test_settings_split_config_keys_from_work_settings_and_reject_typos():
    spec = JobSpec("demo", "Raccoon", "finetune", "scaledet", 3,
                   overrides={"train.max_steps": 7, "data.scale_range": (1, 1), "upstream": "A+B", "device": "cpu"})
    work, config = settings(spec)
    assert work == {"upstream": "A+B", "device": "cpu"}
    assert sorted(config) == ["data.scale_range=[1, 1]", "train.max_steps=7"]
    bad = JobSpec("demo", "Raccoon", "direct", "scaledet", 3, overrides={"pretrain_jobs": "x"})
    with pytest.raises(ConfigError, match=r"'pretrain_jobs' \(did you mean 'pretrain_job'\?\)"):
        settings(bad)


def test_starting_checkpoint_resolution(tmp_path: Path):
    run_dir = tmp_path / "runs" / "abc"
    with pytest.raises(CheckpointError, match="pretrain job p1 has no checkpoint"):
        starting_checkpoint({"pretrain_job": "p1"}, run_dir)
    (tmp_path / "runs" / "p1" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "p1" / "checkpoints" / "last.pt").write_bytes(b"x")
    assert starting_checkpoint({"pretrain_job": "p1"}, run_dir) == tmp_path / "runs/p1/checkpoints/last.pt"
    assert starting_checkpoint({"checkpoint": str(tmp_path / "runs/p1/checkpoints")}, run_dir).name == "last.pt"
    with pytest.raises(CheckpointError, match="does not exist"):
        starting_checkpoint({"checkpoint": str(tmp_path / "nope.pt")}, run_dir)
    with pytest.raises(WeightsUnavailableError, match="pass --checkpoint PATH"):
        starting_checkpoint({"pretrained": "scaledet-r50"}, run_dir)
    with pytest.raises(ConfigError, match="needs a starting checkpoint"):
        starting_checkpoint({}, run_dir)


def test_upstream_order_follows_the_suite_not_the_alphabet():
    assert upstream_order("upstream", ["openimages", "coco", "lvis"]) == ["lvis", "coco", "openimages"]
    assert upstream_order("demo", ["Raccoon", "Aquarium"]) == ["Aquarium", "Raccoon"]


def test_default_finetune_schedule_is_twelve_epochs():
    cfg = Schedule().apply(preset("scaledet"), train_images=20)  # batch 8 -> 3 steps an epoch
    assert (cfg.train.max_steps, cfg.train.lr_steps, cfg.train.checkpoint_every) == (36, (24, 33), 3)


def test_explicit_steps_win_over_the_epoch_schedule_everywhere():
    spec = JobSpec("demo", "Raccoon", "finetune", "scaledet", 3, overrides={"train.max_steps": 40})
    schedule = Schedule.of(spec)
    assert schedule == Schedule(steps=40)
    assert schedule.apply(preset("scaledet"), train_images=20) == preset("scaledet")  # the overrides set the steps
    assert schedule.images_seen(train_images=20, batch=4) == 160
    assert Schedule.of(JobSpec("demo", "Raccoon", "finetune", "scaledet", 3)).images_seen(20, 4) == 12 * 20


def _toy_dataset() -> CocoDataset:
    # image id -> category ids of its boxes (class 1 is common, class 2 rare)
    boxes = {1: [1, 1], 2: [1], 3: [2], 4: [1, 2], 5: [1], 6: [1], 7: [2], 8: []}
    images = tuple({"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10} for i in boxes)
    anns = {i: tuple({"id": 10 * i + k, "image_id": i, "category_id": c, "bbox": [0, 0, 1, 1]}
                     for k, c in enumerate(cats)) for i, cats in boxes.items()}
    source = {"images": list(images), "annotations": [a for v in anns.values() for a in v],
              "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    return CocoDataset("toy", Path("."), images, (1, 2), ("a", "b"), anns, source)


def test_fewshot_subsets_cover_k_shots_and_depend_on_the_seed():
    dataset = _toy_dataset()
    subsets = {seed: sample_shots(dataset, 2, seed) for seed in (3, 30, 300)}
    for ids in subsets.values():
        counts = {1: 0, 2: 0}
        for i in ids:
            for ann in dataset.annotations[i]:
                counts[ann["category_id"]] += 1
        assert counts[1] >= 2 and counts[2] >= 2
        assert 8 not in ids  # an image with no boxes brings no class
    assert len({tuple(ids) for ids in subsets.values()}) > 1  # the seed changes the subset
    assert sample_shots(dataset, 2, 3) == subsets[3]  # and the same seed gives the same one
    small = subset(dataset, subsets[3])
    assert {img["id"] for img in small.images} == set(subsets[3])
    assert {a["image_id"] for a in small.source["annotations"]} <= set(subsets[3])


def test_fine_tuning_defaults_to_the_hard_label_loss_in_every_suite():
    for suite in ("odinw13", "demo"):
        for mode in ("finetune", "fewshot"):
            assert suite_overrides(suite, mode)["model.soft_weight"] == 0.0
        assert "model.soft_weight" not in suite_overrides(suite, "direct")
        assert "model.soft_weight" not in suite_overrides(suite, "pretrain")
    (only,) = staged_plan(SCALEDET, "odinw13", ["Raccoon"], ["finetune"], ["scaledet"], [3], shots=(), split_policy="glip",
                          overrides=(("checkpoint", "c.pt"), ("model.soft_weight", 10.0)))
    assert dict(only[0].overrides)["model.soft_weight"] == 10.0  # the user's choice wins


def test_the_demo_is_scored_on_test_splits_by_default():
    from harness.catalog.datasets import get_suite

    assert get_suite("demo").split_policy == "test" and get_suite("odinw13").split_policy == "glip"


def test_report_unseen_sets_are_per_dataset():
    from harness.reporting.render import default_unseen_rule

    rule = default_unseen_rule("demo", ("NorthAmericaMushrooms", "Raccoon"))
    # raccoon is seen upstream; the mushroom classes are not, and belong to Mushrooms only
    assert rule.classes(("Aquarium", "Packages", "Raccoon")) == {
        "NorthAmericaMushrooms": frozenset({"CoW", "chanterelle"}), "Raccoon": frozenset()}


def test_a_cell_in_two_sweeps_is_reported_once(tmp_path):
    from harness.reporting.cells import load_cells
    from harness.run.results import ResultRecord, write_record

    spec = JobSpec("demo", "Raccoon", "direct", "scaledet", 3, overrides={"upstream": "Aquarium"})
    for sweep, finished in (("main", "2026-11-25T10:00:00"), ("scaling", "2026-11-25T11:00:00")):
        write_record(tmp_path, ResultRecord(sweep=sweep, job_id=spec.job_id, spec=spec.to_dict(), status="done",
                                            metrics={"AP": 0.25}, per_class_ap={"raccoon": 0.25},
                                            finished_at=finished))
    cells = load_cells(tmp_path, "demo")
    assert len(cells) == 1 and cells.iloc[0]["ap"] == pytest.approx(25.0)  # one cell, not two "seeds"


def test_a_misspelled_recipe_choice_fails_before_submission_naming_the_job_and_the_key():
    """train.optimizer and data.augmentation are names the engine must know: a sweep with a typo stops at
    check_specs (before anything is submitted), not hours later when the job starts training."""
    spec = JobSpec("upstream", "coco", "pretrain", "baseline", 3, overrides={"train.optimizer": "sdg"})
    with pytest.raises(ConfigError, match=rf"job {spec.job_id} \(pretrain coco\): train.optimizer is 'sdg'; "
                                          "expected one of adam, sgd"):
        SCALEDET.check_specs([spec])
    bad_augmentation = JobSpec("upstream", "coco", "pretrain", "baseline", 3, overrides={"data.augmentation": "LSJ"})
    with pytest.raises(ConfigError, match="data.augmentation is 'LSJ'; expected one of lsj, standard"):
        SCALEDET.check_specs([bad_augmentation])
    SCALEDET.check_specs([JobSpec("upstream", "coco", "pretrain", "baseline", 3, overrides={
        "train.optimizer": "sgd", "data.augmentation": "standard"})])  # Table 3's recipe passes
