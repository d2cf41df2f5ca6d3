"""COCO-format datasets: reading, label-space remapping, and the torch Dataset the engine consumes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from scaledet.errors import ConfigError, DataError
from scaledet.labels import LabelSpace
from scaledet.transforms import Transform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CocoDataset:
    """A COCO detection dataset in memory: images, categories (sorted by id) and boxes per image."""

    name: str
    image_root: Path
    images: tuple[dict[str, Any], ...]  # {"id", "file_name", "width", "height"}
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    annotations: dict[int, tuple[dict[str, Any], ...]]  # image id -> its non-crowd annotations
    source: dict[str, Any]  # the json as read (after dropping an empty id-0 category), for evaluation

    def __len__(self) -> int:
        return len(self.images)


def load_coco(annotations: str | Path, image_root: str | Path | None = None, name: str | None = None) -> CocoDataset:
    """Read a COCO json; ``image_root`` defaults to the json's folder; ``name`` to the json's stem.

    Ids need not be contiguous. A category with id 0 and no boxes (Roboflow's root category) is dropped.
    """
    path = Path(annotations)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read COCO annotations {path}: {error}") from error
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: field '{key}' missing or not a list")
    used = {a.get("category_id") for a in data["annotations"]}
    categories = sorted((c for c in data["categories"] if not (c["id"] == 0 and 0 not in used)),
                        key=lambda c: c["id"])
    data = {**data, "categories": categories}
    known = {c["id"] for c in categories}
    per_image: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        if ann.get("category_id") not in known or ann.get("image_id") not in per_image:
            raise DataError(f"{path}: annotation {ann.get('id')} refers to an unknown category or image")
        if not ann.get("iscrowd", 0):
            per_image[ann["image_id"]].append(ann)
    return CocoDataset(
        name=name or path.stem,
        image_root=Path(image_root) if image_root is not None else path.parent,
        images=tuple(data["images"]),
        category_ids=tuple(c["id"] for c in categories),
        category_names=tuple(c["name"] for c in categories),
        annotations={k: tuple(v) for k, v in per_image.items()},
        source=data,
    )


def category_mapping(dataset: CocoDataset, label_space: LabelSpace, label_dataset: str | None = None) -> dict[int, int]:
    """Category id → index in ``label_space``: the dataset's categories in id order onto its slice.

    ``label_dataset`` is the dataset name the label space uses for this dataset (default ``dataset.name``).
    """
    indices = label_space.indices_of(label_dataset or dataset.name)
    if len(indices) != len(dataset.category_ids):
        raise ConfigError(
            f"dataset '{dataset.name}' has {len(dataset.category_ids)} categories but its label space slice has "
            f"{len(indices)} labels"
        )
    return dict(zip(dataset.category_ids, indices))


def read_image(path: Path) -> Tensor:
    """An RGB image as float ``[3, H, W]`` in [0, 1]; an undecodable file raises ``DataError`` naming it."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"cannot decode image {path}: {error}") from error
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def image_targets(dataset: CocoDataset, index: int, mapping: dict[int, int]) -> dict[str, Tensor]:
    """Boxes (xyxy, pixels) and label-space labels of image ``index``; degenerate boxes dropped."""
    image = dataset.images[index]
    anns = dataset.annotations[image["id"]]
    boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    labels = torch.tensor([mapping[a["category_id"]] for a in anns], dtype=torch.long)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return {"boxes": boxes[keep], "labels": labels[keep], "image_id": torch.tensor(image["id"])}


class DetectionDataset(torch.utils.data.Dataset):
    """Images and targets of one or more COCO datasets, labels mapped into one label space.

    Indexing takes ``i`` or ``(i, seed)``: the seed drives the random transform, so augmentation is a
    function of the sampler's stream (exact resume, any number of workers).
    """

    def __init__(self, datasets: list[CocoDataset], mappings: list[dict[int, int]], transform: Transform | None):
        self.datasets = datasets
        self.mappings = mappings
        self.transform = transform
        self.offsets = np.cumsum([0] + [len(d) for d in datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset number, index within it) of global ``index``."""
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return which, index - int(self.offsets[which])

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, dict[str, Tensor]]:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        which, local = self.locate(index)
        dataset = self.datasets[which]
        image = read_image(dataset.image_root / dataset.images[local]["file_name"])
        target = image_targets(dataset, local, self.mappings[which])
        if self.transform is not None:
            image, target = self.transform(image, target, torch.Generator().manual_seed(int(seed)))
        return image, target


def collate(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """Lists of images and targets (detectors take variable-sized images)."""
    return [b[0] for b in batch], [b[1] for b in batch]
