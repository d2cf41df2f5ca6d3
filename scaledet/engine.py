"""Training and inference loops: Adam + warm-up + steps, clipping, AMP (CUDA), checkpoints, resume, DDP."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from scaledet import checkpoints as ckpt
from scaledet.config import Config, TrainConfig, load_config
from scaledet.data import CocoDataset, DetectionDataset, category_mapping, collate, read_image
from scaledet.detector import Detector, build_detector, check_detector
from scaledet.distributed import DistInfo, barrier, init_distributed, resolve_device, world_size
from scaledet.errors import ConfigError, ScaleDetError
from scaledet.labels import LabelSpace
from scaledet.protocol import ScoringSettings, scoring_settings
from scaledet.sampling import REPEAT_FACTOR_MODES, RepeatFactorSampler, dataset_repeat_factors
from scaledet.transforms import AUGMENTATIONS, training_transform

log = logging.getLogger(__name__)


class TrainingError(ScaleDetError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step and the last checkpoint."""


@dataclass
class TrainResult:
    """The trained (unwrapped) model, the step reached, per-step loss history and the last checkpoint."""

    model: Detector
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None


def lr_lambda(cfg: TrainConfig):
    """Multiplier of the base lr at a step: linear warm-up from ``warmup_factor``, then ``gamma`` per step."""

    def factor(step: int) -> float:
        decay = cfg.gamma ** sum(step >= s for s in cfg.lr_steps)
        if step < cfg.warmup_steps:
            alpha = step / cfg.warmup_steps
            return decay * (cfg.warmup_factor * (1 - alpha) + alpha)
        return decay

    return factor


def per_rank_batch(batch: int, world_size: int) -> int:
    """Images each rank loads per step: ``data.batch_size`` is the global batch over all ranks (detectron2's
    IMS_PER_BATCH), so each of ``world_size`` ranks loads ``batch / world_size``; ``ConfigError`` if that is
    not a whole number (or ``batch`` < 1)."""
    if world_size < 1:
        raise ConfigError(f"world size must be >= 1, got {world_size}")
    if batch < 1 or batch % world_size:
        problem = "is not positive" if batch < 1 else f"is not divisible by the world size {world_size}"
        raise ConfigError(
            f"data.batch_size {batch} {problem}: data.batch_size is the global batch over all {world_size} "
            f"rank(s) (each loads data.batch_size / world size); set a positive multiple of {world_size} "
            "or change the number of tasks"
        )
    return batch // world_size


def _sampler(cfg: Config, datasets: Sequence[CocoDataset], info: DistInfo) -> RepeatFactorSampler:
    categories = [[[a["category_id"] for a in ds.annotations[img["id"]]] for img in ds.images] for ds in datasets]
    factors = dataset_repeat_factors(categories, cfg.data.repeat_threshold, cfg.data.repeat_factors)
    return RepeatFactorSampler(factors, cfg.train.seed, info.rank, info.world_size)


def class_image_counts(datasets: Sequence[CocoDataset], label_space: LabelSpace) -> Tensor:
    """Per label of ``label_space`` (in its order), the number of training images of ``datasets`` with at least
    one (non-crowd) box of it: the image counts the federated loss weighs its negatives by (as LVIS's
    ``image_count``)."""
    counts = [0] * len(label_space)
    for ds in datasets:
        mapping = category_mapping(ds, label_space)
        for img in ds.images:
            for label in {mapping[a["category_id"]] for a in ds.annotations[img["id"]]}:
                counts[label] += 1
    return torch.tensor(counts, dtype=torch.float64)


def _loader(cfg: Config, datasets: Sequence[CocoDataset], label_space: LabelSpace, sampler, batch: int) -> Any:
    """The training loader of one rank, ``batch`` images per step (its share of the global batch)."""
    mappings = [category_mapping(ds, label_space) for ds in datasets]
    transform = training_transform(cfg.data)
    dataset = DetectionDataset(list(datasets), mappings, transform)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=cfg.data.num_workers,
        collate_fn=collate, generator=torch.Generator(),  # keep the global RNG untouched (exact resume)
    )


