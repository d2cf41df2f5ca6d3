"""Workload ``hf``: zero-shot detectors of Hugging Face ``transformers`` (OWL-ViT, OWLv2, Grounding DINO,
MM-Grounding-DINO and the LLMDet checkpoints it loads, OmDet-Turbo) scored on a suite's datasets under the same
protocol as ScaleDet (``work``); weights from the cache or a local directory (``models``); one adapter per model
family (``families``)."""

from __future__ import annotations

from harness.workloads.base import Method, Workload
from harness.workloads.hf.work import check_spec, direct

EXTERNAL = Method("hf", preset="hf", joint=False, label="external (transformers)")

HF = Workload(name="hf", work={"direct": direct}, methods=(EXTERNAL,), check_spec=check_spec, uses_registry=True,
              reports=True, no_estimate="inference only, no published rate to estimate from")
