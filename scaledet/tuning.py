"""What a training run updates: GLIP's three transfer regimes (``train.tuning``).

- ``full``: full-model tuning, every parameter the detector trains (the default, and how pretraining runs).
- ``linear``: linear probing. Only the box classifier of every classification stage learns: the cosine
  classifier's projection (weight and bias) and its scalar bias. Backbone, FPN, proposal network, box head and
  box regression stay as they were.
- ``prompt``: prompt tuning. The detector stays as it was; the label embeddings of the label space being trained
  become a parameter ``[n, D]``, initialised from the text encoder's. The classifier L2-normalises them as it does
  text embeddings. The soft-label similarity matrix keeps the text embeddings' (it is the text prior).

A frozen BatchNorm layer runs on its running statistics (eval mode) while the rest trains, so every frozen
weight and buffer leaves training bit-identical. After training, :func:`learned_label_space` turns the
learned embeddings back into a label space, which scores like any vocabulary.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

import torch
from torch import nn

from scaledet.heads import CosineClassifier
from scaledet.labels import LabelSpace
from scaledet.names import check_name

log = logging.getLogger(__name__)

TUNINGS: tuple[str, ...] = ("full", "linear", "prompt")
LEARNED_EMBEDDINGS = "roi_heads.label_embeddings"  # the parameter prompt tuning adds (saved in its checkpoints)


def classifier_parameter_names(model: nn.Module) -> list[str]:
    """Names of every cosine classifier's parameters (one classifier a stage: the cascade has three)."""
    return [f"{prefix}.{name}" for prefix, module in model.named_modules() if isinstance(module, CosineClassifier)
            for name, _ in module.named_parameters()]


def is_prompt_tuned(model: nn.Module) -> bool:
    """Whether ``model``'s label embeddings are a parameter being learned (:func:`apply_tuning` ``prompt``)."""
    return "label_embeddings" in model.roi_heads._parameters  # type: ignore[union-attr]


def apply_tuning(model: nn.Module, tuning: str) -> dict[str, int]:
    """Freeze what ``tuning`` keeps fixed (see the module docstring); {"trainable": n, "frozen": m} parameter
    counts. ``full`` leaves ``model`` as it is."""
    check_name("train.tuning", tuning, TUNINGS)
    if tuning != "full":
        learned = set(classifier_parameter_names(model)) if tuning == "linear" else set()
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in learned)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.register_forward_pre_hook(_running_statistics)
        if tuning == "prompt" and not is_prompt_tuned(model):
            heads = model.roi_heads
            heads.label_embeddings = nn.Parameter(heads.label_embeddings.detach().clone())  # buffer -> parameter
    counts = parameter_counts(model)
    if tuning != "full":
        log.info("tuning %s: %d trainable parameter values, %d frozen", tuning, counts["trainable"], counts["frozen"])
    return counts


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """{"trainable": n, "frozen": m}: how many of ``model``'s parameter values train and how many do not."""
    counts = {"trainable": 0, "frozen": 0}
    for parameter in model.parameters():
        counts["trainable" if parameter.requires_grad else "frozen"] += parameter.numel()
    return counts


def _running_statistics(module: nn.Module, _inputs: tuple) -> None:
    """A frozen BatchNorm layer normalises with its running statistics and leaves them as they are."""
    module.training = False


def learned_label_space(model: nn.Module, label_space: LabelSpace) -> LabelSpace:
    """``label_space`` with the embeddings a prompt-tuned ``model`` learned (``label_space`` itself when it was
    not prompt-tuned); the model's embeddings become a buffer again, so it scores like any detector.

    The learned space keeps the names and prompts; its encoder id gains ``+prompt-tuned:<digest of the
    embeddings>``, so its fingerprint differs from the text space's and still identifies the embeddings.
    """
    if not is_prompt_tuned(model):
        return label_space
    heads = model.roi_heads
    learned = heads.label_embeddings.detach().float().cpu()
    del heads.label_embeddings
    heads.register_buffer("label_embeddings", learned.to(heads.similarity.device), persistent=False)
    return tuned_label_space(label_space, learned)


def tuned_label_space(label_space: LabelSpace, embeddings: torch.Tensor) -> LabelSpace:
    """``label_space`` with learned ``embeddings`` (rows L2-normalised), named by their digest."""
    if tuple(embeddings.shape) != tuple(label_space.embeddings.shape):
        raise ValueError(f"learned embeddings {list(embeddings.shape)} do not fit the label space "
                         f"{list(label_space.embeddings.shape)}")
    rows = torch.nn.functional.normalize(embeddings.detach().float().cpu(), dim=-1)
    digest = hashlib.sha256(rows.numpy().tobytes()).hexdigest()[:12]
    return replace(label_space, encoder_id=f"{label_space.encoder_id}+prompt-tuned:{digest}", embeddings=rows)
