"""Training checkpoints: written atomically, read with ``weights_only=True``, label space checked.

Format (a dict ``torch.save``-d to ``<out_dir>/checkpoint_<step:07d>.pt`` and ``last.pt``):
``{"format": 1, "step": int, "model": state_dict, "optimizer": ..., "scheduler": ..., "sampler": {...},
"rng": {"torch": ByteTensor, "cuda": [ByteTensor] }, "label_space": LabelSpace.to_state() + "fingerprint",
"config": Config.to_dict()}``; under DDP also ``"rank_digests"``: every rank's :func:`weights_digest` at that step.
"""

from __future__ import annotations

import hashlib
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


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """A SHA-256 of a model's weights (names, dtypes, shapes and values, in name order): equal on two processes
    exactly when they hold the same weights, which DDP ranks must after every step."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(state: dict[str, Any], out_dir: str | Path, keep: int = 0) -> Path:
    """Write ``state`` as ``checkpoint_<step>.pt`` (temp file, fsync, ``os.replace``) and point ``last.pt`` at it.

    A failed write (e.g. disk full) removes its temp file and raises ``CheckpointError``; the previous
    checkpoint and ``last.pt`` stay as they were. ``keep > 0`` deletes all but the newest ``keep`` step
    checkpoints afterwards.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"checkpoint_{int(state['step']):07d}.pt"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    link_tmp = out / f"{LAST}.tmp{os.getpid()}"
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path)
        link_tmp.unlink(missing_ok=True)
        os.symlink(path.name, link_tmp)
        os.replace(link_tmp, out / LAST)
    except (OSError, RuntimeError) as error:  # torch.save wraps some OS errors in RuntimeError
        tmp.unlink(missing_ok=True)
        link_tmp.unlink(missing_ok=True)
        previous = find_last(out)
        kept = f"{previous} -> {previous.resolve().name} is kept" if previous else "there is no earlier checkpoint"
        reason = os.strerror(error.errno) if isinstance(error, OSError) and error.errno else str(error)
        raise CheckpointError(
            f"cannot write checkpoint {path} (step {int(state['step'])}): {reason}; nothing was written, "
            f"{kept}. Free space in {out} (or point the run elsewhere) and resume"
        ) from error
    log.info("checkpoint %s", path)
    if keep > 0:
        for old in sorted(out.glob("checkpoint_*.pt"))[:-keep]:
            old.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``, memory-mapped); a directory means its ``last.pt``.

    The returned state's ``model`` dict remembers the file and the backbone it came from, so that
    :func:`load_model_weights` can name them when the weights do not fit a model.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LAST
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # mmap: only the tensors a caller touches are read (a transfer reads the model's weights, not the
        # optimizer state that makes up two thirds of the file); copy-on-write, the file is never written
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001 - truncated zip, bad pickle, foreign format: many types
        size = path.stat().st_size
        raise CheckpointError(
            f"cannot read checkpoint {path} ({size} bytes): truncated, corrupt or not a torch checkpoint "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}); "
            "use an earlier checkpoint_<step>.pt of the same run or train again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise CheckpointError(f"{path} is not a scaledet checkpoint: expected a dict with 'format': {FORMAT} "
                              "and 'model' (written by scaledet.checkpoints.save_checkpoint)")
    _remember_source(state, path)
    return state


def find_last(out_dir: str | Path) -> Path | None:
    """``<out_dir>/last.pt`` if it exists."""
    path = Path(out_dir) / LAST
    return path if path.exists() else None


def check_label_space(state: dict[str, Any], label_space: LabelSpace, where: str = "checkpoint") -> None:
    """Fail clearly when a checkpoint was trained on another label space than the one given."""
    saved = state.get("label_space", {})
    if saved.get("fingerprint") == label_space.fingerprint:
        return
    names = list(saved.get("names", []))
    ours = list(label_space.names)
    only_saved = [n for n in names if n not in set(ours)]
    only_ours = [n for n in ours if n not in set(names)]
    if only_saved or only_ours:
        differs = (f"labels only in the checkpoint: {_first(only_saved)}; labels only in this run: "
                   f"{_first(only_ours)}")
    elif names != ours:
        differs = "same labels in another order"
    else:
        differs = (f"same labels, other embeddings (text encoder {saved.get('encoder_id')!r} vs "
                   f"{label_space.encoder_id!r}, or other prompts)")
    raise CheckpointError(
        f"{where} was trained on label space {saved.get('fingerprint')} ({len(names)} labels: {_first(names)}), "
        f"this run uses {label_space.fingerprint} ({len(ours)} labels: {_first(ours)}); {differs}. "
        "Resume with the same datasets and text encoder, or train into another output folder"
    )


