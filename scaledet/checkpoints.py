"""Training checkpoints: written atomically, read with ``weights_only=True``, label space checked.

Format (a dict ``torch.save``-d to ``<out_dir>/checkpoint_<step:07d>.pt`` and ``last.pt``):
``{"format": 1, "step": int, "model": state_dict, "optimizer": ..., "scheduler": ..., "sampler": {...},
"rng": {"torch": ByteTensor, "cuda": [ByteTensor] }, "label_space": LabelSpace.to_state() + "fingerprint",
"config": Config.to_dict()}``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scaledet.errors import CheckpointError
from scaledet.labels import LabelSpace

log = logging.getLogger(__name__)

FORMAT = 1
LAST = "last.pt"


def save_checkpoint(state: dict[str, Any], out_dir: str | Path, keep: int = 0) -> Path:
    """Write ``state`` as ``checkpoint_<step>.pt`` (temp file + ``os.replace``) and point ``last.pt`` at it.

    ``keep > 0`` deletes all but the newest ``keep`` step checkpoints afterwards.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"checkpoint_{int(state['step']):07d}.pt"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)
    link_tmp = out / f"{LAST}.tmp{os.getpid()}"
    link_tmp.unlink(missing_ok=True)
    os.symlink(path.name, link_tmp)
    os.replace(link_tmp, out / LAST)
    log.info("checkpoint %s", path)
    if keep > 0:
        for old in sorted(out.glob("checkpoint_*.pt"))[:-keep]:
            old.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``); a directory means its ``last.pt``."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a checkpoint): {error}") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise CheckpointError(f"{path} is not a scaledet checkpoint (format {FORMAT})")
    return state


def find_last(out_dir: str | Path) -> Path | None:
    """``<out_dir>/last.pt`` if it exists."""
    path = Path(out_dir) / LAST
    return path if path.exists() else None


def check_label_space(state: dict[str, Any], label_space: LabelSpace, where: str = "checkpoint") -> None:
    """Fail clearly when a checkpoint was trained on another label space than the one given."""
    saved = state.get("label_space", {})
    if saved.get("fingerprint") != label_space.fingerprint:
        names = saved.get("names", [])
        raise CheckpointError(
            f"{where} was trained on label space {saved.get('fingerprint')} ({len(names)} labels: "
            f"{', '.join(names[:5])}...), this run uses {label_space.fingerprint} ({len(label_space)} labels: "
            f"{', '.join(label_space.names[:5])}...)"
        )


def load_model_weights(model: nn.Module, state: dict[str, Any]) -> LabelSpace:
    """Load model weights from a checkpoint state; returns the label space it was trained with."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint does not fit the model: {str(error)[:300]}") from error
    return LabelSpace.from_state(state["label_space"])


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
