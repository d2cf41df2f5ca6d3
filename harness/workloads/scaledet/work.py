"""Workload ``scaledet``: the real jobs behind ``harness run`` (pretrain, direct and the trained transfer modes).

- ``pretrain``: train the detector jointly on the spec's datasets (``dataset`` = ``A+B+…``), their label
  spaces concatenated in the suite's upstream order; checkpoints in ``runs/<job id>/checkpoints``; scored on
  the evaluation split of every upstream dataset of the suite that is on disk (Table 1's grid: those it did not
  train on with their own label text), each with its own vocabulary and its kind's scoring settings
  (``scaledet.protocol``): ``AP/<dataset>`` each, ``AP`` their mean, ``AP_trained`` the mean over its own.
  With a ``pretrain_job`` or ``checkpoint`` override it starts from that model instead of ImageNet weights (the
  paper's Table 2 ``*`` rows: a multi-dataset model fine-tuned on each upstream dataset), with its text encoder.
- ``direct``: the starting checkpoint with the target dataset's own vocabulary (zero-shot transfer).
- ``finetune``: train from the checkpoint on the target's train split over its own vocabulary, score every
  ``train.checkpoint_every`` steps on ``valid``, keep the best, score it on the split policy's split.
- ``fewshot``: like finetune on a k-shot subset: GLIP's file for that k and seed when the dataset has one, else
  drawn with the seed (the record says which, with its image ids).
- ``linear`` / ``prompt`` (and ``linear-fewshot`` / ``prompt-fewshot``): like finetune (fewshot), training only
  the box classifiers (linear probing) or only the target's label embeddings (prompt tuning): ``train.tuning``
  (``scaledet.tuning``), set by the mode; a prompt-tuned cell scores with the embeddings it learned.

The starting checkpoint of a transfer job is the override ``pretrain_job`` (a pretrain job's id, found under
the same runs root), ``checkpoint`` (a path) or ``pretrained`` (not available offline). Other overrides:
``model.*``/``data.*``/``train.*`` config keys, ``text_encoder`` and ``text_weights`` (pretrain default ``minilm``; a
transfer job takes its starting checkpoint's, saved with its label space, unless these say otherwise, and records
which it used and from where), ``prompts`` (``names`` or ``glip``: GLIP's odinw_35 prompt overrides), ``upstream``
(a label for reports), ``device``.
Suite settings (``harness.plan.suite_settings``) are put into the specs' overrides by the plan, so they are part of
every job id and result record.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from harness.acquire.images import check_dataset_images
from harness.catalog import datasets as registry
from harness.job import FEWSHOT_MODES, TUNING_OF_MODE, JobSpec
from harness.workloads.fewshot import few_shot_subset
from harness.workloads.methods import METHODS
from harness.workloads.scaledet.scale import TOY_SCALE
from harness.workloads.schedule import Schedule
from scaledet import checkpoints as ckpt
from scaledet.config import Config, load_config, preset, with_overrides
from scaledet.data import CocoDataset
from scaledet.distributed import broadcast, rank, resolve_device, world_size
from scaledet.engine import check_choices, train
from scaledet.errors import CheckpointError, ConfigError, DataError, WeightsUnavailableError
from scaledet.evaluation import coco_eval
from scaledet.files import atomic_torch_save
from scaledet.inference import InferenceSettings, evaluate, predict
from scaledet.init_skip import init_skipped
from scaledet.labels import LabelSpace, encode_label_space
from scaledet.names import check_name
from scaledet.protocol import scoring_settings
from scaledet.text import EncoderSetting, build_text_encoder, setting_from_id
from scaledet.tuning import learned_label_space, parameter_counts, tuned_label_space

log = logging.getLogger(__name__)

METHOD_PRESETS = {m.name: m.preset for m in METHODS}  # method name -> scaledet.config preset
CONFIG_SECTIONS = ("model", "data", "train")
WORK_SETTINGS = ("upstream", "pretrain_job", "checkpoint", "pretrained", "text_encoder", "text_weights",
                 "prompts", "device", "protocol")


@dataclass(frozen=True)
class Source:
    """A dataset as a job uses it: training records, evaluation records, and the files they came from."""

    name: str
    class_names: tuple[str, ...]
    prompt_names: tuple[str, ...] | None
    train: CocoDataset | None
    eval: CocoDataset
    files: tuple[Path, ...]
    version: str
    metric: str = "coco"


# ---------------------------------------------------------------- settings and inputs


def settings(spec: JobSpec) -> tuple[dict[str, Any], list[str]]:
    """(work settings, config overrides ``section.key=value``) of a spec."""
    merged = dict(spec.overrides)
    work: dict[str, Any] = {}
    config: list[str] = []
    for key, value in merged.items():
        section = key.split(".", 1)[0]
        if section in CONFIG_SECTIONS and "." in key:
            config.append(f"{key}={value}" if isinstance(value, str) else f"{key}={json.dumps(value)}")
        else:
            work[check_name("override of workload scaledet", key, WORK_SETTINGS + tuple(
                f"{s}.<key>" for s in CONFIG_SECTIONS), f"job {spec.job_id}")] = value
    return work, config


def check_spec(spec: JobSpec) -> None:
    """Fail before anything runs when a spec's overrides name unknown settings or config keys, or wrong types."""
    _, overrides = settings(spec)
    tuning = spec.override("train.tuning")
    if spec.mode in TUNING_OF_MODE and tuning not in (None, TUNING_OF_MODE[spec.mode]):
        raise ConfigError(f"job {spec.job_id}: mode {spec.mode!r} trains '{TUNING_OF_MODE[spec.mode]}', not "
                          f"train.tuning={tuning!r}: pick the mode (linear, prompt, finetune or their few-shot kinds)")
    try:
        check_choices(with_overrides(preset(METHOD_PRESETS[spec.method]), overrides))
    except ConfigError as error:
        raise ConfigError(f"job {spec.job_id} ({spec.mode} {spec.dataset}): {error}") from None


