"""The methods of the results grid, one :class:`~harness.workloads.base.Method` record each.

Adding a method is one record here (and, when it needs new detector settings, a preset in
``scaledet.config``); planning, the workloads, budgets and report tables all read these records.
"""

from __future__ import annotations

from harness.workloads.base import Method

SCALEDET = Method("scaledet", preset="scaledet", joint=True, label="ScaleDet")
# ablation without the soft label loss L_sl (paper Table 4 / 8b "L_hl")
SCALEDET_HARD = Method("scaledet-hard", preset="scaledet-hl", joint=True, label="L_hl", ablation="no-soft-loss")
# the paper's baseline: one detector per upstream dataset, hard label loss only
BASELINE = Method("baseline", preset="baseline", joint=False, label="baseline", ablation="single-dataset")

METHODS: tuple[Method, ...] = (SCALEDET, SCALEDET_HARD, BASELINE)
METHOD_NAMES: tuple[str, ...] = tuple(m.name for m in METHODS)
