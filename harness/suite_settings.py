"""Per-suite job settings, written into the planned specs' overrides (so they are part of every job id and
result record, and a changed default never silently reuses an old cell). The spec's own overrides win.

The demo's fit a laptop CPU: a narrower detector at 320 px, and 128 sampled RoIs per image (roi_align's CPU
backward was a third of a training step at the default 512).
"""

from __future__ import annotations

from harness.jobs import OverrideValue

CPU_DEMO: dict[str, OverrideValue] = {
    "model.fpn_channels": 128, "model.representation_size": 512, "model.min_size_test": 320,
    "model.max_size_test": 533, "model.box_batch_size_per_image": 128, "data.train_size": 320,
    "data.batch_size": 4, "data.num_workers": 0, "data.scale_range": "[0.8, 1.2]",
}
DEMO_FINETUNE: dict[str, OverrideValue] = {
    "train.max_steps": 40, "train.warmup_steps": 5, "train.lr_steps": "[30]", "train.checkpoint_every": 20,
}
FINETUNE_EPOCHS = 12  # default transfer schedule where a suite gives none (GLIP's full-data fine-tune)
SUITE_SETTINGS: dict[str, dict[str, dict[str, OverrideValue]]] = {
    "demo": {
        "pretrain": {**CPU_DEMO, "train.max_steps": 120, "train.warmup_steps": 10, "train.lr_steps": "[100]",
                     "train.checkpoint_every": 40},
        "finetune": DEMO_FINETUNE,
        "fewshot": DEMO_FINETUNE,
    },
}


def suite_overrides(suite: str, mode: str) -> dict[str, OverrideValue]:
    """The settings suite ``suite`` gives ``mode`` jobs (empty when it gives none)."""
    return dict(SUITE_SETTINGS.get(suite, {}).get(mode, {}))