def _scaled(cfg: Config) -> Config:
    """``cfg``, at toy scale in a rehearsal (``harness.workloads.scaledet.scale``)."""
    scale = TOY_SCALE.get()
    return scale.config(cfg) if scale else cfg


def _sampled(records: CocoDataset | None) -> CocoDataset | None:
    """``records``, a few images of them in a rehearsal."""
    scale = TOY_SCALE.get()
    return scale.sample(records) if scale and records is not None else records


def text_encoder(name: str, weights: str | None):
    """The text encoder setting ``name`` names (a stand-in over whole label spaces in a rehearsal); its
    ``setting`` goes into the label spaces it embeds, hence into checkpoints."""
    scale = TOY_SCALE.get()
    encoder = scale.encoder(name, weights) if scale else build_text_encoder(name, weights)
    if getattr(encoder, "setting", None) is None:  # stand-ins: transfer jobs rebuild the same stand-in
        encoder.setting = EncoderSetting(name, weights)
    return encoder


def check_data(specs: list[JobSpec]) -> None:
    """Before anything is submitted: the annotation files of the upstream datasets (LVIS, COCO, Objects365,
    OpenImages) the pretrain cells of ``specs`` read; one ``DataError`` naming all that is absent, where it was
    looked for, and ``--checkpoint`` as the way around pretraining."""
    from harness.catalog.upstream import missing_annotations

    jobs = [s for s in specs if s.mode == "pretrain" and registry.get_suite(s.suite).label_spaces_only]
    names = dict.fromkeys(n for s in jobs for n in upstream_order(s.suite, s.dataset.split("+")))
    missing = missing_annotations(list(names))
    if missing:
        raise DataError(
            f"upstream data for pretraining ({', '.join(f'job {s.job_id}: {s.method} on {s.dataset}' for s in jobs)}) "
            f"is missing: {'; '.join(missing)}. Put the datasets there (layouts: docs/upstream.md) or point the "
            "variables named at them; or skip pretraining and transfer from a checkpoint: --checkpoint PATH "
            "(e.g. runs/<pretrain job>/checkpoints/last.pt). Nothing was submitted")


