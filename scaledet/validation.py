"""Checks of COCO annotation records and of the image files they name (``load_coco``, ``coco_eval``).

Malformed input is a :class:`~scaledet.errors.DataError` naming the file, the image / annotation /
category id, the field and what was expected. Box fixes for training (degenerate boxes dropped, boxes
clipped to the image) are counted by :func:`training_boxes` and logged once per file by the caller.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from scaledet.errors import DataError
from scaledet.images import decode_problem

log = logging.getLogger(__name__)

CLIP_TOLERANCE = 1e-6  # pixels: a corner moved by less is float noise, not a fix
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that exif_transpose turns by 90 degrees
EXIF_ORIENTATION = 0x0112

# fix kind -> how the log line describes it
FIXES: dict[str, str] = {
    "root_category": "Roboflow id-0 root category without boxes dropped",
    "degenerate": "boxes with zero or negative width/height dropped from the training targets",
    "clipped": "boxes clipped to the image",
    "outside": "boxes outside the image dropped from the training targets",
}


def is_number(value: Any) -> bool:
    """A finite int or float (``bool`` is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_bbox(bbox: Any, where: str) -> list[float]:
    """``[x, y, w, h]`` as floats; anything but a list of 4 finite numbers is a ``DataError``."""
    if not isinstance(bbox, list | tuple) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
        raise DataError(f"{where}: field 'bbox' must be a list of 4 finite numbers [x, y, w, h], got {bbox!r}")
    return [float(v) for v in bbox]


def check_layout(data: Any, path: str) -> None:
    """A COCO object with list fields ``images``, ``annotations`` and ``categories``."""
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a COCO object with fields images, annotations, categories, "
                        f"got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: field '{key}' missing or not a list")


def check_images(images: list[Any], path: str, *, need_file_name: bool = True) -> dict[int, dict[str, Any]]:
    """Image id -> record; an id must be an int and appear once; ``width``/``height`` positive when given.

    ``file_name``, when present (or required), is a non-empty string: LVIS records have ``coco_url``
    instead, and get their file names later (``harness.catalog.upstream``).
    """
    out: dict[int, dict[str, Any]] = {}
    for number, image in enumerate(images):
        if not isinstance(image, dict) or not is_id(image.get("id")):
            raise DataError(f"{path}: images[{number}] needs an integer 'id', got {image!r:.200}")
        where = f"{path}: image {image['id']}"
        if image["id"] in out:
            raise DataError(f"{where}: image id appears twice (images[{number}]); image ids must be unique")
        if ((need_file_name or "file_name" in image)
                and (not isinstance(image.get("file_name"), str) or not image["file_name"])):
            raise DataError(f"{where}: field 'file_name' must be a non-empty string, got "
                            f"{image.get('file_name')!r}")
        for key in ("width", "height"):
            value = image.get(key)
            if value is not None and not (is_number(value) and value > 0):
                raise DataError(f"{where}: field '{key}' must be a positive number, got {value!r}")
        out[image["id"]] = image
    return out


