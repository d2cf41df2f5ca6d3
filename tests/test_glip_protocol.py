"""`--set protocol=glip`: GLIP's fine-tune schedules (MAX_EPOCH epochs over GENERAL_COPY copies of the train split
per dataset; k-shot 200 epochs over 8/4/2/1 copies), with hand-computed step counts; the default stays 12 epochs
of one copy; explicit steps win; the budget and the dry run count the same steps."""

from __future__ import annotations

import pytest

from harness.job import JobSpec
from harness.workloads.scaledet.budget import estimate_cell
from harness.workloads.schedule import Schedule
from scaledet.config import preset
from scaledet.errors import ConfigError

GLIP = {"protocol": "glip"}


def _spec(dataset: str, mode: str = "finetune", shots: int | None = None, **overrides) -> JobSpec:
    return JobSpec("odinw35", dataset, mode, "scaledet", 3, shots, "glip", overrides)


def test_glip_full_data_schedule_is_max_epoch_over_general_copy_copies():
    aquarium = Schedule.of(_spec("Aquarium", **GLIP))  # GENERAL_COPY 16, MAX_EPOCH 12
    assert (aquarium.epochs, aquarium.copies, aquarium.protocol) == (12, 16, "glip")
    # 448 train images, 16 copies an epoch, batch 4: ceil(7168 / 4) = 1792 steps an epoch, 12 epochs
    assert aquarium.steps_per_epoch(448, 4) == 1792 and aquarium.total_steps(448, 4) == 21504
    assert aquarium.describe(448, 4) == "21,504 steps x 4 images (12 epochs of 16 x 448)"
    voc = Schedule.of(_spec("PascalVOC", **GLIP))  # GENERAL_COPY 4: 4 x 13,690 / 4 = 13,690 steps an epoch
    assert voc.total_steps(13690, 4) == 12 * 13690
    poetry = Schedule.of(_spec("openPoetryVision", **GLIP))  # GENERAL_COPY 2
    assert poetry.total_steps(10, 4) == 12 * 5
    cfg = aquarium.apply(preset("scaledet"), 19)  # the config's batch (8): ceil(16 x 19 / 8) = 38 an epoch
    assert (cfg.train.max_steps, cfg.train.checkpoint_every, cfg.train.lr_steps) == (456, 38, (304, 418))


@pytest.mark.parametrize("shots,copies", [(1, 8), (3, 4), (5, 2), (10, 1)])
def test_glip_few_shot_schedules(shots: int, copies: int):
    plan = Schedule.of(_spec("Raccoon", "fewshot", shots, **GLIP))
    assert (plan.epochs, plan.copies) == (200, copies)
    assert plan.total_steps(3, 4) == 200 * -(-copies * 3 // 4)  # 200 epochs of ceil(copies x 3 / 4) steps


def test_default_protocol_explicit_steps_and_bad_input():
    default = Schedule.of(_spec("Aquarium"))
    assert (default.epochs, default.copies, default.protocol) == (12, 1, "default")
    assert default.total_steps(448, 4) == 12 * 112
    assert Schedule.of(_spec("Raccoon", "fewshot", 1)).total_steps(3, 4) == 12  # default: 12 epochs for k-shot too
    explicit = Schedule.of(_spec("Aquarium", **GLIP, **{"train.max_steps": 40}))
    assert explicit.total_steps(448, 4) == 40 and explicit.protocol == "glip"
    assert explicit.record(448, 4) == {"protocol": "glip", "explicit_steps": True, "epochs": 12, "copies": 1,
                                       "train_images": 448, "batch": 4, "steps": 40}
    with pytest.raises(ConfigError, match="protocol glip has few-shot schedules for 1, 3, 5, 10 shots, not 2"):
        Schedule.of(_spec("Raccoon", "fewshot", 2, **GLIP))
    with pytest.raises(ConfigError, match=r"\(finetune Raccoon\): unknown protocol 'glp' \(did you mean 'glip'\?\)"):
        Schedule.of(_spec("Raccoon", protocol="glp"))


def test_the_budget_counts_glips_steps():
    spec = _spec("Aquarium", **GLIP, **{"model.backbone": "r50", "data.batch_size": 4})
    estimate = estimate_cell(spec)
    assert estimate.steps == 21504
    assert "21,504 steps x 4 images (12 epochs of 16 x 448)" in estimate.basis