def load_source(suite: str, name: str, split_policy: str, with_train: bool, prompts: str = "names") -> Source:
    """Records of dataset ``name`` of ``suite`` (ODinW-style from the registry, or an upstream dataset); a few
    images of each split in a rehearsal."""
    source = _load_source(suite, name, split_policy, with_train, prompts)
    return replace(source, train=_sampled(source.train), eval=_sampled(source.eval)) if TOY_SCALE.get() else source


def _load_source(suite: str, name: str, split_policy: str, with_train: bool, prompts: str) -> Source:
    if registry.get_suite(suite).label_spaces_only:
        from harness.catalog.upstream import load_upstream

        train_records = load_upstream(name, "train") if with_train else None
        val = load_upstream(name, "val")
        files = (val.annotation_file,) + ((train_records.annotation_file,) if train_records else ())
        return Source(name, val.dataset.category_names, upstream_texts(name, val.dataset.category_ids),
                      train_records.dataset if train_records else None, val.dataset, files, val.spec.title,
                      val.spec.metric)
    check_name("prompts setting", prompts, ("names", "glip"))
    spec = registry.get_dataset(name, suite)
    split = spec.eval_split(split_policy)
    eval_records = registry.load_split(spec, split)
    train_records = registry.load_split(spec, "train") if with_train else None
    for records in (eval_records, train_records):  # a missing or broken image fails now, not hours later
        if records is not None:
            check_dataset_images(records)
    files = tuple(spec.annotation_path(s) for s in (["train"] if with_train else []) + [split])
    prompt_names = spec.prompt_overrides if prompts == "glip" and spec.prompt_overrides else None
    return Source(name, spec.class_names, prompt_names, train_records, eval_records, files,
                  f"{spec.name}/{spec.variant or '-'}{' (embedded demo)' if spec.embedded else ''}")


def upstream_texts(name: str, category_ids: Sequence[int]) -> tuple[str, ...]:
    """The texts embedded for upstream dataset ``name``'s categories, in ``category_ids`` order: each class's
    cleaned form (``UpstreamClass.text``: LVIS ``bow_(weapon)`` -> ``bow (weapon)``), not its raw name."""
    from harness.catalog.upstream_labels import upstream_classes

    texts = {c.original_id: c.text for c in upstream_classes(name)}
    return tuple(texts[i] for i in category_ids)


def encode(source: Source, encoder) -> LabelSpace:
    return encode_label_space(source.class_names, source.name, encoder, prompt_names=source.prompt_names)


