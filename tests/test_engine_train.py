"""Engine: schedule, exact resume, non-finite loss handling, checkpoint format, predict."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import packages, tiny_config

from scaledet import checkpoints, engine
from scaledet.config import TrainConfig
from scaledet.detector import ScaleDetRoIHeads
from scaledet.engine import TrainingError, load_detector, lr_lambda, per_rank_batch, train
from scaledet.errors import CheckpointError, ConfigError
from scaledet.inference import predict
from scaledet.labels import LabelSpace


def test_lr_schedule_hand_computed():
    f = lr_lambda(TrainConfig(warmup_steps=4, warmup_factor=0.2, lr_steps=(6, 8), gamma=0.1))
    assert [f(s) for s in (0, 2, 4, 5, 6, 7, 8, 100)] == pytest.approx([0.2, 0.6, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_batch_size_is_global_each_rank_loads_its_share():
    assert [per_rank_batch(64, 8), per_rank_batch(128, 8), per_rank_batch(8, 1)] == [8, 16, 8]
    for batch, world in ((60, 8), (4, 8), (0, 1)):
        with pytest.raises(ConfigError, match=rf"data.batch_size {batch} .*world size {world}|"
                                              rf"data.batch_size {batch} is not positive"):
            per_rank_batch(batch, world)


def test_train_refuses_an_indivisible_batch_before_anything_runs(tmp_path, monkeypatch):
    data, space = packages(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "4")  # as torchrun / SLURM would set it: 4 ranks
    monkeypatch.setattr(engine, "init_distributed", lambda device: pytest.fail("joined a process group"))
    with pytest.raises(ConfigError, match=r"data.batch_size 2 is not divisible by the world size 4"):
        train(tiny_config(1, 1), [data], space, tmp_path / "run", device="cpu")  # batch 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("detector", ["faster_rcnn", "centernet2"])
def test_resume_gives_the_same_weights(tmp_path, detector):
    data, space = packages(tmp_path)
    straight = train(tiny_config(4, 2, model__detector=detector), [data], space, tmp_path / "a", device="cpu")
    train(tiny_config(2, 2, model__detector=detector), [data], space, tmp_path / "b", device="cpu")
    resumed = train(tiny_config(4, 2, model__detector=detector), [data], space, tmp_path / "b", device="cpu")
    assert straight.step == resumed.step == 4 and len(resumed.history) == 2
    assert resumed.history[-1]["loss"] == straight.history[-1]["loss"]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert type(resumed.model).__name__ == {"faster_rcnn": "ScaleDetDetector",
                                            "centernet2": "CenterNet2Detector"}[detector]
    # finished runs resume to a no-op
    again = train(tiny_config(4, 2, model__detector=detector), [data], space, tmp_path / "b", device="cpu")
    assert again.history == []


def test_old_checkpoints_pruned(tmp_path):
    data, space = packages(tmp_path)
    train(tiny_config(3, 1, train__keep_checkpoints="2"), [data], space, tmp_path / "run", device="cpu")
    kept = sorted(p.name for p in (tmp_path / "run").glob("checkpoint_*.pt"))
    assert kept == ["checkpoint_0000002.pt", "checkpoint_0000003.pt"]
    assert checkpoints.load_checkpoint(tmp_path / "run")["step"] == 3


def test_checkpoint_format_and_label_space_mismatch(tmp_path):
    data, space = packages(tmp_path)
    result = train(tiny_config(1, 1), [data], space, tmp_path / "run", device="cpu")
    state = checkpoints.load_checkpoint(tmp_path / "run")
    assert {"step", "model", "optimizer", "scheduler", "sampler", "rng", "label_space", "config"} <= set(state)
    assert state["label_space"]["fingerprint"] == space.fingerprint and state["sampler"]["consumed"] == 2
    model = load_detector(tmp_path / "run" / "last.pt")
    assert model.label_space.names == ("package",)
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in model.state_dict().items())
    other = LabelSpace.from_embeddings(["box"], torch.randn(1, 8), "packages")
    with pytest.raises(CheckpointError, match="trained on label space .*package"):
        train(tiny_config(2, 1), [data], other, tmp_path / "run", device="cpu")
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(CheckpointError, match="trunc.pt"):
        checkpoints.load_checkpoint(tmp_path / "trunc.pt")


def test_non_finite_loss_stops_keeping_last_good_checkpoint(tmp_path, monkeypatch):
    data, space = packages(tmp_path)
    original, calls = ScaleDetRoIHeads._losses, []

    def exploding(self, *args):
        losses = original(self, *args)
        calls.append(1)
        if len(calls) >= 3:
            losses["loss_box_reg"] = losses["loss_box_reg"] * float("nan")
        return losses

    monkeypatch.setattr(ScaleDetRoIHeads, "_losses", exploding)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 3 .*checkpoint_0000002.pt"):
        train(tiny_config(5, 2), [data], space, tmp_path / "run", device="cpu")
    assert checkpoints.load_checkpoint(tmp_path / "run")["step"] == 2


def test_baseline_refuses_two_datasets(tmp_path):
    data, space = packages(tmp_path)
    cfg = tiny_config(1, 1, method="baseline", data__single_dataset="true")
    with pytest.raises(ConfigError, match="exactly one dataset, got 2"):
        train(cfg, [data, data], space, tmp_path / "run", device="cpu")


def test_predict_returns_coco_results_in_own_category_ids(tmp_path):
    data, space = packages(tmp_path)
    cfg = tiny_config(1, 1, model__score_thresh="0.0")
    model = train(cfg, [data], space, tmp_path / "run", device="cpu").model
    results = predict(model, data)
    assert results and {r["category_id"] for r in results} == {1}
    assert {r["image_id"] for r in results} <= {img["id"] for img in data.images}
    assert all(len(r["bbox"]) == 4 and r["bbox"][2] >= 0 and 0 <= r["score"] <= 1 for r in results)


def test_undecodable_training_image_stops_naming_it(tmp_path):
    import json

    from scaledet.data import load_coco
    from scaledet.errors import DataError

    _, space = packages(tmp_path)
    raw = json.loads((tmp_path / "Packages-train.json").read_text())
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    raw["images"] = [{**img, "file_name": str(broken)} for img in raw["images"]]
    (tmp_path / "broken.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match="broken.jpg"):
        # in a loader worker process: the error crosses the process boundary with its type and path
        train(tiny_config(1, 1, data__num_workers="1"), [load_coco(tmp_path / "broken.json", name="packages")],
              space, tmp_path / "run", device="cpu")


class _ThreeMaps(torch.nn.Module):
    """A user's own body: three strided conv stages (strides 8, 16, 32), as a backbone from parts would have."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=8, padding=1)
        self.down = torch.nn.ModuleList(torch.nn.Conv2d(8, 8, 3, stride=2, padding=1) for _ in range(2))

    def forward(self, x):
        maps = [self.stem(x)]
        for conv in self.down:
            maps.append(conv(maps[-1]))
        return maps


