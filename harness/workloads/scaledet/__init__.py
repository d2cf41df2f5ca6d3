"""Workload ``scaledet``: the detector's pretrain, direct and trained transfer jobs (``work``), their GPU-hour
estimates (``budget``)."""

from __future__ import annotations

from harness.job import TRAINED_TRANSFER_MODES
from harness.workloads.base import Workload
from harness.workloads.methods import METHODS
from harness.workloads.scaledet.budget import estimate_cells, rank_batches
from harness.workloads.scaledet.rehearsal import REHEARSAL_WORK, rehearsal_inputs
from harness.workloads.scaledet.work import check_data, check_spec, direct, finetune, pretrain

SCALEDET = Workload(
    name="scaledet",
    work={"pretrain": pretrain, "direct": direct, **dict.fromkeys(TRAINED_TRANSFER_MODES, finetune)},
    methods=METHODS, check_spec=check_spec, check_data=check_data, estimate=estimate_cells,
    rank_batches=rank_batches, staged=True, uses_registry=True, reports=True, rehearsal_work=REHEARSAL_WORK,
    rehearsal_inputs=rehearsal_inputs)
