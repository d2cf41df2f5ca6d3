"""CUDA placement with mocked devices through every entry point: on a node with several GPUs, rank k of a job
(``LOCAL_RANK=k``) trains and scores on ``cuda:k`` whether it enters through the engine (train, predict,
evaluate, load_detector) or through the workload's pretrain, direct, finetune and fewshot cells; an explicit
``device`` is kept. (This machine has no GPU: the tests stop where the tensors would move.)"""

from __future__ import annotations

import inspect
from pathlib import Path
from unittest import mock

import pytest
import torch
from engine_fixtures import packages, tiny_config

from harness.job import JobSpec
from harness.workloads.scaledet import SCALEDET, work
from scaledet import engine, inference

GPUS, RANK = 4, 2


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: GPUS)
    monkeypatch.setenv("LOCAL_RANK", str(RANK))
    for name in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID"):  # one process: no group to join
        monkeypatch.delenv(name, raising=False)


def test_every_engine_entry_point_places_rank_k_on_its_own_gpu(monkeypatch, tmp_path: Path):
    """The engine resolves the device itself; the spy records what it resolved with 4 GPUs visible and runs on the
    CPU instead (the GPUs are mocked only while the device is resolved: the optimizer asks CUDA too)."""
    resolved: list[tuple[str, torch.device]] = []
    real = engine.resolve_device
    monkeypatch.setenv("LOCAL_RANK", str(RANK))
    for name in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)

    def spy(device, *args, **kwargs):
        with mock.patch.object(torch.cuda, "is_available", return_value=True), \
                mock.patch.object(torch.cuda, "device_count", return_value=GPUS):
            resolved.append((inspect.stack()[1].function, real(device, *args, **kwargs)))
        return torch.device("cpu")

    monkeypatch.setattr(engine, "resolve_device", spy)
    monkeypatch.setattr(inference, "resolve_device", spy)
    data, space = packages(tmp_path)
    result = engine.train(tiny_config(1, 1), [data], space, tmp_path / "run")
    inference.predict(result.model, data, space)
    inference.evaluate(result.model, data, space)
    engine.load_detector(tmp_path / "run")
    inference.predict(result.model, data, space, device="cuda:1")  # an explicit index is kept
    assert resolved == [("train", torch.device("cuda", RANK)), ("predict", torch.device("cuda", RANK)),
                        ("predict", torch.device("cuda", RANK)),  # evaluate predicts
                        ("load_detector", torch.device("cuda", RANK)), ("predict", torch.device("cuda", 1))]


class _Reached(Exception):
    """Raised by the stand-ins for the engine: the work function got this far, with this device."""

    def __init__(self, device) -> None:
        super().__init__(str(device))
        self.device = device


def _stop_at_engine(monkeypatch) -> None:
    def trains(*args, device=None, **kwargs):
        raise _Reached(device)

    def scores(model, source, space, device, *settings):
        raise _Reached(device)

    monkeypatch.setattr(work, "train", trains)
    monkeypatch.setattr(work, "score", scores)


@pytest.mark.slow
@pytest.mark.parametrize("mode,shots", [("pretrain", None), ("direct", None), ("finetune", None), ("fewshot", 1)])
def test_every_workload_cell_places_rank_k_on_its_own_gpu(demo, four_gpus, monkeypatch, tmp_path: Path, mode, shots):
    _stop_at_engine(monkeypatch)
    overrides = {} if mode == "pretrain" else {"checkpoint": str(demo.checkpoint)}
    spec = JobSpec("demo", "Raccoon", mode, "scaledet", 3, shots, "test", overrides)
    with pytest.raises(_Reached) as reached:
        SCALEDET.work_for(mode)(spec, tmp_path / spec.job_id)
    assert reached.value.device == torch.device("cuda", RANK)
    # an explicit device is what the cell uses
    spec = JobSpec("demo", "Raccoon", mode, "scaledet", 3, shots, "test", {**overrides, "device": "cuda:0"})
    with pytest.raises(_Reached) as reached:
        SCALEDET.work_for(mode)(spec, tmp_path / spec.job_id)
    assert reached.value.device == torch.device("cuda", 0)
