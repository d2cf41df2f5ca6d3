"""COCO-format datasets: reading, label-space remapping, and the torch Dataset the engine consumes."""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from scaledet import validation
from scaledet.errors import ConfigError, DataError
from scaledet.images import MAX_PIXELS  # read_image without max_side refuses larger images (12 bytes/pixel)
from scaledet.labels import LabelSpace
from scaledet.transforms import Transform

log = logging.getLogger(__name__)

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I" (32-bit) is taken as 16-bit data


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


def load_coco(annotations: str | Path, image_root: str | Path | None = None, name: str | None = None, *,
              check_files: bool = False, root_ids: Collection[int] = (0,)) -> CocoDataset:
    """Read and check a COCO json; ``image_root`` defaults to the json's folder; ``name`` to the json's stem.

    Ids need not be contiguous. A category of ``root_ids`` (default id 0: Roboflow's root category) that no box
    uses is dropped.
    Malformed content (see :mod:`scaledet.validation`) is a ``DataError`` naming the file and the id; an
    empty ``images`` list too. Training targets drop boxes with zero or negative width/height and clip boxes
    to the image's ``width``/``height`` (counted, one warning per file); ``source`` keeps the boxes as
    written, for evaluation. Image files are not opened unless ``check_files`` (see ``check_image_files``).
    """
    path = Path(annotations)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read COCO annotations {path}: {error}") from error
    where = str(path)
    validation.check_layout(data, where)
    fixes: Counter[str] = Counter()
    categories = validation.drop_root_category(data["categories"], data["annotations"], fixes, root_ids)
    names = validation.check_categories(categories, where)
    images = validation.check_images(data["images"], where, need_file_name=False)
    if not images:
        raise DataError(f"{path}: field 'images' is empty: a split needs at least one image")
    categories = sorted(categories, key=lambda c: c["id"])
    per_image: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in images}
    for number, ann in enumerate(data["annotations"]):
        bbox = validation.check_annotation(ann, number, where, images, names)
        if ann.get("iscrowd", 0):
            continue
        box = validation.training_box(bbox, images[ann["image_id"]], fixes)
        if box is not None:
            per_image[ann["image_id"]].append(ann if box is bbox else {**ann, "bbox": box})
    validation.log_fixes(path, fixes, " (training targets; evaluation uses the boxes as written)")
    dataset = CocoDataset(
        name=name or path.stem,
        image_root=Path(image_root) if image_root is not None else path.parent,
        images=tuple(data["images"]),
        category_ids=tuple(c["id"] for c in categories),
        category_names=tuple(c["name"] for c in categories),
        annotations={k: tuple(v) for k, v in per_image.items()},
        source={**data, "categories": categories},
    )
    if check_files:
        check_image_files(dataset)
    return dataset


def check_image_files(dataset: CocoDataset, *, decode: bool = False) -> None:
    """Fail now, naming the files, if any image of ``dataset`` is missing, unreadable or not the json's size.

    Meant to run before training (a missing file otherwise surfaces when a loader worker reaches it);
    ``decode=True`` also decodes every image, catching truncated files.
    """
    validation.check_files(dataset.image_root, dataset.images, f"{dataset.name} ({dataset.image_root})",
                           decode=decode)


def subset(dataset: CocoDataset, image_ids: list[int]) -> CocoDataset:
    """``dataset`` restricted to ``image_ids`` (annotations and the evaluation json alike)."""
    keep = set(image_ids)
    images = tuple(img for img in dataset.images if img["id"] in keep)
    source = {**dataset.source, "images": [img for img in dataset.source["images"] if img["id"] in keep],
              "annotations": [a for a in dataset.source["annotations"] if a["image_id"] in keep]}
    return replace(dataset, images=images, annotations={i: dataset.annotations[i] for i in keep}, source=source)


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


def read_image(path: Path, max_side: int | None = None) -> Tensor:
    """An RGB image as float ``[3, H, W]`` in [0, 1], upright (EXIF orientation applied).

    See :func:`load_image` for the conversions, the pixel limit and ``max_side``.
    """
    return load_image(path, max_side)[0]


def load_image(path: Path, max_side: int | None = None) -> tuple[Tensor, tuple[float, float]]:
    """The image as :func:`read_image` returns it, and the (x, y) scale applied to it (1 unless reduced): the
    pixels of :func:`load_rgb` as float ``[3, H, W]`` in [0, 1]."""
    array, scale = load_rgb(path, max_side)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0), scale


