"""Method configs: frozen dataclasses for model / data / train settings, presets and strict loading.

``load_config({"preset": "scaledet", "train": {"max_steps": 100}})`` starts from a preset and applies the
given keys; an unknown key fails naming the valid ones ("did you mean ..."). ``with_overrides(cfg,
["train.lr=1e-4"])`` applies ``--set``-style overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scaledet.errors import ConfigError
from scaledet.names import did_you_mean
from scaledet.precision import LEGACY_AMP, check_mode


@dataclass(frozen=True)
class ModelConfig:
    """The detector: its kind, backbone, FPN width, ScaleDet head and inference settings."""

    detector: str = "faster_rcnn"  # "faster_rcnn" (torchvision, one RoI stage) or "centernet2" (the paper's, §4.1)
    backbone: str = "effnet-lite0"
    weights: str | None = "default"  # "default" (ImageNet-1k), "in21k" (ImageNet-21k), a path, None = random init
    fpn_channels: int = 256
    representation_size: int = 1024
    tau: float = 0.02
    soft_weight: float = 10.0  # lambda of eq. 8; 0 = hard label loss only
    prior_prob: float = 0.01
    min_size_test: int = 800
    max_size_test: int = 1333
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_image: int = 100
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    # Federated loss (Detic / CenterNet2's LVIS recipe; not in the ScaleDet paper, hence off): eq. 6 of a
    # batch covers only its ground-truth classes plus negatives drawn with probability ~ image_count ** 0.5
    federated_loss: bool = False
    federated_classes: int = 50  # classes per batch under the federated loss (Detic's fed_loss_num_cat)
    # centernet2 only: convolutions in the first stage's tower (CenterNet2's 4; fewer for a CPU-sized model) and the
    # cascade's IoU thresholds, one RoI stage each (CenterNet2's 0.6 / 0.7 / 0.8)
    proposal_convs: int = 4
    cascade_ious: tuple[float, ...] = (0.6, 0.7, 0.8)


@dataclass(frozen=True)
class DataConfig:
    """Inputs: for training, the augmentation (the paper's large-scale jitter crop, or detectron2's standard
    multi-scale resize), flips, repeat factor sampling, loader; for prediction, the loader and batch."""

    augmentation: str = "lsj"  # "lsj": large-scale jitter (paper §4.1); "standard": detectron2's (Table 3, UniDet)
    train_size: int = 640  # lsj: the square canvas
    scale_range: tuple[float, float] = (0.1, 2.0)  # lsj: the jitter range
    train_min_sizes: tuple[int, ...] = (640, 672, 704, 736, 768, 800)  # standard: shorter side drawn from these
    train_max_size: int = 1333  # standard: longer side at most
    hflip_prob: float = 0.5
    repeat_threshold: float = 0.001  # LVIS-style t; 0 disables repeat factor sampling
    repeat_factors: str = "combined"  # category frequencies over the union of datasets (the paper's), or per_dataset
    batch_size: int = 8  # global, all ranks together (detectron2's IMS_PER_BATCH): each loads batch_size / world size
    num_workers: int = 2
    # training loader (scaledet.engine; docs/library.md "Training input pipeline"): page-locked batches so host->GPU
    # copies overlap compute ("auto": on when training on CUDA), worker processes kept alive between iterations and
    # batches each worker loads ahead (both only with num_workers > 0)
    pin_memory: str | bool = "auto"
    persistent_workers: bool = True
    prefetch_factor: int = 2
    single_dataset: bool = False  # the baseline trains on exactly one dataset
    # prediction passes (scaledet.inference): images per forward pass, decoding workers, mixed precision (CUDA only);
    # "auto" picks by device (scaledet.inference.AUTO_SETTINGS: one image and no workers on a CPU, 4 and 2 on a GPU)
    test_batch_size: int | str = "auto"
    test_workers: int | str = "auto"
    test_amp: str = "off"  # scaledet.precision.AMP_MODES; "off" scores in float32 as the paper's detectron2 does


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser (Adam, or SGD with momentum) and schedule, clipping, AMP, checkpointing."""

    lr: float = 2e-4
    optimizer: str = "adam"  # "adam" (the paper's) or "sgd" (Table 3's UniDet setting), see scaledet.engine
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    max_steps: int = 90000
    warmup_steps: int = 1000
    warmup_factor: float = 0.001
    lr_steps: tuple[int, ...] = (60000, 80000)
    gamma: float = 0.1
    clip_norm: float = 1.0  # 0 disables gradient clipping
    amp: str = "fp16"  # scaledet.precision.AMP_MODES, CUDA only: "fp16" (+ GradScaler, the paper's), "bf16", "off"
    channels_last: bool = False  # NHWC weights and inputs for convolutional backbones (no-op for swin)
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3  # newest step checkpoints kept on disk; 0 keeps all
    seed: int = 0
    tuning: str = "full"  # scaledet.tuning.TUNINGS: what trains ("full", "linear" probing, "prompt" tuning)


@dataclass(frozen=True)
class Config:
    """One method: a name and its model, data and train settings."""

    method: str = "scaledet"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-ready dict (tuples become lists)."""
        return _plain(dataclasses.asdict(self))


PRESETS: dict[str, Config] = {
    "scaledet": Config(method="scaledet"),
    "scaledet-hl": Config(method="scaledet-hl", model=ModelConfig(soft_weight=0.0)),
    "baseline": Config(method="baseline", model=ModelConfig(soft_weight=0.0), data=DataConfig(single_dataset=True)),
}


def preset(name: str) -> Config:
    """The named preset; an unknown name fails listing the valid ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, PRESETS)}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