def load_model_weights(model: nn.Module, state: dict[str, Any], where: str | None = None) -> LabelSpace:
    """Load model weights from a checkpoint state; returns the label space it was trained with.

    Weights that do not fit raise ``CheckpointError`` naming the file (``where``, else the file
    :func:`load_checkpoint` read them from), the backbones and the parameters that differ.
    """
    weights = state["model"]
    source = _source_of(weights)
    where = where or (source or {}).get("path") or "checkpoint"
    differences = _differences(model, weights, state, source)
    if differences:
        raise CheckpointError(f"{where} does not fit the model: {'; '.join(differences)}")
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"{where} does not fit the model: {str(error)[:300]}") from error
    return LabelSpace.from_state(state["label_space"])


def _differences(model: nn.Module, weights: dict[str, Any], state: dict[str, Any],
                 source: dict[str, Any] | None) -> list[str]:
    """What keeps ``weights`` from loading into ``model``: backbone, label embedding size, parameter shapes."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in weights]
    unexpected = [k for k in weights if k not in ours]
    shapes = [f"{k} {list(weights[k].shape)} in the checkpoint, {list(ours[k].shape)} in the model"
              for k in ours if k in weights and hasattr(weights[k], "shape") and weights[k].shape != ours[k].shape]
    if not (missing or unexpected or shapes):
        return []
    out = []
    saved_model = (state.get("config") or {}).get("model", {})
    their_detector = saved_model.get("detector", "faster_rcnn") if saved_model else None
    my_detector = getattr(getattr(model, "config", None), "detector", None)
    if their_detector and my_detector and their_detector != my_detector:
        out.append(f"the checkpoint's detector is '{their_detector}' (model.detector), this model's is '{my_detector}'")
    theirs = saved_model.get("backbone") or (source or {}).get("backbone")
    mine = getattr(getattr(model, "config", None), "backbone", None)
    if theirs and mine and theirs != mine:
        out.append(f"the checkpoint's backbone is '{theirs}', this model's is '{mine}'")
    elif mine and theirs and their_detector == my_detector:
        out.append(f"same backbone '{mine}', other sizes (model.fpn_channels, model.representation_size "
                   "or the label embedding size)")
    saved_dim = _label_dim(state.get("label_space"))
    model_dim = getattr(getattr(model, "label_space", None), "dim", None)
    if saved_dim and model_dim and saved_dim != model_dim:
        out.append(f"label embeddings of size {saved_dim} in the checkpoint, {model_dim} in the model "
                   "(another text encoder)")
    if shapes:
        out.append(f"{len(shapes)} parameter shape(s) differ ({_first(shapes, 3)})")
    if missing:
        out.append(f"{len(missing)} model parameter(s) missing from the checkpoint ({_first(missing, 3)})")
    if unexpected:
        out.append(f"{len(unexpected)} checkpoint parameter(s) unknown to the model ({_first(unexpected, 3)})")
    out.append("build the model from the checkpoint's own config (as scaledet.engine.load_detector does) or "
               "start from a checkpoint of this architecture")
    return out


def _label_dim(label_state: Any) -> int | None:
    if not isinstance(label_state, dict):
        return None
    embeddings = label_state.get("embeddings")
    return int(embeddings.shape[-1]) if hasattr(embeddings, "shape") and embeddings.ndim == 2 else None


def _remember_source(state: dict[str, Any], path: Path) -> None:
    backbone = (state.get("config") or {}).get("model", {}).get("backbone")
    try:
        state["model"]._scaledet_source = {"path": str(path), "backbone": backbone}
    except AttributeError:  # a plain dict takes no attributes: messages then say "checkpoint"
        pass


def _source_of(weights: Any) -> dict[str, Any] | None:
    return getattr(weights, "_scaledet_source", None)


def _first(items: list[str], n: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return (shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")) or "none"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
