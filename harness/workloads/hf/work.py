"""Workload ``hf``: the ``direct`` (zero-shot) cell of an external ``transformers`` detector on a suite's dataset.

The cell's overrides: ``hf_model`` (repo id or absolute directory) and ``hf_revision`` (both set by ``harness run
--model hf:…``, so each model and revision is its own job id), ``prompts`` (``names``: the class names;
``glip``: GLIP's odinw_35 prompt overrides), and run settings that do not change results: ``device``,
``batch_size`` (default 4), ``workers`` (image-decoding processes, default 2), ``amp`` (fp16 autocast on CUDA,
default on).

The dataset is scored as ScaleDet's direct cells are (same split policy, images, COCO AP, per-class AP), with the
model's own post-processing at score :data:`SCORE_THRESH` and the protocol's detections per image
(``scaledet.protocol``, kind ``coco``). The record carries the model id, revision, family, ``transformers``
version, the texts given and the scoring settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.job import JobSpec
from harness.workloads.hf.families import declared_training, family_of
from harness.workloads.hf.inference import predict_external
from harness.workloads.hf.models import downloads_allowed, resolve
from harness.workloads.scaledet.work import files_sha, load_source
from scaledet.distributed import rank, resolve_device, world_size
from scaledet.errors import ConfigError
from scaledet.evaluation import coco_eval
from scaledet.names import check_name
from scaledet.protocol import scoring_settings

log = logging.getLogger(__name__)

# near zero, as the issue and GLIP/mmdetection evaluate grounding detectors: the protocol's per-image limit,
# not a score floor, decides what is kept (a lower threshold only extends the precision-recall curve)
SCORE_THRESH = 1e-4
SETTINGS: dict[str, type | tuple[type, ...]] = {
    "hf_model": str, "hf_revision": str, "prompts": str, "device": str, "batch_size": int, "workers": int,
    "amp": bool, "upstream": str,
}  # fmt: skip
DEFAULTS = {"prompts": "names", "batch_size": 4, "workers": 2, "amp": True}


def settings(spec: JobSpec) -> dict[str, Any]:
    """The spec's overrides, checked: known keys, right types, a model named."""
    found = {**DEFAULTS}
    for key, value in spec.overrides:
        check_name("override of workload hf", key, SETTINGS, f"job {spec.job_id}")
        if not isinstance(value, SETTINGS[key]) or (SETTINGS[key] is int and isinstance(value, bool)):
            raise ConfigError(f"job {spec.job_id}: override {key}={value!r}, expected {SETTINGS[key].__name__}")
        found[key] = value
    if not found.get("hf_model"):
        raise ConfigError(f"job {spec.job_id}: workload hf needs a model: harness run --model hf:<repo id or dir>")
    check_name("prompts setting", found["prompts"], ("names", "glip"))
    return found


def check_spec(spec: JobSpec) -> None:
    """Fail before anything runs: unknown settings, wrong types, no model (the workload's only mode is
    ``direct``: external models run zero-shot)."""
    settings(spec)


def direct(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    import transformers

    work = settings(spec)
    ref = resolve(work["hf_model"], work.get("hf_revision"), allow_download=downloads_allowed())
    family = family_of(ref.path)
    device = resolve_device(work.get("device"))
    loaded = family.load(ref.path, device, amp=bool(work["amp"]))
    source = load_source(spec.suite, spec.dataset, spec.split_policy, False, work["prompts"])
    texts = list(source.prompt_names or source.class_names)
    scoring = scoring_settings("coco")
    log.info("direct %s (%s) on %s: %d classes, %d images", ref.label, family.name, spec.dataset, len(texts),
             len(source.eval))
    detections = predict_external(family, loaded, source.eval, texts, threshold=SCORE_THRESH,
                                  detections_per_image=scoring.detections_per_image,
                                  batch_size=int(work["batch_size"]), workers=int(work["workers"]))
    if rank() != 0:
        return {"metrics": {}}
    found = coco_eval(source.eval.source, detections)
    log.info("direct %s on %s: AP %.4f", ref.label, spec.dataset, found["AP"])
    declared = declared_training(ref.name)
    model = {"id": ref.name, "revision": ref.revision, "label": ref.label, "family": family.name,
             "class": family.model_class, "transformers": transformers.__version__,
             "training_data": asdict(declared) if declared else None}
    return {
        "metrics": {k: float(v) for k, v in found.items() if k != "per_class" and isinstance(v, (int, float))},
        "per_class_ap": dict(found.get("per_class", {})),
        "config": {"model": model, "work": {**work, "texts": texts},
                   "scoring": {source.name: {**scoring.to_dict(), "score_thresh": SCORE_THRESH}},
                   "world_size": world_size()},
        "dataset_version": source.version, "dataset_sha": files_sha(source.files),
        "label_space_fingerprint": hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16],
        "text_encoder": f"hf:{ref.label}",
    }
