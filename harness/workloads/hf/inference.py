"""Prediction of an external detector over a dataset: images decoded by loader workers, batched forward passes,
each rank of a distributed job predicting its share, rank 0 gathering the detections by image id.

Images are decoded as ScaleDet's jobs decode them (``scaledet.data.load_rgb``: EXIF orientation, alpha over
white, 16-bit scaled), then handed to the model's processor as RGB ``PIL`` images. Each image keeps the protocol's
detections per image, highest scores first, in the dataset's own category ids and pixel coordinates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from harness.workloads.hf.families.base import Family, ImageDetections, Loaded
from scaledet.data import CocoDataset, load_rgb
from scaledet.inference import gather_rows, process_group, shard

log = logging.getLogger(__name__)


class _Images(Dataset):
    """(image id, RGB ``PIL`` image) of the dataset's images at ``indices``."""

    def __init__(self, dataset: CocoDataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[int, Image.Image]:
        record = self.dataset.images[self.indices[index]]
        array = load_rgb(self.dataset.image_root / record["file_name"])[0]
        return int(record["id"]), Image.fromarray(array, mode="RGB")


def _batch(items: list[tuple[int, Image.Image]]) -> tuple[list[int], list[Image.Image]]:
    return [i for i, _ in items], [image for _, image in items]


def to_coco(image_id: int, found: ImageDetections, category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """COCO results rows of one image (``bbox`` as x, y, w, h)."""
    rows = []
    for (x0, y0, x1, y1), score, label in zip(found.boxes.tolist(), found.scores.tolist(), found.labels.tolist(),
                                              strict=True):
        rows.append({"image_id": image_id, "category_id": int(category_ids[label]),
                     "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return rows


def predict_external(family: Family, loaded: Loaded, dataset: CocoDataset, texts: Sequence[str], *,
                     detections_per_image: int, threshold: float, batch_size: int = 4,
                     workers: int = 0) -> list[dict[str, Any]]:
    """COCO results of the model on ``dataset`` with one text per category (``texts[i]`` names
    ``dataset.category_ids[i]``), ordered by image as in ``dataset`` (so 1 and N ranks give the same list). In a
    distributed job each rank predicts its share and rank 0 gets every rank's rows, the others ``[]``
    (:func:`scaledet.inference.gather_rows`)."""
    if len(texts) != len(dataset.category_ids):
        raise ValueError(f"{len(texts)} texts for {len(dataset.category_ids)} categories of {dataset.name}")
    rank, world = process_group()
    indices = shard(len(dataset), rank, world)
    loader = DataLoader(_Images(dataset, indices), batch_size=batch_size, num_workers=workers,
                        collate_fn=_batch, persistent_workers=False)
    mine: dict[int, list[dict[str, Any]]] = {}
    for ids, images in tqdm(loader, desc=f"predict {dataset.name}", unit="batch", disable=rank != 0, leave=False):
        for image_id, found in zip(ids, family.detect(loaded, images, texts, threshold), strict=True):
            mine[image_id] = to_coco(image_id, found.top(detections_per_image, threshold), dataset.category_ids)
    rows = gather_rows(mine, [int(record["id"]) for record in dataset.images])
    if rank == 0:
        log.info("%s: %d detections on %d images (%d ranks)", dataset.name, len(rows), len(dataset), world)
    return rows
