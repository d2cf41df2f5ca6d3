"""Checkpoints without training: the file layout, what load refuses, the messages when weights or label spaces do
not fit, RNG state and weight digests. Models are small ``nn.Module`` stand-ins with a detector's attributes."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from scaledet import checkpoints
from scaledet.checkpoints import (
    check_label_space,
    load_checkpoint,
    load_model_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
    weights_digest,
)
from scaledet.errors import CheckpointError
from scaledet.labels import LabelSpace

ADVICE = ("build the model from the checkpoint's own config (as scaledet.engine.load_detector does) or start from a "
          "checkpoint of this architecture")


class Toy(nn.Module):
    """Three linear layers of ``width`` (5 of its 6 parameters depend on it), ``extra`` more layers, and the
    ``config`` / ``label_space`` attributes the checkpoint messages read from a detector."""

    def __init__(self, width: int = 3, backbone: str = "tiny", detector: str = "faster_rcnn", dim: int = 4,
                 extra: int = 0):
        super().__init__()
        self.config = SimpleNamespace(backbone=backbone, detector=detector)
        self.label_space = LabelSpace.from_embeddings(["a", "b"], torch.eye(2, dim), "d")
        self.head = nn.Sequential(nn.Linear(2, width), nn.Linear(width, width), nn.Linear(width, 2))
        self.extra = nn.ModuleList(nn.Linear(1, 1) for _ in range(extra))


def _state(model: Toy, step: int = 1, config: dict | None = None) -> dict:
    space = model.label_space
    if config is None:
        config = {"model": {"backbone": model.config.backbone, "detector": model.config.detector}}
    return {"step": step, "model": model.state_dict(), "label_space": {**space.to_state(),
                                                                       "fingerprint": space.fingerprint},
            "config": config}


def _misfit(model: nn.Module, state: dict, where: str | None = None) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_model_weights(model, state, where)
    return str(caught.value)


def test_save_writes_the_step_file_and_points_last_at_it(tmp_path, caplog):
    out = tmp_path / "run" / "checkpoints"  # made with its parents
    with caplog.at_level("INFO", logger="scaledet.checkpoints"):
        path = save_checkpoint(_state(Toy(), step=7), out)
    assert path == out / "checkpoint_0000007.pt" and f"checkpoint {path}" in [r.getMessage() for r in caplog.records]
    assert os.readlink(out / "last.pt") == "checkpoint_0000007.pt"  # relative: the folder can move
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_0000007.pt", "last.pt"]  # no temp files
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == 1 and raw["step"] == 7
    save_checkpoint(_state(Toy(), step=8), out)  # the folder exists already; last.pt moves on
    assert os.readlink(out / "last.pt") == "checkpoint_0000008.pt"
    assert load_checkpoint(out)["step"] == 8 and load_checkpoint(path)["step"] == 7


@pytest.mark.parametrize(("keep", "left"), [(0, [1, 2, 3]), (1, [3]), (2, [2, 3])])
def test_keep_prunes_all_but_the_newest_step_files(tmp_path, keep, left):
    for step in (1, 2, 3):
        save_checkpoint(_state(Toy(), step=step), tmp_path, **({"keep": keep} if keep else {}))
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt")) == [f"checkpoint_{s:07d}.pt" for s in left]
    assert load_checkpoint(tmp_path)["step"] == 3


@pytest.mark.parametrize("error", [RuntimeError("serialisation failed"), OSError("no errno here")])
def test_a_failed_write_before_any_file_is_a_checkpoint_error(tmp_path, monkeypatch, error):
    def failing_save(*args, **kwargs):  # fails before creating anything
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointError) as caught:
        save_checkpoint(_state(Toy(), step=4), tmp_path)
    assert str(caught.value) == (
        f"cannot write checkpoint {tmp_path / 'checkpoint_0000004.pt'} (step 4): {error}; nothing was written, "
        f"there is no earlier checkpoint. Free space in {tmp_path} (or point the run elsewhere) and resume")
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_what_is_not_a_scaledet_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=rf"^checkpoint not found: {tmp_path / 'last.pt'}$"):
        load_checkpoint(tmp_path)
    cases = {"list.pt": [1, 2], "no_format.pt": {"model": {}}, "format_2.pt": {"format": 2, "model": {}},
             "no_model.pt": {"format": 1, "step": 3}}
    for name, content in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(tmp_path / name)
        assert str(caught.value) == (
            f"{tmp_path / name} is not a scaledet checkpoint: expected a dict with 'format': 1 and 'model' "
            "(written by scaledet.checkpoints.save_checkpoint)")
    torch.save({"format": 1, "model": {}}, tmp_path / "minimal.pt")
    assert load_checkpoint(tmp_path / "minimal.pt") == {"format": 1, "model": {}}


class Pickled:
    """Not a tensor or plain container: ``weights_only=True`` refuses to unpickle it."""


def test_load_never_unpickles_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": {}, "payload": Pickled()}, path)
    with pytest.raises(CheckpointError, match=r"truncated, corrupt or not a torch checkpoint \(UnpicklingError: "):
        load_checkpoint(path)


@pytest.mark.parametrize("error", [RuntimeError("x" * 250 + "\nsecond line"), RuntimeError()])
def test_unreadable_checkpoint_message_has_the_size_and_the_errors_first_line(tmp_path, monkeypatch, error):
    path = tmp_path / "c.pt"
    path.write_bytes(b"12345")

    def failing_load(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "load", failing_load)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    first_line = "x" * 200 if str(error) else ""
    assert str(caught.value) == (
        f"cannot read checkpoint {path} (5 bytes): truncated, corrupt or not a torch checkpoint "
        f"(RuntimeError: {first_line}); use an earlier checkpoint_<step>.pt of the same run or train again")


def test_weights_that_fit_load_and_give_the_label_space(tmp_path):
    trained = Toy()
    save_checkpoint(_state(trained), tmp_path)
    fresh = Toy()
    space = load_model_weights(fresh, load_checkpoint(tmp_path))
    assert space.names == ("a", "b") and space.fingerprint == trained.label_space.fingerprint
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in trained.state_dict().items())


def test_other_sizes_with_the_same_backbone_name_the_file_and_the_first_three_shapes(tmp_path):
    save_checkpoint(_state(Toy(width=3)), tmp_path)
    message = _misfit(Toy(width=5), load_checkpoint(tmp_path))
    assert message == (
        f"{tmp_path / 'last.pt'} does not fit the model: same backbone 'tiny', other sizes (model.fpn_channels, "
        "model.representation_size or the label embedding size); 5 parameter shape(s) differ "
        "(head.0.weight [3, 2] in the checkpoint, [5, 2] in the model, head.0.bias [3] in the checkpoint, [5] in "
        "the model, head.1.weight [3, 3] in the checkpoint, [5, 5] in the model, ... (2 more)); " + ADVICE)
    assert _misfit(Toy(width=5), _state(Toy(width=3)), where="ckpt.pt").startswith("ckpt.pt does not fit the model: ")
    assert _misfit(Toy(width=5), _state(Toy(width=3))).startswith("checkpoint does not fit the model: ")


def test_other_backbone_names_both_and_the_missing_and_unknown_parameters(tmp_path):
    save_checkpoint(_state(Toy(extra=2)), tmp_path)
    message = _misfit(Toy(backbone="effnet-lite0"), load_checkpoint(tmp_path))
    assert message == (
        f"{tmp_path / 'last.pt'} does not fit the model: the checkpoint's backbone is 'tiny', this model's is "
        "'effnet-lite0'; 4 checkpoint parameter(s) unknown to the model (extra.0.weight, extra.0.bias, "
        "extra.1.weight, ... (1 more)); " + ADVICE)
    message = _misfit(Toy(extra=2), _state(Toy()))
    assert message == ("checkpoint does not fit the model: same backbone 'tiny', other sizes (model.fpn_channels, "
                       "model.representation_size or the label embedding size); 4 model parameter(s) missing from "
                       "the checkpoint (extra.0.weight, extra.0.bias, extra.1.weight, ... (1 more)); " + ADVICE)


def test_the_file_remembers_its_backbone_when_the_config_does_not_say(tmp_path):
    save_checkpoint(_state(Toy(width=3)), tmp_path)
    state = load_checkpoint(tmp_path)
    del state["config"]["model"]["backbone"]
    assert "the checkpoint's backbone is 'tiny', this model's is 'r50'" in _misfit(Toy(width=5, backbone="r50"),
                                                                                  state)


def test_other_detector_is_named_and_faster_rcnn_is_the_default(tmp_path):
    message = _misfit(Toy(width=5), _state(Toy(width=3, detector="centernet2")))
    assert message.startswith("checkpoint does not fit the model: the checkpoint's detector is 'centernet2' "
                              "(model.detector), this model's is 'faster_rcnn'; 5 parameter shape(s) differ")
    older = _state(Toy(width=3), config={"model": {"backbone": "tiny"}})  # saved before detectors had a name
    assert _misfit(Toy(width=5, detector="centernet2"), older).startswith(
        "checkpoint does not fit the model: the checkpoint's detector is 'faster_rcnn' (model.detector), this "
        "model's is 'centernet2'; 5 parameter shape(s) differ")
    # no config in the file: nothing to compare, only the shapes are named
    bare = _state(Toy(width=3), config={})
    assert _misfit(Toy(width=5, detector="centernet2"), bare).startswith(
        "checkpoint does not fit the model: 5 parameter shape(s) differ")


def test_other_label_embedding_size_is_named():
    message = _misfit(Toy(width=5, dim=4), _state(Toy(width=3, dim=8)))
    assert ("; label embeddings of size 8 in the checkpoint, 4 in the model (another text encoder); 5 parameter"
            in message)
    no_embeddings = _state(Toy(width=3, dim=8))
    no_embeddings["label_space"] = {"names": ["a"], "embeddings": torch.zeros(8)}  # not [n, D]: size unknown
    assert "label embeddings of size" not in _misfit(Toy(width=5, dim=4), no_embeddings)
    no_embeddings["label_space"] = None
    assert "label embeddings of size" not in _misfit(Toy(width=5, dim=4), no_embeddings)


def test_a_plain_dict_of_weights_loads_and_is_reported_as_checkpoint(tmp_path):
    model = nn.Linear(2, 2)
    save_checkpoint({"step": 1, "model": dict(model.state_dict())}, tmp_path)  # a dict takes no attributes
    state = load_checkpoint(tmp_path)
    assert type(state["model"]) is dict
    assert _misfit(nn.Linear(2, 3), state).startswith("checkpoint does not fit the model: 2 parameter shape(s)")


def test_weights_of_the_right_names_and_shapes_that_still_do_not_load():
    model = nn.Module()
    long = "p" * 150
    for name in (long + "1", long + "2"):
        model.register_parameter(name, nn.Parameter(torch.zeros(1)))
    bad = {long + "1": 1, long + "2": 2}  # not tensors: load_state_dict refuses them
    with pytest.raises(RuntimeError) as direct:
        model.load_state_dict(bad)
    assert len(str(direct.value)) > 300
    assert _misfit(model, {"model": bad}, where="w.pt") == f"w.pt does not fit the model: {str(direct.value)[:300]}"


def _saved(names, encoder_id="given", dim=4):
    space = LabelSpace.from_embeddings(names, torch.ones(len(names), dim), "d", encoder_id=encoder_id)
    return {"label_space": {**space.to_state(), "fingerprint": space.fingerprint}}, space


def test_label_space_check_says_what_differs():
    state, space = _saved(["a", "b"])
    check_label_space(state, space)  # the same: no error
    tail = ". Resume with the same datasets and text encoder, or train into another output folder"
    _, other = _saved(["b", "c"])
    with pytest.raises(CheckpointError) as caught:
        check_label_space(state, other)
    assert str(caught.value) == (
        f"checkpoint was trained on label space {space.fingerprint} (2 labels: a, b), this run uses "
        f"{other.fingerprint} (2 labels: b, c); labels only in the checkpoint: a; labels only in this run: c" + tail)
    _, reordered = _saved(["b", "a"])
    with pytest.raises(CheckpointError, match=r"; same labels in another order\. Resume"):
        check_label_space(state, reordered, where="last.pt")
    _, encoded = _saved(["a", "b"], encoder_id="minilm")
    with pytest.raises(CheckpointError) as caught:
        check_label_space(state, encoded, where="last.pt")
    assert str(caught.value).startswith(f"last.pt was trained on label space {space.fingerprint} (2 labels")
    assert "; same labels, other embeddings (text encoder 'given' vs 'minilm', or other prompts). Resume" in str(
        caught.value)


def test_label_space_check_of_a_state_without_one_and_of_long_label_lists():
    _, space = _saved([f"l{i}" for i in range(7)])
    with pytest.raises(CheckpointError) as caught:
        check_label_space({}, space)
    assert str(caught.value).startswith(
        f"checkpoint was trained on label space None (0 labels: none), this run uses {space.fingerprint} "
        "(7 labels: l0, l1, l2, l3, l4, ... (2 more)); labels only in the checkpoint: none; labels only in this "
        "run: l0, l1, l2, l3, l4, ... (2 more). Resume")
    five, _ = _saved([f"l{i}" for i in range(5)])
    with pytest.raises(CheckpointError, match=r"\(5 labels: l0, l1, l2, l3, l4\), this run"):
        check_label_space(five, space)


def test_rng_state_round_trip():
    state = rng_state()
    assert set(state) == ({"torch", "cuda"} if torch.cuda.is_available() else {"torch"})
    first = torch.rand(5)
    set_rng_state(state)
    assert torch.equal(torch.rand(5), first)
    if not torch.cuda.is_available():  # a state saved on a GPU machine resumes on a CPU-only one
        set_rng_state({**state, "cuda": [torch.zeros(8, dtype=torch.uint8)]})
        assert torch.equal(torch.rand(5), first)


def test_weights_digest_is_equal_exactly_for_equal_weights():
    torch.manual_seed(0)
    a = nn.Linear(3, 2).state_dict()
    same = {k: v.clone() for k, v in reversed(a.items())}  # another process, another order
    assert weights_digest(a) == weights_digest(same) and len(weights_digest(a)) == 64
    changed = {**a, "bias": a["bias"] + 1e-6}
    renamed = {"w": a["weight"], "bias": a["bias"]}
    assert len({weights_digest(a), weights_digest(changed), weights_digest(renamed)}) == 3
    zeros = torch.zeros(2, 3)  # the same bytes as another dtype or shape are other weights
    assert len({weights_digest({"w": t}) for t in (zeros, zeros.int(), zeros.reshape(3, 2))}) == 3
    x = torch.arange(6.0).reshape(2, 3)
    assert weights_digest({"w": x.t()}) == weights_digest({"w": x.t().contiguous()})  # values, not memory layout
    assert weights_digest({"w": torch.zeros(0), "b": torch.ones(1)}) != weights_digest({"b": torch.ones(1)})
    assert checkpoints.weights_digest({}) == checkpoints.weights_digest({})


def test_cuda_rng_state_is_saved_and_restored_where_cuda_is(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["gpu0-state"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    state = rng_state()
    assert state["cuda"] == ["gpu0-state"] and torch.equal(state["torch"], torch.get_rng_state())
    set_rng_state({**state, "cuda": ["saved"]})
    set_rng_state({"torch": state["torch"]})  # saved on a machine without CUDA: nothing to restore on the GPU
    assert restored == [["saved"]]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert set(rng_state()) == {"torch"}
    set_rng_state({**state, "cuda": ["saved"]})  # saved on a GPU machine, resumed without CUDA
    assert restored == [["saved"]]