def _resume(out_dir: Path, model, optimizer, scheduler, sampler, label_space: LabelSpace, info: DistInfo) -> int:
    last = ckpt.find_last(out_dir)
    if last is None:
        return 0
    state = ckpt.load_checkpoint(last)
    ckpt.check_label_space(state, label_space, str(last))
    ckpt.load_model_weights(model, state)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state["sampler"])
    ranks = state.get("rng_ranks")  # every rank's own RNG state (DDP): its RoI sampling etc. continue exactly
    ckpt.set_rng_state(ranks[info.rank] if ranks and len(ranks) == info.world_size else state["rng"])
    log.info("resumed from %s at step %d", last, state["step"])
    return int(state["step"])


def _check_finite(losses: dict[str, Tensor], total: Tensor, step: int, out_dir: Path) -> None:
    flag = torch.tensor([0.0 if torch.isfinite(total) else 1.0], device=total.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(flag)
    if flag.item() > 0:
        parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        last = ckpt.find_last(out_dir)
        raise TrainingError(
            f"non-finite loss at step {step} ({parts}); stopped. Last good checkpoint: "
            f"{last.resolve() if last else 'none yet'}. Lower train.lr or check the data."
        )


OPTIMIZERS = ("adam", "sgd")


def adam(params: list[nn.Parameter], train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """The paper's optimizer: Adam with ``train.lr`` and ``train.weight_decay``."""
    return torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


def check_choices(cfg: Config) -> None:
    """Fail with a ``ConfigError`` naming the key when a named choice (``model.detector``, ``train.optimizer``,
    ``data.augmentation``, ``data.repeat_factors``) is not one the engine knows: before a job is submitted, and
    before training starts."""
    check_detector(cfg.model)
    for key, value, valid in (("train.optimizer", cfg.train.optimizer, OPTIMIZERS),
                              ("data.augmentation", cfg.data.augmentation, AUGMENTATIONS),
                              ("data.repeat_factors", cfg.data.repeat_factors, REPEAT_FACTOR_MODES)):
        if value not in valid:
            raise ConfigError(f"{key} is {value!r}; expected one of {', '.join(valid)}")


def configured_optimizer(params: list[nn.Parameter], train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``train.optimizer`` names: :func:`adam`, or SGD with ``train.momentum`` and
    ``train.weight_decay`` (detectron2's, as in the paper's Table 3 comparison to UniDet)."""
    if train_cfg.optimizer == "adam":
        return adam(params, train_cfg)
    if train_cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train_cfg.lr, momentum=train_cfg.momentum,
                               weight_decay=train_cfg.weight_decay)
    raise ConfigError(f"train.optimizer is {train_cfg.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")


def train(cfg: Config, datasets: Sequence[CocoDataset], label_space: LabelSpace, out_dir: str | Path,
          device: str | torch.device | None = None, resume: bool = True,
          init_state: dict[str, Tensor] | None = None, model: Detector | None = None,
          make_optimizer: Callable[[list[nn.Parameter], TrainConfig], torch.optim.Optimizer] = configured_optimizer,
          ) -> TrainResult:
    """Train a ScaleDet detector on ``datasets`` jointly over ``label_space`` (their concatenation).

    Each dataset's categories (in id order) map onto ``label_space.indices_of(dataset.name)``. Writes
    checkpoints to ``out_dir`` every ``train.checkpoint_every`` steps and at the end; with ``resume`` it
    continues from ``out_dir/last.pt`` exactly. Under torchrun/SLURM (WORLD_SIZE > 1) it runs DDP, rank k on
    ``cuda:<LOCAL_RANK>`` when ``device`` is None/"cuda"; ``data.batch_size`` is the global batch (each rank
    loads its share, :func:`per_rank_batch`). ``init_state`` (model weights, e.g. a pretrained detector's)
    starts a fresh run; a resumed run ignores it. ``model`` trains your own detector (e.g. built from parts with
    ``build_detector(..., backbone=...)``) instead of building ``cfg.model``'s; ``make_optimizer(params, cfg.train)``
    gives the optimizer (default :func:`configured_optimizer`: ``train.optimizer``'s); the warm-up and step schedule apply to whatever it returns.
    """
    if cfg.data.single_dataset and len(datasets) != 1:
        raise ConfigError(f"method '{cfg.method}' trains on exactly one dataset, got {len(datasets)}")
    check_choices(cfg)
    batch = per_rank_batch(cfg.data.batch_size, world_size())  # before joining the group or building anything
    out_dir = Path(out_dir)
    device = resolve_device(device)
    info = init_distributed(device)
    torch.manual_seed(cfg.train.seed)
    if model is None:
        model = build_detector(cfg.model, label_space, load_weights=init_state is None)
    elif model.label_space.fingerprint != label_space.fingerprint:
        model.set_label_space(label_space)
    if init_state is not None:
        ckpt.load_model_weights(model, {"model": init_state, "label_space": label_space.to_state()})
    model = model.to(device)
    if model.config.federated_loss:
        counts = class_image_counts(datasets, label_space)
        model.set_class_frequencies(counts)
        log.info("federated loss: %d of %d labels per batch; %d labels have no training image",
                 min(model.config.federated_classes, len(label_space)), len(label_space), int((counts == 0).sum()))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.train))
    sampler = _sampler(cfg, datasets, info)
    step = _resume(out_dir, model, optimizer, scheduler, sampler, label_space, info) if resume else 0
    wrapped = model
    if info.world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    loop = _Loop(cfg, wrapped, model, optimizer, scheduler, sampler, info, out_dir, device, label_space)
    return loop.run(_loader(cfg, datasets, label_space, sampler, batch), step)


def _sum_of(parts: dict[str, float], prefix: str) -> float:
    """The sum of the loss parts named ``prefix`` or ``prefix_...`` (a cascade has one per stage)."""
    return sum(v for k, v in parts.items() if k == prefix or k.startswith(prefix + "_"))


class _Loop:
    """The optimisation loop proper (state shared by its small steps)."""

    def __init__(self, cfg, wrapped, model, optimizer, scheduler, sampler, info, out_dir, device, label_space):
        self.cfg, self.wrapped, self.model = cfg, wrapped, model
        self.optimizer, self.scheduler, self.sampler = optimizer, scheduler, sampler
        self.info, self.out_dir, self.device, self.label_space = info, out_dir, device, label_space
        self.amp = cfg.train.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def run(self, loader, step: int) -> TrainResult:
        from tqdm.auto import tqdm

        cfg = self.cfg.train
        result = TrainResult(self.model, step, checkpoint=ckpt.find_last(self.out_dir))
        if step >= cfg.max_steps:
            return result
        self.wrapped.train()
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not self.info.is_main)
        started, seen = time.perf_counter(), 0
        for images, targets in loader:
            parts = self.step(images, targets, step)
            step += 1
            seen += len(images) * self.info.world_size
            result.history.append(parts)
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", cls=f"{_sum_of(parts, 'loss_classifier'):.3f}",
                            box=f"{_sum_of(parts, 'loss_box_reg'):.3f}",
                            img_s=f"{seen / (time.perf_counter() - started):.1f}")
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                result.checkpoint = self.save(step)
                recent = result.history[-cfg.checkpoint_every :]
                log.info("step %d: mean loss %.4f over the last %d steps, lr %.3g", step,
                         sum(h["loss"] for h in recent) / len(recent), len(recent), parts["lr"])
            if step >= cfg.max_steps:
                break
        bar.close()
        result.step = step
        return result

    def step(self, images: list[Tensor], targets: list[dict[str, Tensor]], step: int) -> dict[str, float]:
        images = [img.to(self.device, non_blocking=True) for img in images]
        targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
        with torch.autocast(self.device.type, enabled=self.amp):
            losses = self.wrapped(images, targets)
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        _check_finite(losses, total, step + 1, self.out_dir)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.train.clip_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.sampler.advance(len(images))
        return {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}, "lr": self.scheduler.get_last_lr()[0]}

    def _lockstep(self, step: int) -> list[str]:
        """Every rank's weights digest at ``step`` (saved with the checkpoint): DDP keeps the ranks' weights equal,
        and a rank that drifted (a parameter outside DDP's reduction, a rank-dependent update) is logged here."""
        digests: list[Any] = [None] * self.info.world_size
        dist.all_gather_object(digests, ckpt.weights_digest(self.model.state_dict()))
        if len(set(digests)) > 1:
            log.error("step %d: the %d ranks' weights differ (digests %s): they are out of lockstep", step,
                      self.info.world_size, ", ".join(d[:12] for d in digests))
        return digests

    def save(self, step: int) -> Path | None:
        path, rng = None, ckpt.rng_state()
        extra: dict[str, Any] = {}
        if self.info.world_size > 1:  # the ranks' RNGs differ (their images differ): each resumes its own
            extra["rng_ranks"] = [None] * self.info.world_size
            dist.all_gather_object(extra["rng_ranks"], rng)
            extra["rank_digests"] = self._lockstep(step)
        if self.info.is_main:
            path = ckpt.save_checkpoint({
                "step": step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "sampler": self.sampler.state_dict(),
                "rng": rng, "label_space": self.model.label_state(), "config": self.cfg.to_dict(), **extra,
            }, self.out_dir, keep=self.cfg.train.keep_checkpoints)
        barrier()
        return path


def load_detector(checkpoint: str | Path, device: str | torch.device | None = None) -> Detector:
    """A detector rebuilt from a checkpoint's config and label space, weights loaded (no backbone download)."""
    state = ckpt.load_checkpoint(checkpoint)
    cfg = load_config(state["config"])
    label_space = LabelSpace.from_state(state["label_space"])
    model = build_detector(cfg.model, label_space, load_weights=False)
    ckpt.load_model_weights(model, state)
    return model.to(resolve_device(device))


def own_vocabulary(dataset: CocoDataset, label_space: LabelSpace) -> LabelSpace:
    """``dataset``'s own labels: ``label_space`` when it holds no other dataset's, else its slice for ``dataset``
    (the paper's test-time vocabulary, §4.2: no other dataset's label takes a candidate or a detection slot)."""
    if set(label_space.datasets) == {dataset.name}:
        return label_space
    return label_space.subset(dataset.name)


@torch.inference_mode()
def predict(model: Detector, dataset: CocoDataset, label_space: LabelSpace | None = None,
            device: str | torch.device | None = None, batch_size: int = 2,
            settings: ScoringSettings | None = None) -> list[dict[str, Any]]:
    """COCO results (``image_id, category_id, bbox xywh, score``) in ``dataset``'s own category ids.

    The detector scores with ``dataset``'s own vocabulary (:func:`own_vocabulary` of ``label_space``, default the
    model's current one), e.g. for zero-shot transfer the target's, for a joint upstream space its slice; and with
    ``settings`` (detections per image, score threshold; default the model config's). The model's vocabulary and
    settings are as they were afterwards.
    """
    space = own_vocabulary(dataset, label_space if label_space is not None else model.label_space)
    to_category = {v: k for k, v in category_mapping(dataset, space).items()}
    device = resolve_device(device)
    model.to(device).eval()
    results: list[dict[str, Any]] = []
    limits = (settings.detections_per_image, settings.score_thresh) if settings else (None, None)
    with model.scoring(space, *limits):
        for start in range(0, len(dataset), batch_size):
            chunk = dataset.images[start : start + batch_size]
            images = [read_image(dataset.image_root / img["file_name"]).to(device) for img in chunk]
            for img, out in zip(chunk, model(images)):
                results += _to_coco(img["id"], out, to_category)
    return results


def _to_coco(image_id: int, out: dict[str, Tensor], to_category: dict[int, int]) -> list[dict[str, Any]]:
    rows = []
    for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
        x0, y0, x1, y1 = box
        rows.append({"image_id": image_id, "category_id": to_category[label],
                     "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return rows


def evaluate(model: Detector, dataset: CocoDataset, label_space: LabelSpace | None = None,
             device: str | torch.device | None = None, settings: ScoringSettings | None = None) -> dict[str, Any]:
    """``coco_eval`` of ``predict`` on ``dataset`` (COCO's scoring settings unless ``settings`` says otherwise)."""
    from scaledet.evaluation import coco_eval

    return coco_eval(dataset.source, predict(model, dataset, label_space, device,
                                             settings=settings or scoring_settings("coco")))
