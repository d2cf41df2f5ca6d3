"""The training loop: Adam + warm-up + steps, clipping, AMP (CUDA), checkpoints, resume, DDP; and rebuilding a
detector from a checkpoint. Prediction and scoring are :mod:`scaledet.inference`'s."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from scaledet import checkpoints as ckpt
from scaledet.backbones import BACKBONES
from scaledet.config import Config, DataConfig, TrainConfig, load_config
from scaledet.data import CocoDataset, DetectionDataset, category_mapping, collate
from scaledet.detector import Detector, build_detector, check_detector
from scaledet.distributed import DistInfo, barrier, init_distributed, resolve_device, world_size
from scaledet.errors import ConfigError, ScaleDetError
from scaledet.init_skip import init_skipped
from scaledet.labels import LabelSpace
from scaledet.precision import AMP_MODES, amp_dtype, autocast, needs_scaler
from scaledet.sampling import REPEAT_FACTOR_MODES, RepeatFactorSampler, dataset_repeat_factors
from scaledet.transforms import AUGMENTATIONS, training_transform
from scaledet.tuning import LEARNED_EMBEDDINGS, TUNINGS, apply_tuning, learned_label_space

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
    pipeline: dict[str, Any] = field(default_factory=dict)  # the input pipeline in effect (:func:`pipeline_settings`)


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


def loader_settings(data: DataConfig, device: torch.device) -> dict[str, Any]:
    """The ``DataLoader`` arguments ``data`` asks for on ``device``: ``num_workers``; ``pin_memory`` (``"auto"``: on
    when training on CUDA; never off CUDA, where there is no host-to-device copy to speed up); ``persistent_workers``
    and ``prefetch_factor`` with workers only (the ``DataLoader`` refuses them without)."""
    workers = int(data.num_workers)
    pin = data.pin_memory if isinstance(data.pin_memory, bool) else True
    return {"num_workers": workers, "pin_memory": bool(pin) and torch.device(device).type == "cuda",
            "persistent_workers": bool(data.persistent_workers) and workers > 0,
            "prefetch_factor": int(data.prefetch_factor) if workers > 0 else None}


def derived_seed(*parts: int) -> int:
    """A 64-bit seed that is a fixed function of ``parts`` (any ints), different parts giving unrelated seeds."""
    words = [int(p) % 2**64 for p in parts]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


class WorkerSeeds:
    """``worker_init_fn`` of the training loader: worker ``k`` seeds its global random streams (torch's CPU
    generator, numpy's, Python's) from (``train.seed``, rank, the sampler position the loader starts at, ``k``).

    Augmentation does not draw from these: each sample's transform runs on its own seed from the sampler (position
    in this rank's stream, :class:`scaledet.sampling.RepeatFactorSampler`; see ``DetectionDataset``), so it is the
    same for any number of workers and after a resume. These seeds make the rest of a worker's work reproducible
    too; :meth:`base` seeds the loader's own generator (PyTorch's per-worker base seed), so neither draws from
    the training process's global RNG."""

    def __init__(self, seed: int, rank: int, start: int):
        self.seed, self.rank, self.start = int(seed), int(rank), int(start)

    def worker(self, worker_id: int) -> int:
        return derived_seed(self.seed, self.rank, self.start, worker_id + 1)

    def base(self) -> int:
        return derived_seed(self.seed, self.rank, self.start, 0)

    def __call__(self, worker_id: int) -> None:
        seed = self.worker(worker_id)
        torch.default_generator.manual_seed(seed)  # CPU only: a worker has no CUDA
        np.random.seed(seed % 2**32)
        random.seed(seed)


def _loader(cfg: Config, datasets: Sequence[CocoDataset], label_space: LabelSpace, sampler, batch: int,
            device: torch.device | None = None) -> torch.utils.data.DataLoader:
    """The training loader of one rank, ``batch`` images per step (its share of the global batch), with the
    :func:`loader_settings` of ``device`` (default CPU) and :class:`WorkerSeeds`."""
    mappings = [category_mapping(ds, label_space) for ds in datasets]
    transform = training_transform(cfg.data)
    dataset = DetectionDataset(list(datasets), mappings, transform)
    settings = loader_settings(cfg.data, device if device is not None else torch.device("cpu"))
    seeds = WorkerSeeds(cfg.train.seed, getattr(sampler, "rank", 0), getattr(sampler, "consumed", 0))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, collate_fn=collate, **settings,
        worker_init_fn=seeds if settings["num_workers"] > 0 else None,
        generator=torch.Generator().manual_seed(seeds.base()),  # keep the global RNG untouched (exact resume)
    )