def load_rgb(path: Path, max_side: int | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """The image as 8-bit RGB ``[H, W, 3]`` (``uint8``), and the (x, y) scale applied to it (1 unless reduced).

    - EXIF orientation is applied (``ImageOps.exif_transpose``): boxes refer to the upright image, whose
      size the importers record.
    - Alpha (RGBA, LA, PA, palette transparency) is composited over white; grayscale, palette and CMYK are
      converted to RGB; 16-bit modes (``I;16*``, ``I``) are scaled 0..65535 -> 0..255.
    - ``max_side``: images whose longer side is larger are reduced to it (JPEG decoded at a reduced scale
      with ``draft``), so a huge photo never becomes a huge float tensor. Without it, an image over
      :data:`MAX_PIXELS` is a ``DataError``.
    - A missing, empty, truncated or undecodable file, or a decompression bomb, is a ``DataError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file {path} not found")
    if path.stat().st_size == 0:
        raise DataError(f"image file {path} is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            rotated = image.getexif().get(validation.EXIF_ORIENTATION) in validation.SWAPPING_ORIENTATIONS
            width, height = image.size[::-1] if rotated else image.size
            scale = (1.0, 1.0)
            target = (width, height)
            if max_side is not None and max(width, height) > max_side:
                factor = max_side / max(width, height)
                target = (max(1, round(width * factor)), max(1, round(height * factor)))
                scale = (target[0] / width, target[1] / height)
                if image.format == "JPEG":
                    image.draft(None, target[::-1] if rotated else target)
            elif width * height > MAX_PIXELS:
                raise DataError(f"image {path} is {width}x{height} = {width * height} pixels, over the limit "
                                f"of {MAX_PIXELS} (scaledet.data.MAX_PIXELS); read it with max_side to "
                                "reduce it while decoding")
            rgb = _to_rgb(ImageOps.exif_transpose(image))
            if rgb.size != target:
                rgb = rgb.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
            array = np.asarray(rgb, dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"cannot decode image {path}: {error}") from error
    return array, scale


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: alpha composited over white, 16-bit scaled down (not clipped), other modes converted."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64).clip(0, 65535)
        gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def image_targets(dataset: CocoDataset, index: int, mapping: dict[int, int]) -> dict[str, Tensor]:
    """Boxes (xyxy, pixels) and label-space labels of image ``index``; degenerate boxes dropped."""
    image = dataset.images[index]
    anns = dataset.annotations[image["id"]]
    boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    labels = torch.tensor([mapping[a["category_id"]] for a in anns], dtype=torch.long)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return {"boxes": boxes[keep], "labels": labels[keep], "image_id": torch.tensor(image["id"])}


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Inside: the process's global CPU random streams (torch's default generator, numpy's, Python's) seeded from
    ``seed`` (a stream distinct from ``torch.Generator().manual_seed(seed)``'s); after: restored to where they
    were. So a transform that draws from them (a user's, a torchvision one) is a function of the sample's seed
    too, whichever process or loader worker runs it and whatever ran there before, and the caller's streams do
    not move (with ``num_workers=0`` the caller is the training process, whose RNG the model uses)."""
    derived = (int(seed) * 6364136223846793005 + 1442695040888963407) % 2**64  # one LCG step: not seed's stream
    saved = torch.default_generator.get_state(), np.random.get_state(), random.getstate()
    torch.default_generator.manual_seed(derived)  # CPU only: CUDA generators are not touched
    np.random.seed(derived % 2**32)
    random.seed(derived)
    try:
        yield
    finally:
        torch.default_generator.set_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


class DetectionDataset(torch.utils.data.Dataset):
    """Images and targets of one or more COCO datasets, labels mapped into one label space.

    Indexing takes ``i`` or ``(i, seed)``: the seed drives the random transform (its generator, and the global
    random streams while it runs: :func:`seeded_global_rngs`), so augmentation is a function of the sampler's
    stream (exact resume, any number of workers, persistent or not). With ``max_side``, larger
    images are reduced while decoding (``load_image``) and their boxes scaled by the same factors.
    """

    def __init__(self, datasets: list[CocoDataset], mappings: list[dict[int, int]], transform: Transform | None,
                 max_side: int | None = None):
        self.datasets = datasets
        self.max_side = max_side  # images with a longer side are reduced while decoding, boxes scaled alike
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
        image, (sx, sy) = load_image(dataset.image_root / dataset.images[local]["file_name"], self.max_side)
        target = image_targets(dataset, local, self.mappings[which])
        if (sx, sy) != (1.0, 1.0):
            target["boxes"] = target["boxes"] * torch.tensor([sx, sy, sx, sy])
        if self.transform is not None:
            with seeded_global_rngs(seed):
                image, target = self.transform(image, target, torch.Generator().manual_seed(int(seed)))
        return image, target


def collate(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """Lists of images and targets (detectors take variable-sized images)."""
    return [b[0] for b in batch], [b[1] for b in batch]
