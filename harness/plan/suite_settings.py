"""Per-suite job settings, written into the planned specs' overrides (so they are part of every job id and
result record, and a changed default never silently reuses an old cell). The spec's own overrides win.
A suite without ``train.max_steps`` for a transfer mode gets the epoch schedule of
``harness.workloads.schedule``.

The demo's fit a laptop CPU: a narrower detector at 320 px, and 128 sampled RoIs per image (roi_align's CPU
backward was a third of a training step at the default 512).

Every suite fine-tunes (``finetune``, ``fewshot``) with the hard label loss only (``model.soft_weight=0``):
L_sl relates the labels of the concatenated upstream datasets; one downstream dataset has no such relation,
and with a single label its similarity row is all ones while L_sl's mean over R x n gives that lone label
n times the weight it had upstream. Measured on the demo (Raccoon, one label, 40 steps from the same
checkpoint): valid AP 0.05 -> 0.12 with L_sl, 0.30 -> 0.36 without. ``--set model.soft_weight=10`` restores it.

Fine-tuning has its own batch and learning rate, not the checkpoint's pretraining ones (a checkpoint's config
carries its ``data.batch_size``, e.g. 128 over 8 GPUs, which on one GPU gave Packages' 19 images one step an
epoch). ``odinw13`` takes GLIP's full-model ODinW fine-tune (microsoft/GLIP README, "ODinW / Custom Dataset
Fine-Tuning": ``SOLVER.IMS_PER_BATCH 4`` over its 4 GPUs; ``SOLVER.BASE_LR 0.0001`` of its ``glip_Swin_T_O365``
config; ``SOLVER.WARMUP_ITERS 0`` and 12 epochs in every ``configs/odinw_13/*.yaml``): a global batch of 4
(4 images a step on the one GPU of a transfer job), lr 1e-4, no warmup; the steps follow from the epochs
(``harness.workloads.schedule``; `harness sweep --dry-run` prints them). The demo keeps its own explicit schedule.

Pretraining: ``upstream`` pretrain jobs (and those `harness run --suite odinw13` plans before transferring)
take :data:`PAPER_R50`, the paper's ScaleDet-R run on L+C+O365+OID (Table C; Tables 1, 7, 8), which
``benchmarks/make_scaledet_sweeps.py`` writes into the paper's sweep files from the same record.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.job import OverrideValue

TRAIN_SIZE: dict[str, int] = {"r50": 640, "swin-t": 896, "swin-b": 896}  # paper §4.1: input size per backbone
PAPER_TEXT_ENCODER = "clip"  # CLIP ViT-B/32 (paper §4.2; supplementary, "Training details")
PAPER_BACKBONE_WEIGHTS = "in21k"  # backbones start from ImageNet-21k (paper §4.1; scaledet.pretrained says which)


@dataclass(frozen=True)
class PretrainSchedule:
    """A pretraining row of the paper's Table C: iterations, global batch, backbone (and its ImageNet-21k
    initialisation), text encoder."""

    steps: int
    batch: int  # global, all ranks together
    backbone: str = "r50"
    text_encoder: str = PAPER_TEXT_ENCODER
    weights: str = PAPER_BACKBONE_WEIGHTS

    def overrides(self) -> dict[str, OverrideValue]:
        """The row as spec overrides. Table C gives no decay steps: the preset's proportions (60k, 80k of 90k)."""
        return {"data.batch_size": self.batch, "data.train_size": TRAIN_SIZE[self.backbone],
                "model.backbone": self.backbone, "model.weights": self.weights, "text_encoder": self.text_encoder,
                "train.lr": 0.0002,
                "train.lr_steps": (self.steps * 2 // 3, self.steps * 8 // 9), "train.max_steps": self.steps}


PAPER_R50 = PretrainSchedule(750_000, 128)  # ScaleDet-R on LVIS+COCO+O365+OID (Table C)
CPU_DEMO: dict[str, OverrideValue] = {
    "model.fpn_channels": 128, "model.representation_size": 512, "model.min_size_test": 320,
    "model.max_size_test": 533, "model.box_batch_size_per_image": 128, "data.train_size": 320,
    "data.batch_size": 4, "data.num_workers": 0, "data.scale_range": (0.8, 1.2),
}
TRANSFER_DEFAULTS: dict[str, OverrideValue] = {"model.soft_weight": 0.0}
DEMO_FINETUNE: dict[str, OverrideValue] = {
    "train.lr": 0.0001, "train.max_steps": 40, "train.warmup_steps": 5, "train.lr_steps": (30,),
    "train.checkpoint_every": 20,
}
ODINW_FINETUNE: dict[str, OverrideValue] = {"data.batch_size": 4, "train.lr": 0.0001, "train.warmup_steps": 0}
SUITE_SETTINGS: dict[str, dict[str, dict[str, OverrideValue]]] = {
    "odinw13": {"finetune": ODINW_FINETUNE, "fewshot": ODINW_FINETUNE},
    "upstream": {"pretrain": PAPER_R50.overrides()},
    "demo": {
        "pretrain": {**CPU_DEMO, "train.max_steps": 120, "train.warmup_steps": 10, "train.lr_steps": (100,),
                     "train.checkpoint_every": 40},
        "finetune": DEMO_FINETUNE,
        "fewshot": DEMO_FINETUNE,
    },
}


def suite_overrides(suite: str, mode: str) -> dict[str, OverrideValue]:
    """The settings suite ``suite`` gives ``mode`` jobs (empty when it gives none)."""
    defaults = TRANSFER_DEFAULTS if mode in ("finetune", "fewshot") else {}
    return {**defaults, **SUITE_SETTINGS.get(suite, {}).get(mode, {})}
