"""Rank k of a node runs on cuda:k through every entry point (8 mocked CUDA devices; nothing is moved to them:
stand-ins stop each entry point where the device it chose is handed on)."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import packages, tiny_config

from harness.job import JobSpec
from harness.workloads.scaledet import work as workload
from scaledet import checkpoints as ckpt
from scaledet import distributed, engine, inference
from scaledet.detector import ScaleDetDetector, build_detector

GPUS = 8
RANK_ENV = ("LOCAL_RANK", "SLURM_LOCALID", "WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID")


class Placed(Exception):
    """Raised by a stand-in with the device an entry point chose."""

    def __init__(self, device) -> None:
        super().__init__(str(device))
        self.device = torch.device(device)


@pytest.fixture
def eight_gpus(monkeypatch) -> list[torch.device]:
    """8 visible CUDA devices; returns the devices ``torch.cuda.set_device`` was called with."""
    pinned: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: GPUS)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: pinned.append(torch.device(device)))
    for name in RANK_ENV:
        monkeypatch.delenv(name, raising=False)
    return pinned


def stop(device) -> None:
    raise Placed(device)


def _placed(call) -> torch.device:
    with pytest.raises(Placed) as caught:
        call()
    return caught.value.device


def test_resolve_device_reads_the_local_rank(eight_gpus, monkeypatch):
    assert distributed.resolve_device(None) == torch.device("cuda", 0)  # no rank variables: the first GPU
    for k in range(GPUS):
        monkeypatch.setenv("SLURM_LOCALID", str(k))  # srun's, when nothing exported LOCAL_RANK
        assert distributed.resolve_device(None) == torch.device("cuda", k)
        monkeypatch.setenv("LOCAL_RANK", str((k + 1) % GPUS))  # torchrun's / submitit's export wins
        assert distributed.resolve_device("cuda") == torch.device("cuda", (k + 1) % GPUS)
        assert distributed.resolve_device("cuda:3") == torch.device("cuda", 3)  # an explicit index is kept
        assert distributed.resolve_device("cpu") == torch.device("cpu")


def test_init_distributed_pins_the_local_gpu(eight_gpus, monkeypatch):
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)  # the group is joined already
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: GPUS)
    monkeypatch.setenv("WORLD_SIZE", str(GPUS))
    for k in range(GPUS):
        monkeypatch.setenv("LOCAL_RANK", str(k))
        monkeypatch.setattr(distributed.dist, "get_rank", lambda k=k: k)
        info = distributed.init_distributed(distributed.resolve_device(None))
        assert (info.rank, info.local_rank, eight_gpus[-1]) == (k, k, torch.device("cuda", k))


def test_engine_entry_points_place_rank_k_on_cuda_k(eight_gpus, monkeypatch, tmp_path):
    data, space = packages(tmp_path)
    cfg = tiny_config(1, 1, data__batch_size=GPUS)
    model = build_detector(cfg.model, space, load_weights=False)
    saved = ckpt.save_checkpoint({"step": 0, "model": model.state_dict(), "label_space": model.label_state(),
                                  "config": cfg.to_dict()}, tmp_path / "run")

    monkeypatch.setattr(engine, "init_distributed", stop)
    monkeypatch.setattr(ScaleDetDetector, "to", lambda self, device: stop(device))
    monkeypatch.setenv("WORLD_SIZE", str(GPUS))
    for k in range(GPUS):
        monkeypatch.setenv("LOCAL_RANK", str(k))
        cuda_k = torch.device("cuda", k)
        assert _placed(lambda: engine.train(cfg, [data], space, tmp_path / "out")) == cuda_k
        assert _placed(lambda: inference.predict(model, data)) == cuda_k
        assert _placed(lambda: inference.evaluate(model, data)) == cuda_k
        assert _placed(lambda: engine.load_detector(saved)) == cuda_k


class StubEncoder:
    id = "minilm-stub"  # a MiniLM id, so transfer jobs pick the `minilm` encoder (this stub) by default

    def encode(self, texts: list[str]) -> torch.Tensor:
        return torch.randn(len(texts), 8, generator=torch.Generator().manual_seed(len(texts)))


def test_workload_jobs_place_rank_k_on_cuda_k(eight_gpus, monkeypatch, tmp_path):
    monkeypatch.setattr(workload, "build_text_encoder", lambda *args, **kwargs: StubEncoder())
    # where each job hands its device on: train (pretrain), score (direct), select_on_valid (finetune, fewshot)
    monkeypatch.setattr(workload, "train", lambda *args, device, **kwargs: stop(device))
    monkeypatch.setattr(workload, "score", lambda model, source, space, device, *settings: stop(device))
    monkeypatch.setattr(workload, "select_on_valid", lambda *args: stop(args[6]))  # (cfg, spec, train, space, start, run_dir, device, …)
    upstream = workload.load_source("demo", "Packages", "test", False)
    space = workload.encode(upstream, StubEncoder())
    cfg = tiny_config(1, 1)
    model = build_detector(cfg.model, space, load_weights=False)
    start = ckpt.save_checkpoint({"step": 0, "model": model.state_dict(), "label_space": model.label_state(),
                                  "config": cfg.to_dict()}, tmp_path / "start")
    specs = [JobSpec("demo", "Packages", "pretrain", "scaledet", 3, None, "test"),
             *(JobSpec("demo", "Raccoon", mode, "scaledet", 3, shots, "test", (("checkpoint", str(start)),))
               for mode, shots in (("direct", None), ("finetune", None), ("fewshot", 1)))]
    jobs = {"pretrain": workload.pretrain, "direct": workload.direct, "finetune": workload.finetune,
            "fewshot": workload.finetune}
    for k in range(GPUS):
        monkeypatch.setenv("LOCAL_RANK", str(k))
        for spec in specs:
            placed = _placed(lambda spec=spec: jobs[spec.mode](spec, tmp_path / "runs" / spec.job_id))
            assert placed == torch.device("cuda", k), (spec.mode, k)
