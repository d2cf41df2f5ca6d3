"""Roboflow COCO exports: ``<export>/<split>/_annotations.coco.json`` with the split's images beside it.

Splits are the folders ``train``, ``valid`` (or ``val``) and ``test``. Category names are matched later; a
category with id 0 and no boxes (Roboflow's root category, named after the project) is dropped and counted.
Boxes are COCO ``[x, y, w, h]`` in pixels; image sizes are the json's ``width``/``height`` when given.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from harness.acquire.importers.records import SourceBox, SourceDataset, SourceImage, safe_relative, split_name
from scaledet.errors import DataError
from scaledet.validation import is_id, is_number

FORMAT = "coco"
ANNOTATION_NAME = "_annotations.coco.json"


def split_files(source: Path) -> dict[str, Path]:
    """Split -> its ``_annotations.coco.json``, for the split folders of ``source`` that have one."""
    found: dict[str, Path] = {}
    for child in sorted(p for p in source.iterdir() if p.is_dir()):
        split = split_name(child.name)
        if split and (child / ANNOTATION_NAME).is_file():
            if split in found:
                raise DataError(f"{source}: split {split} appears twice "
                                f"({found[split].parent.name}, {child.name})")
            found[split] = child / ANNOTATION_NAME
    return found


def looks_like(source: Path) -> bool:
    return bool(split_files(source))


def read(source: Path) -> SourceDataset:
    """Every split of a Roboflow COCO export, class names in order of first appearance by category id."""
    files = split_files(source)
    if not files:
        raise DataError(f"{source}: no COCO split found (expected <split>/{ANNOTATION_NAME} for split "
                        "folders train, valid, test)")
    names: list[str] = []
    splits: dict[str, list[SourceImage]] = {}
    fixes: dict[str, Counter[str]] = {}
    for split, path in files.items():
        fixes[split] = Counter()
        splits[split] = _read_split(path, names, fixes[split])
    return SourceDataset(FORMAT, tuple(names), f"the categories of {', '.join(map(str, files.values()))}",
                         splits, fixes)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read COCO annotations {path}: {error}") from error
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a COCO object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: field '{key}' missing or not a list")
    return data


def _read_split(path: Path, names: list[str], fixes: Counter[str]) -> list[SourceImage]:
    data = _load(path)
    used = {ann.get("category_id") for ann in data["annotations"]
            if isinstance(ann, dict) and is_id(ann.get("category_id"))}
    label_of: dict[Any, int] = {}
    named: dict[str, int] = {}
    for cat in data["categories"]:
        if not isinstance(cat, dict) or not is_id(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise DataError(f"{path}: category {cat!r:.200} needs an integer 'id' and a string 'name'")
        if cat["id"] == 0 and 0 not in used:
            fixes["root_category"] += 1
            continue
        if cat["id"] in label_of:
            raise DataError(f"{path}: category id {cat['id']} appears twice; category ids must be unique")
        if cat["name"] in named:
            raise DataError(f"{path}: category name {cat['name']!r} is used by ids {named[cat['name']]} and "
                            f"{cat['id']}; category names must be unique")
        named[cat["name"]] = cat["id"]
        if cat["name"] not in names:
            names.append(cat["name"])
        label_of[cat["id"]] = names.index(cat["name"])
    boxes: dict[Any, list[SourceBox]] = {}
    for image in data["images"]:
        if not isinstance(image, dict) or not is_id(image.get("id")) or not isinstance(image.get("file_name"), str):
            raise DataError(f"{path}: image {image!r:.200} needs an integer 'id' and a string 'file_name'")
        if image["id"] in boxes:
            raise DataError(f"{path}: image id {image['id']} appears twice")
        boxes[image["id"]] = []
    for ann in data["annotations"]:
        where = f"{path}: annotation {ann.get('id') if isinstance(ann, dict) else ann!r}"
        if not isinstance(ann, dict):
            raise DataError(f"{where}: expected an object")
        if not is_id(ann.get("image_id")) or ann["image_id"] not in boxes:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not an image of the file")
        if not is_id(ann.get("category_id")) or ann["category_id"] not in label_of:
            raise DataError(f"{where}: category_id {ann.get('category_id')!r} is not a category of the file")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
            raise DataError(f"{where}: field 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        boxes[ann["image_id"]].append(SourceBox(label_of[ann["category_id"]], x, y, x + w, y + h,
                                                iscrowd=int(bool(ann.get("iscrowd", 0)))))
    out = []
    for image in data["images"]:
        file_name = safe_relative(image["file_name"], f"{path}: image {image['id']}")
        image_path = path.parent / file_name
        if not _is_file(image_path):
            raise DataError(f"{path}: image {image['id']}: file {image_path} not found (file_name is "
                            "relative to the json's folder)")
        width, height = image.get("width"), image.get("height")
        sized = is_id(width) and is_id(height) and width > 0 and height > 0
        out.append(SourceImage(image_path, file_name, tuple(boxes[image["id"]]),
                               width if sized else None, height if sized else None))
    return out


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        return False
