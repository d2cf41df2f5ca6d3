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
"""

from __future__ import annotations

from harness.job import OverrideValue

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
SUITE_SETTINGS: dict[str, dict[str, dict[str, OverrideValue]]] = {
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