def files_sha(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def score(model, source: Source, label_space: LabelSpace, device, inference: InferenceSettings | None = None
          ) -> dict[str, Any] | None:
    """The source's metric on its evaluation split, scored with its own vocabulary (its slice of a joint
    ``label_space``) and its kind's settings (``scaledet.protocol``); ``scoring`` says which, and how the pass ran
    (``inference``, default :class:`InferenceSettings`'s). In a distributed job every rank predicts its share and
    rank 0 scores; ``None`` on the other ranks."""
    settings = scoring_settings(source.metric)
    inference = (inference or InferenceSettings()).on(resolve_device(device))  # recorded as it ran
    detections = predict(model, source.eval, label_space, device, settings, inference)
    if rank() != 0:
        return None
    if source.metric == "coco":
        found = coco_eval(source.eval.source, detections)
    elif source.metric == "lvis":
        from scaledet.metrics_lvis import lvis_eval

        found = lvis_eval(source.eval.source, detections, max_dets=settings.detections_per_image)
    else:
        from harness.catalog.upstream_labels import openimages_hierarchy
        from scaledet.metrics_openimages import openimages_eval

        result = openimages_eval(source.eval.source, detections, openimages_hierarchy())
        found = {**result, "AP": result["AP50"]}
    return {**found, "scoring": {**settings.to_dict(), "inference": inference.to_dict()}}


# ---------------------------------------------------------------- pretrain


def pretrain(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    work, overrides = settings(spec)
    cfg = _scaled(with_overrides(replace(preset(METHOD_PRESETS[spec.method]), train=replace(
        preset(METHOD_PRESETS[spec.method]).train, seed=spec.seed)), overrides))
    names = upstream_order(spec.suite, spec.dataset.split("+"))
    sources = [load_source(spec.suite, n, spec.split_policy, True, work.get("prompts", "names")) for n in names]
    start = _pretrain_start(work, run_dir)
    if start is None:
        setting = EncoderSetting(work.get("text_encoder", "minilm"), work.get("text_weights"))
    else:  # Table 2's '*': a pretrained model trained further on its datasets; its text encoder by default
        setting, origin = transfer_encoder(work, start[1]["label_space"], start[0])
        work = {**work, "text_encoder_from": origin, "start_checkpoint": str(start[0])}
    encoder = text_encoder(setting.name, setting.weights)
    if start is not None and encoder.id != start[1]["label_space"]["encoder_id"]:
        raise CheckpointError(f"checkpoint {start[0]} was trained with text encoder "
                              f"'{start[1]['label_space']['encoder_id']}', this job uses '{encoder.id}'")
    space = LabelSpace.concat([encode(s, encoder) for s in sources])  # carries the setting into the checkpoints
    device = resolve_device(work.get("device"))
    log.info("pretrain %s on %s: %d labels, %d steps%s", spec.method, "+".join(names), len(space),
             cfg.train.max_steps, f", from {start[0]}" if start else "")
    result = train(cfg, [s.train for s in sources], space, run_dir / "checkpoints", device=device,
                   init_state=start[1]["model"] if start else None)
    metrics: dict[str, float] = {}
    per_class: dict[str, float] = {}
    scoring: dict[str, Any] = {}
    others = [n for n in registry.get_suite(spec.suite).upstream if n not in names]
    for source in [*sources, *(_grid_source(spec, n, work, scoring) for n in others)]:
        if source is None:  # not on disk: 'missing' in the record, not an error
            continue
        own = space if source.name in names else encode(source, encoder)  # Table 1: every model on every dataset
        found = score(result.model, source, own, device, InferenceSettings.of(cfg))  # every rank predicts its share
        if found is None:
            continue
        metrics[f"AP/{source.name}"] = found["AP"]
        scoring[source.name] = found["scoring"]
        per_class.update({f"{source.name}/{k}": v for k, v in found.get("per_class", {}).items()})
    if rank() != 0:
        return {"metrics": {}}
    scored = [v for k, v in metrics.items() if k.startswith("AP/")]
    metrics["AP"] = sum(scored) / len(scored)
    metrics["AP_trained"] = sum(metrics[f"AP/{n}"] for n in names) / len(names)
    metrics["steps"] = float(result.step)
    work = {**work, "text_encoder": setting.name, "text_weights": setting.weights}
    return {"metrics": metrics, "per_class_ap": per_class, "config": {**cfg.to_dict(), "work": work, "scoring": scoring,
                                                              "world_size": world_size()},
            "dataset_version": ", ".join(s.version for s in sources),
            "dataset_sha": files_sha(tuple(f for s in sources for f in s.files)),
            "label_space_fingerprint": space.fingerprint, "text_encoder": encoder.id}


def _grid_source(spec: JobSpec, name: str, work: dict[str, Any], scoring: dict[str, Any]) -> Source | None:
    """The evaluation records of upstream dataset ``name``, which the pretrain cell did not train on but is scored
    on (Table 1's grid); ``None`` when they are not on disk, saying so in ``scoring``."""
    if registry.get_suite(spec.suite).label_spaces_only:
        from harness.catalog.upstream import has_split

        present = has_split(name, "val")
    else:
        dataset = registry.get_dataset(name, spec.suite)
        present = dataset.embedded or dataset.is_present()
    if not present:
        scoring[name] = {"missing": "not on disk (harness ls); scored on the datasets that are"}
        log.warning("pretrain %s: %s is not on disk; its Table 1 cell stays missing", spec.job_id, name)
        return None
    return load_source(spec.suite, name, spec.split_policy, False, work.get("prompts", "names"))


def upstream_order(suite: str, names: list[str]) -> list[str]:
    """``names`` in the suite's upstream order (the paper's L, C, O365, OID; the demo's own), others after."""
    order = registry.get_suite(suite).upstream
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


# ---------------------------------------------------------------- transfer


def _pretrain_start(work: dict[str, Any], run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(path, state) of the checkpoint a pretrain cell starts from (``pretrain_job`` or ``checkpoint``), or None: a
    pretrain cell normally starts from its backbone's ImageNet weights."""
    if not (work.get("pretrain_job") or work.get("checkpoint")):
        return None
    path = starting_checkpoint(work, run_dir)
    return path, ckpt.load_checkpoint(path)


def starting_checkpoint(work: dict[str, Any], run_dir: Path) -> Path:
    """The checkpoint a transfer job starts from (see the module docstring)."""
    if work.get("pretrain_job"):
        path = run_dir.parent / str(work["pretrain_job"]) / "checkpoints" / ckpt.LAST
        if not path.is_file():
            raise CheckpointError(f"pretrain job {work['pretrain_job']} has no checkpoint at {path}: run it first "
                                  "(`harness run` does so when no --checkpoint is given)")
        return path
    if work.get("checkpoint"):
        path = Path(str(work["checkpoint"])).expanduser()
        if path.is_dir():
            path = path / ckpt.LAST
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist (override 'checkpoint')")
        return path
    if work.get("pretrained"):
        raise WeightsUnavailableError(
            f"pretrained model '{work['pretrained']}' is not available offline and no download of named detector "
            "checkpoints is configured; pass --checkpoint PATH to a checkpoint file (runs/<pretrain job>/checkpoints/"
            "last.pt of a `harness run --mode pretrain`)")
    raise ConfigError("a transfer job needs a starting checkpoint: --checkpoint PATH, or a suite with upstream "
                      "datasets (its pretrain job runs first)")


def transfer_encoder(work: dict[str, Any], saved: dict[str, Any], path: Path) -> tuple[EncoderSetting, str]:
    """(text encoder setting, where it comes from: ``overrides`` or ``checkpoint``) of a transfer job.

    The overrides' ``text_encoder`` wins; else the setting saved with the checkpoint's label space (or, for a
    checkpoint saved without one, what its encoder id says), with the overrides' ``text_weights`` if given (the
    same weights from another place).
    """
    if work.get("text_encoder"):
        return EncoderSetting(str(work["text_encoder"]), work.get("text_weights")), "overrides"
    saved_id = str(saved["encoder_id"])
    stored = EncoderSetting.from_state(saved.get("encoder_setting")) or setting_from_id(saved_id)
    if stored is None:
        raise ConfigError(f"checkpoint {path} used text encoder '{saved_id}' and does not say how to build it: pass "
                          "--set text_encoder=NAME (clip, openclip or openclip:<model>) and text_weights if needed")
    if work.get("text_weights") is not None:
        stored = replace(stored, weights=str(work["text_weights"]))
    return stored, "checkpoint"


def transfer_inputs(spec: JobSpec, run_dir: Path, with_train: bool):
    """(work settings, with the text encoder setting used; checkpoint state, config, target source, target label
    space, text encoder id, checkpoint path)."""
    work, overrides = settings(spec)
    path = starting_checkpoint(work, run_dir)
    state = ckpt.load_checkpoint(path)
    cfg = load_config(state["config"])
    cfg = _scaled(with_overrides(replace(cfg, train=replace(preset(cfg.method).train, seed=spec.seed)), overrides))
    saved_encoder = state["label_space"]["encoder_id"]
    setting, origin = transfer_encoder(work, state["label_space"], path)
    work = {**work, "text_encoder": setting.name, "text_weights": setting.weights, "text_encoder_from": origin}
    encoder = text_encoder(setting.name, setting.weights)
    if encoder.id != saved_encoder:
        raise CheckpointError(f"checkpoint {path} was trained with text encoder '{saved_encoder}', this job uses "
                              f"'{encoder.id}': label embeddings would not match the head")
    source = load_source(spec.suite, spec.dataset, spec.split_policy, with_train, work.get("prompts", "names"))
    return work, state, cfg, source, encode(source, encoder), encoder.id, path


def _transfer_output(spec, work, cfg, source, space, encoder_id, found, path, **extra) -> dict[str, Any]:
    metrics = {k: float(v) for k, v in found.items() if k != "per_class" and isinstance(v, (int, float))}
    metrics.update(extra.pop("metrics", {}))
    schedule = {k: extra.pop(k) for k in ("schedule", "tuning") if k in extra}  # what ran, into the config
    return {"metrics": metrics, "per_class_ap": dict(found.get("per_class", {})),
            "config": {**cfg.to_dict(), **schedule, "work": {**work, "start_checkpoint": str(path)},
                       "scoring": {source.name: found["scoring"]}, "world_size": world_size()},
            "dataset_version": source.version, "dataset_sha": files_sha(source.files),
            "label_space_fingerprint": space.fingerprint, "text_encoder": encoder_id, **extra}


def direct(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    work, state, cfg, source, space, encoder_id, path = transfer_inputs(spec, run_dir, with_train=False)
    from scaledet.detector import build_detector

    with init_skipped():  # every weight comes from the checkpoint next
        model = build_detector(cfg.model, LabelSpace.from_state(state["label_space"]), load_weights=False)
    ckpt.load_model_weights(model, state)
    device = resolve_device(work.get("device"))
    found = score(model, source, space, device, InferenceSettings.of(cfg))
    if found is None:  # a rank other than 0 of a distributed job: it predicted its share
        return {"metrics": {}}
    log.info("direct %s on %s: AP %.4f", spec.method, spec.dataset, found["AP"])
    return _transfer_output(spec, work, cfg, source, space, encoder_id, found, path)


def finetune(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    if registry.get_suite(spec.suite).label_spaces_only:
        raise ConfigError(f"suite '{spec.suite}' holds upstream datasets: they are pretrained on, not fine-tuned to")
    work, state, cfg, source, space, encoder_id, path = transfer_inputs(spec, run_dir, with_train=True)
    train_set, image_ids, valid, extra = source.train, [], None, {}
    if spec.mode in FEWSHOT_MODES:
        few = few_shot_subset(registry.get_dataset(spec.dataset, spec.suite), train_set, int(spec.shots or 0),
                              spec.seed)
        train_set, valid, extra = few.train, few.valid, {"fewshot_subset": few.record()}
        image_ids = sorted(int(img["id"]) for img in train_set.images)
        log.info("fewshot %d-shot, seed %d: %d training images (%s)", spec.shots, spec.seed, len(image_ids),
                 few.source)
    plan = Schedule.of(spec)
    cfg = _scaled(plan.apply(cfg, len(train_set)))
    cfg = replace(cfg, train=replace(cfg.train, tuning=TUNING_OF_MODE[spec.mode]))
    extra["schedule"] = plan.record(len(train_set), cfg.data.batch_size)
    device = resolve_device(work.get("device"))
    best = select_on_valid(cfg, spec, train_set, space, state, run_dir, device, valid)
    from scaledet.detector import build_detector

    with init_skipped():  # every weight comes from the selected state next
        model = build_detector(cfg.model, space, load_weights=False)
    ckpt.load_model_weights(model, {"model": best["state"], "label_space": space.to_state()})
    vocabulary = space if best.get("embeddings") is None else tuned_label_space(space, best["embeddings"])
    found = score(model, source, vocabulary, device, InferenceSettings.of(cfg))
    if found is None:  # a rank other than 0: it trained and predicted its share
        return {"metrics": {}}
    log.info("%s %s on %s: best step %d (valid AP %.4f), AP %.4f", spec.mode, spec.method, spec.dataset,
             best["step"], best["valid_ap"], found["AP"])
    extra["tuning"] = {"tuning": cfg.train.tuning, **best.get("parameters", {}),
                       **({"learned_label_space": vocabulary.encoder_id} if vocabulary is not space else {})}
    return _transfer_output(spec, work, cfg, source, space, encoder_id, found, path, image_ids=image_ids,
                            metrics={"best_step": float(best["step"]), "valid_AP_best": best["valid_ap"]}, **extra)


def select_on_valid(cfg: Config, spec: JobSpec, train_set: CocoDataset, space: LabelSpace,
                    start: dict[str, Any], run_dir: Path, device, valid: CocoDataset | None = None
                    ) -> dict[str, Any]:
    """Train in ``checkpoint_every`` chunks (each resumes exactly), score each on ``valid`` (default: the
    dataset's valid split; a few-shot cell: GLIP's val file when there is one), keep the best: its weights, and
    the label embeddings it learned (prompt tuning; ``None`` otherwise).

    Progress (steps scored, the best state) is saved atomically as ``selection.pt`` beside the checkpoints, so
    a requeued job neither repeats an evaluation nor loses the best state.
    """
    if valid is None:
        valid = registry.load_split(registry.get_dataset(spec.dataset, spec.suite), "valid")
    valid = _sampled(valid)
    out_dir, progress_path = run_dir / "checkpoints", run_dir / "selection.pt"
    progress = (torch.load(progress_path, weights_only=True) if progress_path.is_file()
                else {"scored": {}, "step": -1, "valid_ap": -1.0, "state": None})
    if progress["scored"]:
        log.info("model selection resumed from %s: steps %s scored, best valid AP %.4f at step %d", progress_path,
                 ", ".join(str(k) for k in sorted(progress["scored"])), progress["valid_ap"], progress["step"])
    every = max(1, cfg.train.checkpoint_every)
    for stop in [*range(every, cfg.train.max_steps, every), cfg.train.max_steps]:
        if stop in progress["scored"]:
            continue
        chunk = replace(cfg, train=replace(cfg.train, max_steps=stop))
        result = train(chunk, [train_set], space, out_dir, device=device, init_state=start["model"])
        progress["parameters"] = parameter_counts(result.model)  # trainable and frozen, as this chunk trained
        learned = learned_label_space(result.model, space)  # prompt tuning: the embeddings it learned
        found = evaluate(result.model, valid, learned, device, inference=InferenceSettings.of(cfg))  # sharded
        valid_ap = broadcast(float(found["AP"]) if found is not None else None)
        progress["scored"][stop] = valid_ap  # every rank keeps the same progress (their weights are equal)
        if progress["state"] is None or valid_ap > progress["valid_ap"]:
            progress.update(step=stop, valid_ap=valid_ap, state=copy.deepcopy(result.model.state_dict()),
                            embeddings=None if learned is space else learned.embeddings.clone())
        log.info("step %d: valid AP %.4f (best %.4f at step %d)", stop, valid_ap, progress["valid_ap"],
                 progress["step"])
        if rank() == 0:
            atomic_torch_save(progress, progress_path)
    return progress