def pipeline_settings(cfg: Config, device: torch.device, channels_last: bool) -> dict[str, Any]:
    """The training input pipeline in effect (logged when training starts, saved in checkpoints): loader settings,
    the autocast dtype (``None``: float32), whether a gradient scaler runs, whether weights and inputs are
    channels-last."""
    dtype = amp_dtype(cfg.train.amp, device)
    return {**loader_settings(cfg.data, device), "amp": cfg.train.amp,
            "amp_dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
            "grad_scaler": needs_scaler(cfg.train.amp, device), "channels_last": channels_last,
            "device": str(device)}


def _nhwc_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: the backbone's batched image tensor in channels-last memory format."""
    if args and isinstance(args[0], Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def apply_channels_last(model: Detector, enabled: bool) -> bool:
    """With ``enabled`` (``train.channels_last``) and a convolutional backbone (``model.config.backbone``; not
    swin), put the model's 4-d weights in channels-last (NHWC) memory format and have its backbone take its batched
    images so; the values, and so the results up to float rounding, are unchanged. Returns whether it did."""
    if not enabled:
        return False
    spec = BACKBONES.get(model.config.backbone)
    if spec is not None and not spec.convolutional:
        log.info("train.channels_last: backbone %s is not convolutional; weights and inputs left as they are",
                 model.config.backbone)
        return False
    model.to(memory_format=torch.channels_last)
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module) and not getattr(backbone, "_nhwc_inputs", False):  # once per model
        backbone.register_forward_pre_hook(_nhwc_inputs)
        backbone._nhwc_inputs = True
    return True


def grad_scaler(cfg: TrainConfig, device: torch.device) -> torch.amp.GradScaler:
    """The gradient scaler of ``train.amp`` on ``device``: enabled for float16 on CUDA only (a no-op otherwise)."""
    return torch.amp.GradScaler("cuda", enabled=needs_scaler(cfg.amp, device))


