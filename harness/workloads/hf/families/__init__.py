"""The adapter families, one :class:`~harness.workloads.hf.families.base.Family` each, found by the ``model_type``
in a model's ``config.json``. Adding a family is one module here and one entry in :data:`FAMILIES`; each declares
the training data of its known checkpoints (``Family.checkpoints``, read by :func:`declared_training`)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.catalog.leakage import Declared
from harness.workloads.hf.families.base import Family
from harness.workloads.hf.families.grounding_dino import GroundingDino, MMGroundingDino
from harness.workloads.hf.families.omdet_turbo import OmDetTurbo
from harness.workloads.hf.families.owl import Owlv2, OwlViT
from scaledet.errors import ConfigError

FAMILIES: tuple[Family, ...] = (OwlViT(), Owlv2(), GroundingDino(), MMGroundingDino(), OmDetTurbo())
BY_MODEL_TYPE: dict[str, Family] = {t: f for f in FAMILIES for t in f.model_types}


def family_of(folder: Path) -> Family:
    """The family of the model saved in ``folder`` (its ``config.json``'s ``model_type``)."""
    config = Path(folder) / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8"))["model_type"]
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"{config}: cannot read its model_type ({error})") from None
    if model_type not in BY_MODEL_TYPE:
        raise ConfigError(f"{config}: model_type {model_type!r} has no adapter; known: "
                          f"{', '.join(sorted(BY_MODEL_TYPE))} (harness.workloads.hf.families)")
    return BY_MODEL_TYPE[model_type]


def declared_training(repo_id: str) -> Declared | None:
    """The training data a family declares for checkpoint ``repo_id`` (None: not a known checkpoint)."""
    return next((f.checkpoints[repo_id] for f in FAMILIES if repo_id in f.checkpoints), None)
