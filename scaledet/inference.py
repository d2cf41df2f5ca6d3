"""Prediction over a dataset, as every scoring path runs it (pretrain evaluation, direct transfer, fine-tune model
selection and scoring): loader workers decode, normalise, resize and pad the images (a thread receives their
batches beside the forward pass), forward passes run on batches of images of one size, mixed precision on CUDA,
and each rank of a distributed job predicts its share of the images; rank 0 gathers the detections by image id
and is the one that scores them.

The result equals predicting one image at a time (up to float noise): images share a forward pass only when their
resized, padded sizes are equal. torchvision pads a batch to its largest image, and padding moves a detector's
outputs (normalisation layers turn the zero padding into features the convolutions see), so a mixed batch would
make an image's detections depend on its neighbours.
"""

from __future__ import annotations

import collections
import copy
import logging
import math
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, get_worker_info
from torchvision.models.detection.transform import resize_boxes

from scaledet.config import COUNT_MINIMUMS, Config, auto_or_count
from scaledet.data import CocoDataset, category_mapping, read_image
from scaledet.detector import Detector
from scaledet.detector_parts import padded_size
from scaledet.distributed import resolve_device
from scaledet.errors import ConfigError
from scaledet.labels import LabelSpace
from scaledet.precision import AMP_MODES, autocast
from scaledet.protocol import ScoringSettings, scoring_settings

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
# "auto" batch size and loader workers by device type. CPU: measured (benchmarks/bench_inference.py, 2 cores, the
# demo's detector): one image per forward pass is the fastest (batches of 4 and 8 took 17-49% longer an image
# in four runs) and loader workers slow it (the forward pass uses every core; decoding is 1-2% of the time).
# GPU: batches amortise kernel launches, and workers decode while the GPU computes, leaving the main process's
# core to feed it (not measured here: this machine has no GPU).
AUTO_SETTINGS: dict[str, tuple[int, int]] = {"cpu": (1, 0), "cuda": (4, 2)}


@dataclass(frozen=True)
class InferenceSettings:
    """How a prediction pass runs (never what it predicts): images per forward pass, loader worker processes
    (0: the main process decodes), and mixed precision (:data:`scaledet.precision.AMP_MODES`, CUDA only).
    ``"auto"`` picks by device (:data:`AUTO_SETTINGS`, resolved by :meth:`on`); a job takes its config's (:meth:`of`)."""

    batch_size: int | str = "auto"
    workers: int | str = "auto"
    amp: str = "off"

    def __post_init__(self) -> None:
        for field, key in (("batch_size", "data.test_batch_size"), ("workers", "data.test_workers")):
            object.__setattr__(self, field, auto_or_count(key, getattr(self, field), COUNT_MINIMUMS[key]))
        if self.amp not in AMP_MODES:
            raise ConfigError(f"data.test_amp is {self.amp!r}; expected one of {', '.join(AMP_MODES)}")

    @classmethod
    def of(cls, cfg: Config) -> InferenceSettings:
        """The settings ``cfg`` asks for (``data.test_batch_size``, ``data.test_workers``, ``data.test_amp``)."""
        return cls(cfg.data.test_batch_size, cfg.data.test_workers, cfg.data.test_amp)

    def on(self, device: str | torch.device) -> InferenceSettings:
        """These settings with ``"auto"`` resolved for ``device``'s type (a GPU's for any accelerator)."""
        batch, workers = AUTO_SETTINGS.get(torch.device(device).type, AUTO_SETTINGS["cuda"])
        return replace(self, batch_size=batch if self.batch_size == "auto" else self.batch_size,
                       workers=workers if self.workers == "auto" else self.workers)

    def to_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "workers": self.workers, "amp": self.amp}


def shard(count: int, rank: int, world: int) -> list[int]:
    """The indices (of ``count`` images) rank ``rank`` of ``world`` predicts: every ``world``-th, from ``rank``."""
    return list(range(rank, count, world))


def process_group() -> tuple[int, int]:
    """(rank, world size) of the joined process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(mine: dict[int, Rows], order: Sequence[int]) -> Rows:
    """Every rank's rows (image id → its rows) on rank 0, in ``order`` of image ids; ``[]`` on the other ranks.
    Without a process group, ``mine`` in ``order``."""
    rank, world = process_group()
    if world > 1:
        parts: list[dict[int, Rows] | None] | None = [None] * world if rank == 0 else None
        dist.gather_object(mine, parts, dst=0)
        if rank != 0:
            return []
        mine = {}
        for part in parts or []:
            mine.update(part or {})
    return [row for image_id in order for row in mine.get(image_id, [])]


def resized_size(height: int, width: int, min_size: float, max_size: float) -> tuple[int, int]:
    """The (h, w) the detector's test transform resizes an image to (torchvision's rule, in its arithmetic: the
    shorter side to ``min_size`` unless the longer would exceed ``max_size``; sizes floored as ``interpolate``'s)."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return math.floor(height * scale), math.floor(width * scale)