def load_config(source: dict[str, Any] | str | Path) -> Config:
    """A config from a dict or YAML file: ``preset`` (default "scaledet") plus strictly checked sections."""
    where = "config"
    if not isinstance(source, dict):
        where = str(source)
        try:
            source = yaml.safe_load(Path(source).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read config {where}: {error}") from error
        if not isinstance(source, dict):
            raise ConfigError(f"{where}: expected a mapping at top level")
    data = dict(source)
    base = preset(str(data.pop("preset", "scaledet")))
    return _merge(base, data, where)


def with_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` text overrides (values parsed as YAML: ``1e-4``, ``[1, 2]``, ``null``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        dotted, raw = item.split("=", 1)
        cfg = apply_overrides(cfg, {dotted.strip(): yaml.safe_load(raw)}, f"override '{item}'")
    return cfg


def apply_overrides(cfg: Config, overrides: Mapping[str, Any], where: str = "overrides") -> Config:
    """Apply typed ``{"section.key": value}`` overrides (as :func:`typed_override` gives them)."""
    for dotted, value in overrides.items():
        nested: dict[str, Any] = {}
        node = nested
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        cfg = _merge(cfg, nested, where if len(overrides) == 1 else f"{where}: {dotted}")
    return cfg


def typed_override(key: str, value: Any) -> Any:
    """``value`` in the type of config field ``key`` (``section.name``): text parsed as YAML where the field is not a
    string, lists as tuples, integers where the field is an integer. Parsing happens once, where overrides enter
    (the CLI, sweep files); a key that names no config field is returned as given (it is checked with the job)."""
    section, _, name = key.partition(".")
    part = getattr(Config(), section, None) if name else None
    if not dataclasses.is_dataclass(part) or name not in {f.name for f in dataclasses.fields(part)}:
        return tuple(value) if isinstance(value, list) else value
    if key in _FIELD_VALUES:  # checked now; a legacy true/false stays as given (the job ids it made stay the same)
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[value.strip().lower()]
        _field_value(key, value, "override")
        return value
    current = getattr(part, name)
    if isinstance(value, str) and current is not None and not isinstance(current, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"override {key}: cannot parse {value!r}: {error}") from None
    return _coerce(value, current, f"override {key}")


_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True}  # as YAML reads them


def _amp_mode(value: Any) -> str:
    """``train.amp``: one of ``scaledet.precision.AMP_MODES``. The ``true``/``false`` of configs written before the
    modes existed (old files, sweep overrides, checkpoints' and records' stored configs) read as ``"fp16"`` (what
    ``true`` did: float16 autocast with a gradient scaler, on CUDA) and ``"off"``."""
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        value = _BOOL_WORDS[value.strip().lower()]
    if isinstance(value, bool):
        return LEGACY_AMP[value]
    try:
        return check_mode(value)
    except ConfigError as error:
        raise ConfigError(f"{error} (true/false of older configs mean fp16/off)") from None


def _pin_memory(value: Any) -> str | bool:
    """``data.pin_memory``: ``"auto"`` (on when training on CUDA), ``true`` or ``false``."""
    if isinstance(value, str) and value.strip().lower() in (*_BOOL_WORDS, "off", "auto"):
        value = {**_BOOL_WORDS, "off": False, "auto": "auto"}[value.strip().lower()]
    if value == "auto" or isinstance(value, bool):
        return value
    raise ConfigError(f"data.pin_memory is {value!r}; expected auto, true or false")


def auto_or_count(key: str, value: Any, minimum: int) -> str | int:
    """``"auto"`` or a whole number >= ``minimum`` (the value of setting ``key``, which an error names)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if not isinstance(value, bool):
        try:
            number = int(value) if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            number = None
        if number is not None and number >= minimum:
            return number
    raise ConfigError(f"{key} is {value!r}; expected auto or a whole number >= {minimum}")


# fields whose values are more than their type: "section.name" -> the value as the config holds it (ConfigError
# naming the key and the valid values otherwise)
COUNT_MINIMUMS = {"data.test_batch_size": 1, "data.test_workers": 0}  # settings that take "auto" or a count
_FIELD_VALUES = {"train.amp": _amp_mode, "data.pin_memory": _pin_memory,
                 **{key: lambda value, key=key: auto_or_count(key, value, COUNT_MINIMUMS[key]) for key in COUNT_MINIMUMS}}
_SECTIONS = {ModelConfig: "model", DataConfig: "data", TrainConfig: "train"}


def _field_value(key: str, value: Any, where: str) -> Any:
    try:
        return _FIELD_VALUES[key](value)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _merge(obj: Any, updates: dict[str, Any], where: str) -> Any:
    if not isinstance(updates, dict):
        raise ConfigError(f"{where}: expected a mapping for {type(obj).__name__}, got {updates!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in updates.items():
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key '{key}' in {type(obj).__name__}{did_you_mean(key, fields)}; "
                f"valid: {', '.join(fields)}"
            )
        current = getattr(obj, key)
        dotted = f"{_SECTIONS.get(type(obj))}.{key}"
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, f"{where}: {key}")
        elif dotted in _FIELD_VALUES:  # its message names the key: "override 'x': train.amp is ..."
            changes[key] = _field_value(dotted, value, where.removesuffix(f": {_SECTIONS[type(obj)]}"))
        else:
            changes[key] = _coerce(value, current, f"{where}: {key}")
    return dataclasses.replace(obj, **changes)


def _coerce(value: Any, current: Any, where: str) -> Any:
    if value is None or current is None:
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    if isinstance(current, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from error
        if isinstance(current, int) and not isinstance(current, bool):
            if number != int(number):
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            return int(number)
        return number
    if isinstance(current, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