def _resume(out_dir: Path, model, optimizer, scheduler, sampler, label_space: LabelSpace, info: DistInfo,
            scaler: torch.amp.GradScaler | None = None) -> int:
    last = ckpt.find_last(out_dir)
    if last is None:
        return 0
    state = ckpt.load_checkpoint(last)
    ckpt.check_label_space(state, label_space, str(last))
    ckpt.load_model_weights(model, state)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state["sampler"])
    if scaler is not None and scaler.is_enabled() and state.get("scaler"):  # fp16: its loss scale goes on
        scaler.load_state_dict(state["scaler"])
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
    ``train.amp``, ``data.augmentation``, ``data.repeat_factors``) is not one the engine knows, or the loader's
    worker settings are out of range: before a job is submitted, and before training starts."""
    check_detector(cfg.model)
    for key, value, valid in (("train.optimizer", cfg.train.optimizer, OPTIMIZERS),
                              ("train.amp", cfg.train.amp, AMP_MODES),
                              ("data.augmentation", cfg.data.augmentation, AUGMENTATIONS),
                              ("data.repeat_factors", cfg.data.repeat_factors, REPEAT_FACTOR_MODES),
                              ("train.tuning", cfg.train.tuning, TUNINGS)):
        if value not in valid:
            raise ConfigError(f"{key} is {value!r}; expected one of {', '.join(valid)}")
    if cfg.data.num_workers < 0 or cfg.data.prefetch_factor < 1:
        raise ConfigError(f"data.num_workers must be >= 0 and data.prefetch_factor >= 1, got "
                          f"{cfg.data.num_workers} and {cfg.data.prefetch_factor}")


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
    amp_dtype(cfg.train.amp, device)  # bf16 on a GPU without it fails here, before anything is built
    info = init_distributed(device)
    torch.manual_seed(cfg.train.seed)
    if model is None:
        # a checkpoint to resume replaces every weight and the RNG state: its random init would be wasted
        with init_skipped() if resume and ckpt.find_last(out_dir) else contextlib.nullcontext():
            model = build_detector(cfg.model, label_space, load_weights=init_state is None)
    elif model.label_space.fingerprint != label_space.fingerprint:
        model.set_label_space(label_space)
    if init_state is not None:
        ckpt.load_model_weights(model, {"model": init_state, "label_space": label_space.to_state()})
    model = model.to(device)
    apply_tuning(model, cfg.train.tuning)  # before the optimizer takes the trainable parameters and a resume
    channels_last = apply_channels_last(model, cfg.train.channels_last)
    if model.config.federated_loss:
        counts = class_image_counts(datasets, label_space)
        model.set_class_frequencies(counts)
        log.info("federated loss: %d of %d labels per batch; %d labels have no training image",
                 min(model.config.federated_classes, len(label_space)), len(label_space), int((counts == 0).sum()))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.train))
    sampler = _sampler(cfg, datasets, info)
    scaler = grad_scaler(cfg.train, device)
    step = _resume(out_dir, model, optimizer, scheduler, sampler, label_space, info, scaler) if resume else 0
    wrapped = model
    if info.world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    pipeline = pipeline_settings(cfg, device, channels_last)
    if info.is_main and step < cfg.train.max_steps:
        log.info("input pipeline: %d loader worker(s), pin_memory %s, persistent_workers %s, prefetch_factor %s; "
                 "amp %s (autocast %s, grad scaler %s); channels_last %s; on %s", pipeline["num_workers"],
                 pipeline["pin_memory"], pipeline["persistent_workers"], pipeline["prefetch_factor"],
                 cfg.train.amp, pipeline["amp_dtype"] or "off", pipeline["grad_scaler"], channels_last, device)
    loop = _Loop(cfg, wrapped, model, optimizer, scheduler, sampler, info, out_dir, device, label_space,
                 scaler=scaler, pipeline=pipeline)
    return loop.run(_loader(cfg, datasets, label_space, sampler, batch, device), step)


def _sum_of(parts: dict[str, float], prefix: str) -> float:
    """The sum of the loss parts named ``prefix`` or ``prefix_...`` (a cascade has one per stage)."""
    return sum(v for k, v in parts.items() if k == prefix or k.startswith(prefix + "_"))


class _Loop:
    """The optimisation loop proper (state shared by its small steps)."""

    def __init__(self, cfg, wrapped, model, optimizer, scheduler, sampler, info, out_dir, device, label_space,
                 scaler: torch.amp.GradScaler | None = None, pipeline: dict[str, Any] | None = None):
        self.cfg, self.wrapped, self.model = cfg, wrapped, model
        self.optimizer, self.scheduler, self.sampler = optimizer, scheduler, sampler
        self.info, self.out_dir, self.device, self.label_space = info, out_dir, device, label_space
        self.scaler = scaler if scaler is not None else grad_scaler(cfg.train, device)
        self.pipeline = pipeline or {}

    def run(self, loader, step: int) -> TrainResult:
        from tqdm.auto import tqdm

        cfg = self.cfg.train
        result = TrainResult(self.model, step, checkpoint=ckpt.find_last(self.out_dir), pipeline=self.pipeline)
        if step >= cfg.max_steps:
            return result
        self.wrapped.train()
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not self.info.is_main)
        started, seen = time.perf_counter(), 0
        for images, targets in _batches(loader, self.device):
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
        images = [img.to(self.device, non_blocking=True) for img in images]  # overlaps compute from pinned memory
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]
        with autocast(self.device, self.cfg.train.amp):
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
                "rng": rng, "label_space": self.model.label_state(), "config": self.cfg.to_dict(),
                "scaler": self.scaler.state_dict(), "input_pipeline": self.pipeline, **extra,
            }, self.out_dir, keep=self.cfg.train.keep_checkpoints)
        barrier()
        return path


def _batches(loader: torch.utils.data.DataLoader, device: torch.device) -> Iterator[Any]:
    """``loader``'s batches; on CUDA its iterator starts with ``device`` current, so the pin-memory thread pins for
    (and creates its context on) the training GPU, not GPU 0."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            iterator = iter(loader)
    else:
        iterator = iter(loader)
    yield from iterator


def load_detector(checkpoint: str | Path, device: str | torch.device | None = None) -> Detector:
    """A detector rebuilt from a checkpoint's config and label space, weights loaded (no backbone download); a
    prompt-tuned checkpoint's detector scores with the label embeddings it learned."""
    state = ckpt.load_checkpoint(checkpoint)
    cfg = load_config(state["config"])
    label_space = LabelSpace.from_state(state["label_space"])
    with init_skipped():  # every weight comes from the checkpoint next
        model = build_detector(cfg.model, label_space, load_weights=False)
    if LEARNED_EMBEDDINGS in state["model"]:
        apply_tuning(model, "prompt")
    ckpt.load_model_weights(model, state)
    model.label_space = learned_label_space(model, label_space)
    return model.to(resolve_device(device))
