"""Workloads: the kinds of job the harness runs, each one :class:`~harness.workloads.base.Workload` object.

``scaledet`` is the detector; ``hf`` the zero-shot detectors of Hugging Face ``transformers``; ``toy`` a small real stand-in used by the tests of the launch machinery. The CLI
turns a workload name into its object here, once, and hands the object on.
"""

from __future__ import annotations

from harness.workloads.base import Workload
from harness.workloads.hf import HF
from harness.workloads.scaledet import SCALEDET
from harness.workloads.toy import TOY
from scaledet.names import check_name

WORKLOADS: dict[str, Workload] = {w.name: w for w in (SCALEDET, HF, TOY)}


def get_workload(name: str) -> Workload:
    """The workload named ``name`` (a clear error with the known names otherwise)."""
    return WORKLOADS[check_name("workload", name, WORKLOADS)]
