"""The training input pipeline: mixed precision modes, the loader's settings (pinned memory on CUDA only,
persistent workers, prefetching), per-sample seeding (the same batches for any number of workers, exact resume with
workers), channels-last for convolutional backbones, old configs' ``train.amp: true/false``, what gets recorded."""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from engine_fixtures import packages, tiny_config

from scaledet import checkpoints, engine
from scaledet.config import DataConfig, TrainConfig, load_config, preset, with_overrides
from scaledet.detector import build_detector
from scaledet.engine import apply_channels_last, grad_scaler, loader_settings, train
from scaledet.errors import ConfigError
from scaledet.precision import AMP_MODES, amp_dtype, autocast, needs_scaler
from scaledet.sampling import RepeatFactorSampler

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


@pytest.fixture
def bf16_gpu(monkeypatch):
    """A CUDA device that supports bfloat16 (this machine has none: only what precision asks is mocked)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


def test_amp_modes_per_device(bf16_gpu, monkeypatch):
    assert AMP_MODES == ("bf16", "fp16", "off")
    assert [amp_dtype(m, GPU) for m in AMP_MODES] == [torch.bfloat16, torch.float16, None]
    assert [amp_dtype(m, CPU) for m in AMP_MODES] == [None, None, None]  # AMP is CUDA-only
    assert [needs_scaler(m, GPU) for m in AMP_MODES] == [False, True, False]  # the scaler: fp16 only
    assert not any(needs_scaler(m, CPU) for m in AMP_MODES)
    assert all(isinstance(autocast(CPU, m), contextlib.nullcontext) for m in AMP_MODES)
    assert isinstance(autocast(GPU, "off"), contextlib.nullcontext)
    with pytest.raises(ConfigError, match=r"train.amp is 'fp32'; expected one of bf16, fp16, off"):
        amp_dtype("fp32", CPU)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(ConfigError, match=r"train.amp is 'bf16' but cuda:0 \(Tesla V100\) has no bfloat16"):
        amp_dtype("bf16", GPU)
    assert amp_dtype("fp16", GPU) == torch.float16


def test_grad_scaler_runs_for_fp16_on_cuda_only(monkeypatch):
    assert not any(grad_scaler(TrainConfig(amp=m), CPU).is_enabled() for m in AMP_MODES)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the scaler disables itself without CUDA
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert [grad_scaler(TrainConfig(amp=m), GPU).is_enabled() for m in AMP_MODES] == [False, True, False]


def test_old_configs_amp_true_false_and_the_new_keys(tmp_path):
    from harness.commands.run import parse_overrides

    assert preset("scaledet").train.amp == "fp16"  # the paper's detectron2 AMP, and what `amp: true` did
    assert load_config({"train": {"amp": True}}).train.amp == "fp16"
    assert load_config({"train": {"amp": False}}).train.amp == "off"
    path = tmp_path / "old.yaml"
    path.write_text("train:\n  amp: off\n  max_steps: 3\n")  # YAML 1.1: off is false
    assert load_config(path).train.amp == "off"
    cfg = with_overrides(preset("scaledet"), ["train.amp=bf16", "data.pin_memory=false", "train.channels_last=true"])
    assert (cfg.train.amp, cfg.data.pin_memory, cfg.train.channels_last) == ("bf16", False, True)
    assert load_config(cfg.to_dict()) == cfg
    assert {"pin_memory", "persistent_workers", "prefetch_factor"} <= set(cfg.to_dict()["data"])
    # --set: the value checked where it enters; an old true/false stays as given (the job ids it made stay)
    assert parse_overrides(["train.amp=bf16", "train.amp=false"]) == (("train.amp", "bf16"), ("train.amp", False))
    for bad in (["train.amp=fp32"], ["train.amp=3"]):
        with pytest.raises(ConfigError, match=r"train.amp is .*expected one of bf16, fp16, off"):
            with_overrides(preset("scaledet"), bad)
    with pytest.raises(ConfigError, match=r"train.amp is 'fp32'; expected one of bf16, fp16, off"):
        parse_overrides(["train.amp=fp32"])
    with pytest.raises(ConfigError, match=r"data.pin_memory is 'sometimes'; expected auto, true or false"):
        load_config({"data": {"pin_memory": "sometimes"}})


def test_loader_settings_pin_memory_on_cuda_only():
    data = DataConfig()  # 2 workers, pin_memory auto
    assert loader_settings(data, CPU) == {"num_workers": 2, "pin_memory": False, "persistent_workers": True,
                                          "prefetch_factor": 2}
    assert loader_settings(data, GPU)["pin_memory"] is True
    assert loader_settings(DataConfig(pin_memory=False), GPU)["pin_memory"] is False
    assert loader_settings(DataConfig(pin_memory=True), CPU)["pin_memory"] is False  # nothing to copy to
    assert loader_settings(DataConfig(num_workers=0), GPU) == {"num_workers": 0, "pin_memory": True,
                                                               "persistent_workers": False, "prefetch_factor": None}
    with pytest.raises(ConfigError, match="data.prefetch_factor >= 1"):
        engine.check_choices(with_overrides(preset("scaledet"), ["data.prefetch_factor=0"]))


class _GlobalJitter:
    """A transform drawing from its generator and from the global torch / numpy / random streams (as a user's or a
    torchvision transform might)."""

    def __call__(self, image, target, generator):
        shift = float(torch.rand((), generator=generator)) + float(torch.rand(())) + np.random.rand() + random.random()
        return image[:, :16, :16] + shift, target


def _batches(tmp_path, workers: int, consumed: int = 0, device=CPU, steps: int = 3):
    data, space = packages(tmp_path)
    cfg = tiny_config(4, 4, data__num_workers=str(workers))
    sampler = RepeatFactorSampler([1.0] * len(data), seed=cfg.train.seed)
    sampler.advance(consumed)
    loader = engine._loader(cfg, [data], space, sampler, 2, device)
    loader.dataset.transform = _GlobalJitter()
    return loader, list(itertools.islice(iter(loader), steps))


def test_batches_are_the_same_for_any_worker_count_and_after_a_resume(tmp_path):
    torch.manual_seed(11)
    before = torch.get_rng_state()
    loader, none = _batches(tmp_path, 0)
    assert torch.equal(torch.get_rng_state(), before)  # loading in this process left its RNG where it was
    assert loader.worker_init_fn is None and loader.prefetch_factor is None
    loader, two = _batches(tmp_path, 2)
    assert isinstance(loader.worker_init_fn, engine.WorkerSeeds) and loader.persistent_workers
    assert not loader.pin_memory and loader.prefetch_factor == 2
    _, resumed = _batches(tmp_path, 2, consumed=2, steps=2)  # a fresh loader one step (2 samples) in
    for (imgs_a, tgts_a), (imgs_b, tgts_b) in zip(none, two):
        assert all(torch.equal(a, b) for a, b in zip(imgs_a, imgs_b))
        assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(tgts_a, tgts_b))
    for (imgs_a, _), (imgs_b, _) in zip(two[1:], resumed):
        assert all(torch.equal(a, b) for a, b in zip(imgs_a, imgs_b))


def test_loader_on_cuda_pins_memory(tmp_path):
    data, space = packages(tmp_path)
    cfg = tiny_config(1, 1, data__num_workers="2")
    sampler = RepeatFactorSampler([1.0] * len(data))
    loader = engine._loader(cfg, [data], space, sampler, 2, GPU)  # built, not iterated: no GPU here
    assert (loader.pin_memory, loader.persistent_workers, loader.prefetch_factor) == (True, True, 2)


def test_resume_with_loader_workers_is_exact(tmp_path):
    data, space = packages(tmp_path)

    def config(steps):
        return tiny_config(steps, 2, data__num_workers="2")

    straight = train(config(4), [data], space, tmp_path / "a", device="cpu")
    train(config(2), [data], space, tmp_path / "b", device="cpu")
    resumed = train(config(4), [data], space, tmp_path / "b", device="cpu")
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history[2:]]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.pipeline["num_workers"] == 2 and straight.pipeline["persistent_workers"]


def test_channels_last_same_losses_and_recorded(tmp_path, caplog):
    data, space = packages(tmp_path)
    cfg = tiny_config(1, 1)
    torch.manual_seed(0)
    plain = build_detector(cfg.model, space, load_weights=False)
    nhwc = build_detector(cfg.model, space, load_weights=False)
    nhwc.load_state_dict(plain.state_dict())
    assert apply_channels_last(nhwc, True) and apply_channels_last(nhwc, True)  # twice: one input hook
    conv = next(m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = [torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 90.0, 100.0]]), "labels": torch.tensor([0])}] * 2
    losses = []
    for model in (plain, nhwc):
        torch.manual_seed(1)
        losses.append(model.train()(images, targets))
    assert losses[0].keys() == losses[1].keys()
    assert all(torch.allclose(losses[0][k], losses[1][k], rtol=1e-4, atol=1e-5) for k in losses[0])
    # not convolutional (swin): nothing changes, a line says so
    swin = torch.nn.Conv2d(3, 4, 3)
    swin.config = SimpleNamespace(backbone="swin-t")
    with caplog.at_level(logging.INFO, logger="scaledet.engine"):
        assert not apply_channels_last(swin, True)
    assert swin.weight.is_contiguous() and "swin-t is not convolutional" in caplog.text
    # end to end: trains, and the checkpoint records the pipeline and the config's new keys
    train(tiny_config(1, 1, train__channels_last="true"), [data], space, tmp_path / "run", device="cpu")
    state = checkpoints.load_checkpoint(tmp_path / "run")
    assert state["input_pipeline"] == {"num_workers": 0, "pin_memory": False, "persistent_workers": False,
                                       "prefetch_factor": None, "amp": "fp16", "amp_dtype": None,
                                       "grad_scaler": False, "channels_last": True, "device": "cpu"}
    assert state["config"]["train"]["channels_last"] is True and state["config"]["data"]["pin_memory"] == "auto"


def test_a_checkpoint_from_before_the_modes_loads_and_resumes(tmp_path):
    data, space = packages(tmp_path)
    train(tiny_config(1, 1), [data], space, tmp_path / "run", device="cpu")
    path = tmp_path / "run" / "last.pt"
    state = torch.load(path, weights_only=True)
    old = state["config"]
    old["train"]["amp"] = True  # as written before: a bool, no channels_last / loader keys, no scaler state
    del old["train"]["channels_last"]
    for key in ("pin_memory", "persistent_workers", "prefetch_factor"):
        del old["data"][key]
    for key in ("scaler", "input_pipeline"):
        del state[key]
    torch.save(state, path.resolve())
    assert load_config(checkpoints.load_checkpoint(path)["config"]).train.amp == "fp16"
    engine.load_detector(path)
    assert train(tiny_config(2, 1), [data], space, tmp_path / "run", device="cpu").step == 2
