"""Process-group settings from the environment (torchrun and SLURM variable names)."""

from __future__ import annotations

import torch

from scaledet.distributed import init_distributed, resolve_device


def test_single_process_needs_no_group(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed(torch.device("cpu"))
    assert (info.rank, info.world_size, info.is_main) == (0, 1, True)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert init_distributed(torch.device("cpu")).world_size == 1


def test_device_chosen_at_run_time(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device(None) == resolve_device("cuda") == torch.device("cuda", 2)  # rank 2's own GPU
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit index is kept
    assert resolve_device("cpu") == torch.device("cpu")