def size_batches(dataset: CocoDataset, model: Detector, batch_size: int) -> list[list[int]]:
    """The dataset's image indices in batches of at most ``batch_size`` whose images have one padded test size
    (from the records' ``width`` and ``height``), each size's images in dataset order. The batches do not depend
    on the number of ranks: every rank takes its share of the same batches, so 1 and N ranks compute alike."""
    transform = model.transform
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, record in enumerate(dataset.images):
        size = resized_size(int(record["height"]), int(record["width"]), float(transform.min_size[-1]),
                         float(transform.max_size))
        groups.setdefault(tuple(padded_size([size], int(transform.size_divisible))), []).append(index)
    return [group[i : i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


class _ResizedImages(Dataset):
    """(index, image normalised and resized as the detector's test transform does it, original (h, w)) of the
    dataset's image at ``index``."""

    def __init__(self, dataset: CocoDataset, transform: torch.nn.Module):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Tensor, tuple[int, int]]:
        record = self.dataset.images[index]
        image = read_image(self.dataset.image_root / record["file_name"])
        original = (int(image.shape[-2]), int(image.shape[-1]))
        return index, self.transform.resize(self.transform.normalize(image))[0], original


class PaddedBatch(NamedTuple):
    """A batch as the loader hands it over: ``images`` (N, C, H, W), each image top-left in its zero-padded slot
    (torchvision's ``batch_images`` layout), ``sizes`` their resized (h, w), ``originals`` their decoded (h, w)."""

    indices: list[int]
    images: Tensor
    sizes: list[tuple[int, int]]
    originals: list[tuple[int, int]]

    def views(self, device: torch.device) -> list[Tensor]:
        """The images on ``device`` as views of one padded batch (the detector's transform takes it uncopied)."""
        batch = self.images.to(device, non_blocking=True)
        return [batch[i, :, :h, :w] for i, (h, w) in enumerate(self.sizes)]


def padded_batch(items: list[tuple[int, Tensor, tuple[int, int]]], size_divisible: int) -> PaddedBatch:
    """The loader's collate: the items' images padded into one batch as ``batch_images`` pads them (zeros, to the
    largest size rounded up to ``size_divisible``), built in shared memory in a worker process (handed over
    without another copy)."""
    images = [image for _, image, _ in items]
    height, width = padded_size((img.shape[-2:] for img in images), size_divisible)
    batch = torch.zeros(len(images), images[0].shape[0], height, width, dtype=images[0].dtype)
    if get_worker_info() is not None:
        batch.share_memory_()
    for slot, image in zip(batch, images):
        slot[:, : image.shape[1], : image.shape[2]].copy_(image)
    return PaddedBatch([index for index, _, _ in items], batch,
                       [(int(img.shape[1]), int(img.shape[2])) for img in images], [orig for _, _, orig in items])


@contextmanager
def presized(model: Detector) -> Iterator[None]:
    """Within the block, the detector's transform takes its test images as already normalised, resized and padded
    (the loader's :class:`PaddedBatch`), and leaves the detections in the resized images' pixels."""
    transform = model.transform
    saved = transform.presized
    transform.presized = True
    try:
        yield
    finally:
        transform.presized = saved


def _loader(dataset: CocoDataset, batches: list[list[int]], model: Detector, settings: InferenceSettings,
            device: torch.device) -> Iterable[PaddedBatch]:
    """The batches, decoded, normalised, resized and padded (the model's own test transform, a CPU copy): by
    worker processes, or without workers here, one batch at a time (no loader machinery per batch)."""
    transform = copy.deepcopy(model.transform).cpu().eval()
    transform.presized = False
    images = _ResizedImages(dataset, transform)
    collate = partial(padded_batch, size_divisible=int(transform.size_divisible))
    workers = min(settings.workers, len(batches))
    if workers == 0:
        return (collate([images[index] for index in batch]) for batch in batches)
    return Prefetched(DataLoader(images, batch_sampler=batches, collate_fn=collate, num_workers=workers,
                                 pin_memory=device.type == "cuda", persistent_workers=False))


class _Failed(NamedTuple):
    error: BaseException


_END = object()


class Prefetched:
    """The items of ``loader``, taken from it by a background thread up to ``depth`` ahead of the consumer: receiving
    a batch from loader workers (unpickling, mapping its shared memory) and, later, freeing it run beside the
    forward pass instead of in the consumer, as DataLoader's pin-memory thread does on CUDA. An error in the
    loader is raised to the consumer; a consumer that stops early stops the thread. The thread also frees the
    last items, once the consumer has let go of them (a consumer's reference left on an item makes it the one that
    frees it)."""

    def __init__(self, loader: Iterable[Any], depth: int = 2) -> None:
        self.loader, self.depth = loader, depth

    def __iter__(self) -> Iterator[Any]:
        ready: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def hand_over(item: Any) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def fill() -> None:
            # the thread also holds the last items it handed over, and lets each go once the consumer has moved
            # two past it: the last reference is the thread's, so freeing a batch (unmapping a worker's shared
            # memory: 2.5 ms for a batch of one 800-px image) happens here rather than in the consumer
            handed: collections.deque = collections.deque(maxlen=self.depth + 2)
            try:
                for item in self.loader:
                    if not hand_over(item):
                        return
                    handed.append(item)
            except BaseException as error:  # noqa: BLE001 - raised again in the consumer
                hand_over(_Failed(error))
                return
            if hand_over(_END):
                stop.wait()  # until the consumer has let go of the last items: they are freed here, on return

        thread = threading.Thread(target=fill, name="prefetch", daemon=True)
        thread.start()
        try:
            while (item := ready.get()) is not _END:
                if isinstance(item, _Failed):
                    raise item.error
                yield item
                del item  # let go before waiting for the next one: the thread's reference is the last
        finally:
            stop.set()
            thread.join()


@torch.inference_mode()
def predict(model: Detector, dataset: CocoDataset, label_space: LabelSpace | None = None,
            device: str | torch.device | None = None, settings: ScoringSettings | None = None,
            inference: InferenceSettings | None = None) -> Rows:
    """COCO results (``image_id, category_id, bbox xywh, score``) in ``dataset``'s own category ids, on rank 0 (the
    other ranks of a distributed job predict their share and get ``[]``), ordered by image as in ``dataset``.

    The detector scores with ``dataset``'s own vocabulary (:func:`own_vocabulary` of ``label_space``, default the
    model's current one), e.g. for zero-shot transfer the target's, for a joint upstream space its slice; and with
    ``settings`` (detections per image, score threshold; default the model config's). ``inference`` says how the
    pass runs (:class:`InferenceSettings`). The model's vocabulary and settings are as they were afterwards.
    """
    from tqdm.auto import tqdm

    device = resolve_device(device)
    inference = (inference or InferenceSettings()).on(device)
    space = own_vocabulary(dataset, label_space if label_space is not None else model.label_space)
    to_category = {v: k for k, v in category_mapping(dataset, space).items()}
    model.to(device).eval()
    rank, world = process_group()
    batches = size_batches(dataset, model, inference.batch_size)[rank::world]
    mine: dict[int, Rows] = {}
    limits = (settings.detections_per_image, settings.score_thresh) if settings else (None, None)
    bar = tqdm(total=sum(map(len, batches)), desc=f"predict {dataset.name}", unit="img", disable=rank != 0,
               leave=False, mininterval=1.0)
    with model.scoring(space, *limits), presized(model):
        for batch in _loader(dataset, batches, model, inference, device) if batches else ():
            with autocast(device, inference.amp, key="data.test_amp"):
                outputs = model(batch.views(device))
            for index, size, original, out in zip(batch.indices, batch.sizes, batch.originals, outputs, strict=True):
                image_id = int(dataset.images[index]["id"])
                boxes = resize_boxes(out["boxes"].float(), list(size), list(original))
                mine[image_id] = to_coco(image_id, {**out, "boxes": boxes}, to_category)
            bar.update(len(batch.indices))
            del batch  # with workers, the loader's thread frees it (unmapping shared memory), not this one
    bar.close()
    rows = gather_rows(mine, [int(img["id"]) for img in dataset.images])
    if rank == 0:
        log.info("%s: %d detections on %d images (%d ranks)", dataset.name, len(rows), len(dataset), world)
    return rows


def to_coco(image_id: int, out: dict[str, Tensor], to_category: dict[int, int]) -> Rows:
    """COCO results rows of one image's detections (``boxes`` xyxy in its pixels, ``scores``, ``labels``)."""
    rows = []
    for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
        x0, y0, x1, y1 = box
        rows.append({"image_id": image_id, "category_id": to_category[label],
                     "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return rows


def own_vocabulary(dataset: CocoDataset, label_space: LabelSpace) -> LabelSpace:
    """``dataset``'s own labels: ``label_space`` when it holds no other dataset's, else its slice for ``dataset``
    (the paper's test-time vocabulary, §4.2: no other dataset's label takes a candidate or a detection slot)."""
    if set(label_space.datasets) == {dataset.name}:
        return label_space
    return label_space.subset(dataset.name)


def evaluate(model: Detector, dataset: CocoDataset, label_space: LabelSpace | None = None,
             device: str | torch.device | None = None, settings: ScoringSettings | None = None,
             inference: InferenceSettings | None = None) -> dict[str, Any] | None:
    """``coco_eval`` of :func:`predict` on ``dataset`` (COCO's scoring settings unless ``settings`` says otherwise),
    on rank 0; ``None`` on the other ranks of a distributed job (they predicted their share)."""
    from scaledet.evaluation import coco_eval

    rows = predict(model, dataset, label_space, device, settings or scoring_settings("coco"), inference)
    return coco_eval(dataset.source, rows) if process_group()[0] == 0 else None
