"""What a transfer job takes from its starting checkpoint and what it brings of its own: the text encoder setting
(saved with the checkpoint's label space, reused unless overridden, recorded), and fine-tuning's own batch and
steps (suite settings, printed at plan time)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from engine_fixtures import tiny_config

from harness.job import JobSpec
from harness.plan.stages import staged_plan
from harness.plan.suite_settings import suite_overrides
from harness.workloads.scaledet import SCALEDET, budget
from harness.workloads.scaledet import work as workload
from harness.workloads.schedule import Schedule
from scaledet import checkpoints as ckpt
from scaledet.detector import build_detector
from scaledet.errors import ConfigError
from scaledet.labels import LabelSpace
from scaledet.text import EncoderSetting, build_text_encoder, setting_from_id


class StandIn:
    """Stands in for an encoder that needs weights we do not have offline (CLIP): the id the real one would have."""

    def __init__(self, name: str, weights: str | None) -> None:
        real = {"clip": ("ViT-B-32", "openai"), "openclip": ("ViT-H-14", "laion2b_s32b_b79k")}[name]
        self.id = f"openclip:{real[0]}:{weights or real[1]}"
        self.setting = EncoderSetting(name, weights)

    def encode(self, texts: list[str]) -> torch.Tensor:
        return torch.randn(len(texts), 8, generator=torch.Generator().manual_seed(len(texts)))


@pytest.fixture
def built(monkeypatch) -> list[tuple[str, str | None]]:
    """Every (name, weights) the workload builds an encoder from; the encoders are stand-ins."""
    calls: list[tuple[str, str | None]] = []

    def build(name: str, weights: str | None = None, device: str = "cpu") -> StandIn:
        calls.append((name, weights))
        return StandIn(name, weights)

    monkeypatch.setattr(workload, "build_text_encoder", build)
    return calls


def _checkpoint(tmp_path: Path, encoder: StandIn, keep_setting: bool = True) -> Path:
    """A real (tiny) checkpoint whose label space was embedded by ``encoder`` (without the setting: as saved
    before settings were recorded)."""
    space = workload.encode(workload.load_source("demo", "Packages", "test", False), encoder)
    cfg = tiny_config(1, 1)
    model = build_detector(cfg.model, space, load_weights=False)
    label_state = model.label_state()
    if not keep_setting:
        label_state.pop("encoder_setting")
    return ckpt.save_checkpoint({"step": 0, "model": model.state_dict(), "label_space": label_state,
                                 "config": cfg.to_dict()}, tmp_path / "start")


def test_a_transfer_from_a_clip_checkpoint_reuses_its_encoder_and_records_it(tmp_path, built):
    start = _checkpoint(tmp_path, StandIn("openclip", "/weights/vit-h-14.bin"))
    assert ckpt.load_checkpoint(start)["label_space"]["encoder_setting"] == {
        "name": "openclip", "weights": "/weights/vit-h-14.bin"}  # the setting is in the checkpoint
    built.clear()
    spec = JobSpec("demo", "Packages", "direct", "scaledet", 3, None, "test", (("checkpoint", str(start)),))
    result = workload.direct(spec, tmp_path / "runs" / spec.job_id)  # no text_encoder override: no ConfigError
    assert built == [("openclip", "/weights/vit-h-14.bin")]
    assert result["text_encoder"] == "openclip:ViT-H-14:/weights/vit-h-14.bin"
    work = result["config"]["work"]
    assert (work["text_encoder"], work["text_weights"], work["text_encoder_from"]) == (
        "openclip", "/weights/vit-h-14.bin", "checkpoint")
    assert 0.0 <= result["metrics"]["AP"] <= 1.0


def test_overrides_win_and_old_checkpoints_are_read_by_their_encoder_id(tmp_path, built):
    old = _checkpoint(tmp_path, StandIn("clip", None), keep_setting=False)
    work = {"checkpoint": str(old)}
    saved = ckpt.load_checkpoint(old)["label_space"]
    assert "encoder_setting" not in saved
    assert workload.transfer_encoder(work, saved, old) == (EncoderSetting("clip"), "checkpoint")
    moved = {**work, "text_weights": "/elsewhere/clip.pt"}  # the same weights from another place
    assert workload.transfer_encoder(moved, saved, old) == (EncoderSetting("clip", "/elsewhere/clip.pt"), "checkpoint")
    assert workload.transfer_encoder({**work, "text_encoder": "openclip"}, saved, old) == (
        EncoderSetting("openclip"), "overrides")
    local = {**saved, "encoder_id": "openclip:ViT-B-32:file:clip.pt:123"}  # weights from a file, no setting saved
    with pytest.raises(ConfigError, match="does not say how to build it: pass --set text_encoder=NAME"):
        workload.transfer_encoder(work, local, old)


def test_encoder_settings_rebuild_the_same_encoder():
    for name, weights in (("minilm", None), ("clip", None), ("openclip", None), ("openclip:ViT-L-14", "laion2b")):
        encoder = build_text_encoder(name, weights)  # nothing is loaded until it encodes
        assert encoder.setting == EncoderSetting(name, weights)
        assert encoder.setting.build().id == encoder.id
        assert setting_from_id(encoder.id).build().id == encoder.id
    space = LabelSpace.from_embeddings(["a"], torch.ones(1, 2))
    assert LabelSpace.from_state(space.to_state()).encoder_setting is None


def test_fine_tuning_has_its_own_batch_and_steps_in_odinw13():
    (transfer,) = staged_plan(SCALEDET, "odinw13", ["Packages", "PascalVOC"], ["finetune"], ["scaledet"], [3],
                              shots=(), split_policy="glip", overrides=(("pretrain_job", "p"),))
    for spec in transfer:  # GLIP's ODinW fine-tune: global batch 4 (one GPU takes all 4), lr 1e-4, no warm-up
        assert {k: spec.override(k) for k in ("data.batch_size", "train.lr", "train.warmup_steps")} == {
            "data.batch_size": 4, "train.lr": 0.0001, "train.warmup_steps": 0}
        assert budget.rank_batches([spec], 1)[spec.job_id] == (4, 4)  # not the checkpoint's (64/128)
    estimates = budget.estimate_cells(transfer)
    # Packages: 19 train images at 4 a step = 5 steps an epoch, 12 epochs (was 12 steps at the checkpoint's 128)
    assert [estimates[s.job_id].steps for s in transfer] == [60, 12 * 3423]
    assert Schedule().total_steps(19, 4) == 60 and Schedule(steps=7).total_steps(19, 4) == 7
    assert "data.batch_size" not in suite_overrides("demo", "finetune")  # the demo keeps its settings