def test_the_unidet_recipe_trains_with_sgd_and_standard_augmentation(tmp_path, monkeypatch):
    """Table 3's setting by config alone: SGD with momentum and weight decay, detectron2's multi-scale resize."""
    data, space = packages(tmp_path)
    cfg = tiny_config(2, 2, train__optimizer="sgd", train__momentum="0.8", train__weight_decay="0.0001",
                      data__augmentation="standard", data__train_min_sizes="[96,128]", data__train_max_size="160")
    seen = []
    real = engine.training_transform
    monkeypatch.setattr(engine, "training_transform", lambda data_cfg: seen.append(real(data_cfg)) or seen[-1])
    result = train(cfg, [data], space, tmp_path / "run", device="cpu")
    assert result.step == 2 and type(seen[0]).__name__ == "ResizeShortestEdge" and seen[0].min_sizes == (96, 128)
    group = checkpoints.load_checkpoint(tmp_path / "run")["optimizer"]["param_groups"][0]
    assert (group["momentum"], group["weight_decay"]) == (0.8, 0.0001) and "betas" not in group  # SGD, not Adam
    with pytest.raises(ConfigError, match="train.optimizer is 'lamb'; expected one of adam, sgd"):
        train(tiny_config(1, 1, train__optimizer="lamb"), [data], space, tmp_path / "other", device="cpu")


def test_a_detector_from_parts_trains_with_your_own_optimizer(tmp_path):
    from scaledet.backbones import BodyWithFPN
    from scaledet.detector import build_detector

    data, space = packages(tmp_path)
    cfg = tiny_config(3, 2)
    made = []

    def sgd(params, train_cfg):
        made.append(torch.optim.SGD(params, lr=train_cfg.lr, momentum=0.9))
        return made[-1]

    model = build_detector(cfg.model, space, backbone=BodyWithFPN(_ThreeMaps(), [8, 8, 8], 16))
    stem_before = model.backbone.body.stem.weight.detach().clone()
    result = train(cfg, [data], space, tmp_path / "run", device="cpu", model=model, make_optimizer=sgd)
    assert result.model is model and result.step == 3 and len(made) == 1
    assert not torch.equal(stem_before, model.backbone.body.stem.weight)  # your parts are what trained
    saved = checkpoints.load_checkpoint(tmp_path / "run")["optimizer"]
    assert saved["param_groups"][0]["momentum"] == 0.9 and "momentum_buffer" in next(iter(saved["state"].values()))
    with pytest.raises(ConfigError, match="'out_channels'"):
        build_detector(cfg.model, space, backbone=_ThreeMaps())
