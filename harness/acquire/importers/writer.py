"""Write GLIP's layout: per split ``<split file>`` json with the split's images copied beside it.

Boxes are converted to pixels, clipped to the image and dropped when their area is zero; each change is
counted. Image and annotation ids start at 1; ``file_name`` is relative to the json's folder.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from harness.acquire.importers.records import SourceBox, SourceImage
from harness.acquire.importers.summary import SplitCounts
from harness.catalog.datasets import DatasetSpec
from scaledet.errors import DataError
from scaledet.validation import header_size

CLIP_TOLERANCE = 1e-6  # pixels: a corner moved by less is float noise, not a fix


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the upright image, as ``scaledet.data.read_image`` gives it (EXIF orientation
    applied), from the image header (PIL does not decode the pixels)."""
    try:
        return header_size(path)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image size of {path}: {error}") from error


def clip_box(box: SourceBox, width: int, height: int) -> tuple[list[float] | None, bool]:
    """``[x, y, w, h]`` in pixels clipped to the image (``None``: zero area), and whether it moved."""
    sx, sy = (width, height) if box.normalized else (1, 1)
    raw = (box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy)
    x0, x1 = (min(max(v, 0.0), float(width)) for v in raw[0::2])
    y0, y1 = (min(max(v, 0.0), float(height)) for v in raw[1::2])
    if x1 <= x0 or y1 <= y0:
        return None, False
    moved = any(abs(a - b) > CLIP_TOLERANCE for a, b in zip(raw, (x0, y0, x1, y1)))
    return [x0, y0, x1 - x0, y1 - y0], moved


def write_splits(spec: DatasetSpec, splits: Mapping[str, list[SourceImage]], category_of: Mapping[int, int],
                 folder: Path, read_fixes: Mapping[str, Counter[str]]) -> dict[str, SplitCounts]:
    """Write every split of ``splits`` under ``folder`` (the variant folder); counts per split."""
    categories = [{"id": cid, "name": name, "supercategory": "none"} for cid, name in spec.categories]
    copied: dict[Path, Path] = {}  # destination -> source, across splits sharing a folder
    result = {}
    with tqdm(total=sum(len(v) for v in splits.values()), desc=f"import {spec.name}", unit="img") as bar:
        for split, images in splits.items():
            json_path = folder / spec.split_files[split]
            json_path.parent.mkdir(parents=True, exist_ok=True)
            fixes: Counter[str] = Counter(read_fixes.get(split, {}))
            entries, annotations = [], []
            for image in images:
                width, height = image.width, image.height
                if not width or not height:
                    width, height = image_size(image.path)
                    if image.size_missing:
                        fixes["size_from_image"] += 1
                image_id = len(entries) + 1
                entries.append({"id": image_id, "file_name": image.file_name, "width": width,
                                "height": height})
                for box in image.boxes:
                    bbox, moved = clip_box(box, width, height)
                    if bbox is None:
                        fixes["zero_area"] += 1
                        continue
                    fixes["clipped"] += moved
                    annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                        "category_id": category_of[box.label], "bbox": bbox,
                                        "area": bbox[2] * bbox[3], "iscrowd": box.iscrowd})
                _copy(image.path, json_path.parent / image.file_name, copied)
                bar.update()
            content = {"info": {"description": f"{spec.name} {split}, written by harness data import"},
                       "licenses": [], "categories": categories, "images": entries,
                       "annotations": annotations}
            json_path.write_text(json.dumps(content))
            result[split] = SplitCounts(len(entries), len(annotations), {k: v for k, v in fixes.items() if v},
                                        tuple(e["file_name"] for e in entries))
    return result


def _copy(source: Path, destination: Path, copied: dict[Path, Path]) -> None:
    if destination in copied:
        if copied[destination] != source:
            raise DataError(f"two source images would be written to {destination.name} in one folder: "
                            f"{copied[destination]} and {source}")
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    copied[destination] = source
