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


def test_device_chosen_at_run_time():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