def check_categories(categories: list[Any], path: str) -> dict[int, str]:
    """Category id -> name; ids are ints, ids and names are unique. Names that differ only by whitespace are
    two classes with one text (GLIP's boggleBoards has 'o' and 'o '): kept, with a warning."""
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for number, cat in enumerate(categories):
        if not isinstance(cat, dict) or not is_id(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise DataError(f"{path}: categories[{number}] needs an integer 'id' and a string 'name', got "
                            f"{cat!r:.200}")
        cid, name = cat["id"], cat["name"]
        if cid in names:
            raise DataError(f"{path}: category id {cid} appears twice ({names[cid]!r} and {name!r}); "
                            "category ids must be unique")
        if name in seen:
            raise DataError(f"{path}: category name {name!r} is used by ids {seen[name]} and {cid}; "
                            "category names must be unique")
        twins = [other for other in seen if other.strip() == name.strip()]
        if twins:
            log.warning("%s: category names %r (id %d) and %r (id %d) differ only by whitespace: two classes "
                        "with one text", path, twins[0], seen[twins[0]], name, cid)
        names[cid], seen[name] = name, cid
    return names


def check_annotation(ann: Any, number: int, path: str, images: dict[int, Any], categories: dict[int, str]
                     ) -> list[float]:
    """The annotation's bbox; its ``image_id`` / ``category_id`` must exist, ``area``/``iscrowd`` be numbers."""
    if not isinstance(ann, dict):
        raise DataError(f"{path}: annotations[{number}]: expected an object, got {ann!r:.200}")
    where = f"{path}: annotation {ann.get('id', f'[{number}]')!r}"
    image_id, category_id = ann.get("image_id"), ann.get("category_id")
    if not is_id(image_id) or image_id not in images:
        raise DataError(f"{where}: image_id {image_id!r} is not an image id of the file")
    if not is_id(category_id) or category_id not in categories:
        raise DataError(f"{where}: category_id {category_id!r} is not a category id of the file "
                        f"(ids {sorted(categories)[:10]})")
    bbox = check_bbox(ann.get("bbox"), where)
    if "area" in ann and not is_number(ann["area"]):
        raise DataError(f"{where}: field 'area' must be a finite number, got {ann['area']!r}")
    if ann.get("iscrowd", 0) not in (0, 1):
        raise DataError(f"{where}: field 'iscrowd' must be 0 or 1, got {ann.get('iscrowd')!r}")
    return bbox


def drop_root_category(categories: list[Any], annotations: list[Any], fixes: Counter[str],
                       root_ids: Collection[int] = (0,)) -> list[Any]:
    """Without the root categories (Roboflow's, id 0 by default; ``root_ids``) that no annotation uses
    (counted as ``root_category``)."""
    used = {a["category_id"] for a in annotations if isinstance(a, dict) and is_id(a.get("category_id"))}
    dropped = set(root_ids) - used
    kept = [c for c in categories if not (isinstance(c, dict) and is_id(c.get("id")) and c["id"] in dropped)]
    fixes["root_category"] += len(categories) - len(kept)
    return kept


def training_box(bbox: list[float], image: dict[str, Any], fixes: Counter[str]) -> list[float] | None:
    """``bbox`` clipped to the image when its size is known; ``None`` when nothing is left. Fixes counted."""
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        fixes["degenerate"] += 1
        return None
    width, height = image.get("width"), image.get("height")
    if width is None or height is None:
        return bbox
    x0, x1 = min(max(x, 0.0), float(width)), min(max(x + w, 0.0), float(width))
    y0, y1 = min(max(y, 0.0), float(height)), min(max(y + h, 0.0), float(height))
    if x1 <= x0 or y1 <= y0:
        fixes["outside"] += 1
        return None
    if any(abs(a - b) > CLIP_TOLERANCE for a, b in zip((x, y, x + w, y + h), (x0, y0, x1, y1))):
        fixes["clipped"] += 1
        return [x0, y0, x1 - x0, y1 - y0]
    return bbox


def log_fixes(path: str | Path, fixes: Counter[str], what: str = "") -> None:
    """One warning line per file listing the fixes made, with counts (nothing when there were none)."""
    done = {k: v for k, v in fixes.items() if v}
    if done:
        parts = ", ".join(f"{v} {FIXES.get(k, k)}" for k, v in sorted(done.items()))
        log.warning("%s: %s%s", path, parts, what)


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) as the model sees the image: after ``exif_transpose`` (header only, no decoding)."""
    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(EXIF_ORIENTATION)
    return (height, width) if orientation in SWAPPING_ORIENTATIONS else (width, height)


def check_files(image_root: Path, images: Iterable[dict[str, Any]], where: str, *, decode: bool = False,
                limit: int = 10) -> None:
    """Every image file exists, is a readable image and has the json's size (after EXIF rotation).

    Run before training so a bad file fails at once, naming it, instead of hours later in a loader
    worker. ``decode=True`` also decodes every file (catches truncated files; slower). All problems are
    collected and the first ``limit`` reported in one ``DataError``.
    """
    problems: list[str] = []
    count = 0
    for image in images:
        if not isinstance(image.get("file_name"), str):
            problem: str | None = "no field 'file_name'"
        else:
            problem = _file_problem(image_root / image["file_name"], image, decode)
        if problem:
            count += 1
            if len(problems) < limit:
                problems.append(f"image {image['id']}: {problem}")
    if count:
        more = f" (and {count - len(problems)} more)" if count > len(problems) else ""
        raise DataError(f"{where}: {count} image files are missing or unreadable: "
                        f"{'; '.join(problems)}{more}")


def _file_problem(path: Path, image: dict[str, Any], decode: bool) -> str | None:
    try:
        if not path.is_file():
            return f"file {path} not found"
        if path.stat().st_size == 0:
            return f"file {path} is empty (0 bytes)"
        size = header_size(path)
        if decode and (problem := decode_problem(path)):
            return problem
    except DataError as error:
        return str(error)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        return f"cannot read image {path}: {error}"
    expected = (image.get("width"), image.get("height"))
    if None not in expected and tuple(round(v) for v in expected) != size:
        return (f"file {path} is {size[0]}x{size[1]} (after EXIF rotation) but the json says "
                f"{expected[0]}x{expected[1]}")
    return None
