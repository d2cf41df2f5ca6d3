"""Hardening, models and configs: checkpoints that do not fit, truncated checkpoints, typos through the CLI,
text weights unavailable offline. Every failure is a documented error naming the file and what differs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from engine_fixtures import packages, tiny_config

from harness.cli import main
from scaledet import checkpoints
from scaledet.engine import load_detector, train
from scaledet.errors import CheckpointError, WeightsUnavailableError
from scaledet.labels import LabelSpace
from scaledet.text import build_text_encoder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real (tiny-backbone) run folder: one step on real Packages images, ``last.pt`` -> step 1."""
    tmp = tmp_path_factory.mktemp("run")
    data, space = packages(tmp)
    train(tiny_config(1, 1), [data], space, tmp / "run", device="cpu")
    return tmp / "run"


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, symlinks=True)
    return copy


def test_resume_on_another_label_space_names_the_file_and_the_labels(run_copy, tmp_path):
    data, space = packages(tmp_path)
    other = LabelSpace.from_embeddings(["box", "package"], torch.randn(2, 8), "packages")
    with pytest.raises(CheckpointError) as caught:
        train(tiny_config(2, 1), [data], other, run_copy, device="cpu")
    message = str(caught.value)
    assert str(run_copy / "last.pt") in message
    assert space.fingerprint in message and other.fingerprint in message
    assert "labels only in the checkpoint: none; labels only in this run: box" in message
    # same names, other embeddings (another text encoder): said as such
    same_names = LabelSpace.from_embeddings(["package"], torch.randn(1, 8), "packages", encoder_id="other-encoder")
    with pytest.raises(CheckpointError, match=r"same labels, other embeddings \(text encoder 'given' vs "
                                              r"'other-encoder'"):
        train(tiny_config(2, 1), [data], same_names, run_copy, device="cpu")


def test_resume_with_another_backbone_names_the_file_and_both_backbones(run_copy, tmp_path):
    data, space = packages(tmp_path)
    cfg = tiny_config(2, 1, model__backbone="effnet-lite0")
    with pytest.raises(CheckpointError) as caught:
        train(cfg, [data], space, run_copy, device="cpu")
    message = str(caught.value)
    assert message.startswith(f"{run_copy / 'last.pt'} does not fit the model: ")
    assert "the checkpoint's backbone is 'tiny', this model's is 'effnet-lite0'" in message
    assert "parameter(s) missing from the checkpoint (backbone." in message
    assert "load_detector" in message  # what to do about it


def test_finetune_from_another_backbone_or_embedding_size_names_the_file(trained, tmp_path):
    """``train(init_state=...)`` is how fine-tuning starts from a pretrained checkpoint (harness.workloads.scaledet.work)."""
    data, space = packages(tmp_path)
    start = checkpoints.load_checkpoint(trained / "last.pt")
    with pytest.raises(CheckpointError) as caught:
        train(tiny_config(1, 1, model__backbone="effnet-lite0"), [data], space, tmp_path / "ft", device="cpu",
              init_state=start["model"])
    message = str(caught.value)
    assert str(trained / "last.pt") in message
    assert "the checkpoint's backbone is 'tiny', this model's is 'effnet-lite0'" in message
    # same backbone, wider FPN: the shapes that differ are named
    with pytest.raises(CheckpointError) as caught:
        train(tiny_config(1, 1, model__fpn_channels="32"), [data], space, tmp_path / "ft2", device="cpu",
              init_state=start["model"])
    message = str(caught.value)
    assert str(trained / "last.pt") in message and "parameter shape(s) differ (backbone.fpn." in message
    assert "[16, " in message and "[32, " in message
    # a target label space embedded by another text encoder (other size): the head's shapes differ
    wide = LabelSpace.from_embeddings(["package"], torch.randn(1, 16), "packages")
    with pytest.raises(CheckpointError, match=r"last\.pt does not fit the model: .*roi_heads\.box_predictor"):
        train(tiny_config(1, 1), [data], wide, tmp_path / "ft3", device="cpu", init_state=start["model"])
    assert not (tmp_path / "ft").exists() or not list((tmp_path / "ft").glob("*.pt"))


def test_load_detector_of_an_inconsistent_or_foreign_checkpoint(trained, tmp_path):
    state = checkpoints.load_checkpoint(trained / "last.pt")
    state["config"]["model"]["representation_size"] = 48  # the file's config no longer matches its weights
    bad = tmp_path / "edited.pt"
    torch.save(dict(state), bad)
    with pytest.raises(CheckpointError) as caught:
        load_detector(bad)
    message = str(caught.value)
    assert message.startswith(f"{bad} does not fit the model: same backbone 'tiny'")
    assert "roi_heads.box_head.fc6.weight [32, " in message and "[48, " in message
    toy = tmp_path / "toy.pt"  # e.g. a toy workload's checkpoint.pt
    torch.save({"step": 3, "model": {"weight": torch.zeros(1)}}, toy)
    with pytest.raises(CheckpointError, match=rf"{toy} is not a scaledet checkpoint: expected a dict with 'format'"):
        load_detector(toy)


def test_a_truncated_checkpoint_is_a_checkpoint_error_naming_the_file(run_copy, tmp_path):
    real = (run_copy / "last.pt").resolve()
    data = real.read_bytes()
    real.write_bytes(data[: len(data) // 2])  # what a killed writer without temp files would leave
    for load in (checkpoints.load_checkpoint, load_detector):
        with pytest.raises(CheckpointError) as caught:
            load(run_copy / "last.pt")
        message = str(caught.value)
        assert str(run_copy / "last.pt") in message and f"({len(data) // 2} bytes): truncated" in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no raw zip/pickle chain
        assert len(message.splitlines()) == 1
    dataset, space = packages(tmp_path)
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch checkpoint"):  # resume
        train(tiny_config(2, 1), [dataset], space, run_copy, device="cpu")


def test_cli_unknown_method_is_one_line_with_a_suggestion(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--suite", "demo", "--mode", "direct", "--method", "scaledt", "--no-report"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("harness run: error: unknown method 'scaledt' (did you mean 'scaledet'?)")
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()  # nothing submitted


def test_cli_misspelled_config_key_is_refused_before_submitting(tmp_path, capsys, monkeypatch):
    """The staged plan checks every spec's overrides against the configs: one line, nothing submitted."""
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--suite", "demo", "--mode", "direct", "--set", "train.max_step=3", "--no-report"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'max_steps'" in err
    assert not (tmp_path / "results").exists()


def test_clip_weights_unavailable_offline_say_which_where_and_how(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError) as caught:
        build_text_encoder("clip").encode(["a photo of a package."])
    message = str(caught.value)
    assert "OpenCLIP weights 'openai' for model 'ViT-B-32'" in message  # which weights
    assert "timm/vit_base_patch32_clip_224.openai" in message and str(tmp_path / "hub") in message  # where
    assert "--set text_weights=PATH" in message and "weights=PATH)" in message  # how to supply a local file
    assert len(message.splitlines()) == 1
