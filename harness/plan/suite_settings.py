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
epoch). ``odinw13`` and ``odinw35`` take GLIP's full-model ODinW fine-tune (microsoft/GLIP README, "ODinW / Custom Dataset
Fine-Tuning": ``SOLVER.IMS_PER_BATCH 4`` over its 4 GPUs; ``SOLVER.BASE_LR 0.0001`` of its ``glip_Swin_T_O365``
config; ``SOLVER.WARMUP_ITERS 0`` and 12 epochs in every ``configs/odinw_13/*.yaml``): a global batch of 4
(4 images a step on the one GPU of a transfer job), lr 1e-4, no warmup; the steps follow from the epochs
(``harness.workloads.schedule``; `harness sweep --dry-run` prints them). The demo keeps its own explicit schedule.

Pretraining: ``upstream`` pretrain jobs (and those `harness run --suite odinw13` plans before transferring)
take :data:`PAPER_R50`, the paper's ScaleDet-R run on L+C+O365+OID (Table C; Tables 1, 7, 8), which
``benchmarks/make_scaledet_sweeps.py`` writes into the paper's sweep files from the same record.

Recipes (:data:`RECIPES`): ``scaledet``, the paper's (Adam at lr 2e-4, large-scale jitter: the presets' defaults),
and ``unidet``, the setting of the paper's Table 3 comparison to UniDet ("the same ResNet50 backbone, SGD optimizer
and standard data augmentation in the Detectron2 codebase"), taken from UniDet's configs (xingyizhou/UniDet,
``configs/Base-CRCNN-COCO.yaml`` and detectron2's defaults it inherits): SGD, momentum 0.9, weight decay 1e-4,
base lr 0.01 at batch 16, 4,000 warm-up iterations from factor 0.00025, shorter side drawn from 640..800 (step 32),
longer side <= 1333, horizontal flips; ImageNet-1k R50. Its schedules: :data:`UNIDET_SINGLE` (the 2x of UniDet's
single-dataset configs, 180k iterations, decay at 120k and 160k) and :data:`UNIDET_MULTIPLE` (the 8x of its
``Partitioned_COI_R50_8x``, 720k iterations, decay at 660k and 700k, run here in one go where UniDet continued a
6x run for 2x more).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.job import TRAINED_TRANSFER_MODES, TUNING_OF_MODE, OverrideValue

TRAIN_SIZE: dict[str, int] = {"r50": 640, "swin-t": 896, "swin-b": 896}  # paper §4.1: input size per backbone
PAPER_TEXT_ENCODER = "clip"  # CLIP ViT-B/32 (paper §4.2; supplementary, "Training details")
PAPER_BACKBONE_WEIGHTS = "in21k"  # backbones start from ImageNet-21k (paper §4.1; scaledet.pretrained says which)
PAPER_DETECTOR = "centernet2"  # the paper's detector (§4.1): CenterNet2 with a 3-stage cascade
UNIDET_MIN_SIZES = (640, 672, 704, 736, 768, 800)
RECIPES: dict[str, dict[str, OverrideValue]] = {
    "scaledet": {"train.lr": 0.0002},  # Adam, large-scale jitter: the presets' own
    "unidet": {"train.optimizer": "sgd", "train.lr": 0.01, "train.momentum": 0.9, "train.weight_decay": 0.0001,
               "train.warmup_steps": 4000, "train.warmup_factor": 0.00025, "data.augmentation": "standard",
               "data.train_min_sizes": UNIDET_MIN_SIZES, "data.train_max_size": 1333},
}


@dataclass(frozen=True)
class PretrainSchedule:
    """A pretraining row of the paper's Table C: iterations, global batch, backbone (and its ImageNet-21k
    initialisation), detector (CenterNet2, the paper's), text encoder; its recipe (:data:`RECIPES`) and decay steps where they are not the paper's."""

    steps: int
    batch: int  # global, all ranks together
    backbone: str = "r50"
    text_encoder: str = PAPER_TEXT_ENCODER
    weights: str = PAPER_BACKBONE_WEIGHTS
    detector: str = PAPER_DETECTOR
    recipe: str = "scaledet"
    lr_steps: tuple[int, ...] | None = None  # None: the preset's proportions (60k, 80k of 90k)

    def overrides(self) -> dict[str, OverrideValue]:
        """The row as spec overrides. Table C gives no decay steps: the preset's proportions (60k, 80k of 90k)."""
        lsj = {"data.train_size": TRAIN_SIZE[self.backbone]} if self.recipe == "scaledet" else {}
        return {"data.batch_size": self.batch, **lsj, "model.backbone": self.backbone, "model.detector": self.detector,
                "model.weights": self.weights,
                "text_encoder": self.text_encoder, **RECIPES[self.recipe],
                "train.lr_steps": self.lr_steps or (self.steps * 2 // 3, self.steps * 8 // 9),
                "train.max_steps": self.steps}


PAPER_R50 = PretrainSchedule(750_000, 128)  # ScaleDet-R on LVIS+COCO+O365+OID (Table C)
UNIDET_SINGLE = PretrainSchedule(180_000, 16, weights="default", recipe="unidet", lr_steps=(120_000, 160_000))
UNIDET_MULTIPLE = PretrainSchedule(720_000, 16, weights="default", recipe="unidet", lr_steps=(660_000, 700_000))
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
# linear probing and prompt tuning train a few thousand values (the box classifiers, the label embeddings): at
# the full fine-tune's lr 1e-4 prompt tuning barely moved the demo's embeddings (Mushrooms valid AP 0.097, 0.098);
# at 1e-3 both beat direct transfer on Raccoon (docs/harness.md, "Transfer modes"). Our choice, not GLIP's.
PROBE_LR: dict[str, OverrideValue] = {"train.lr": 0.001}


def _transfer(settings: dict[str, OverrideValue]) -> dict[str, dict[str, OverrideValue]]:
    """``settings`` for every trained transfer mode, at :data:`PROBE_LR` for linear probing and prompt tuning."""
    return {mode: {**settings, **(PROBE_LR if TUNING_OF_MODE[mode] != "full" else {})}
            for mode in TRAINED_TRANSFER_MODES}


SUITE_SETTINGS: dict[str, dict[str, dict[str, OverrideValue]]] = {
    "odinw13": _transfer(ODINW_FINETUNE),
    "odinw35": _transfer(ODINW_FINETUNE),
    "upstream": {"pretrain": PAPER_R50.overrides()},
    "demo": {
        "pretrain": {**CPU_DEMO, "train.max_steps": 120, "train.warmup_steps": 10, "train.lr_steps": (100,),
                     "train.checkpoint_every": 40},
        **_transfer(DEMO_FINETUNE),
    },
}


def suite_overrides(suite: str, mode: str) -> dict[str, OverrideValue]:
    """The settings suite ``suite`` gives ``mode`` jobs (empty when it gives none)."""
    defaults = TRANSFER_DEFAULTS if mode in TRAINED_TRANSFER_MODES else {}
    return {**defaults, **SUITE_SETTINGS.get(suite, {}).get(mode, {})}
