"""Pascal VOC XML exports, in two layouts.

- Roboflow's: ``<export>/<split>/<image>.xml`` beside ``<split>/<image>.jpg`` (splits train, valid/val, test).
- One folder of XML files: ``annotations/`` or ``Annotations/``, images in ``images/`` or ``JPEGImages/`` (or
  beside the XML). Splits come from ``ImageSets/Main/<split>.txt`` (image ids), else from
  ``<split>_labels.csv`` files (in the export or its ``data/``; column ``filename``), as in the original
  Raccoon release (``data/train_labels.csv``, ``data/test_labels.csv``); with no list every image is
  ``train``. Images in no list are skipped and counted.

Boxes are ``xmin ymin xmax ymax`` taken as pixel corners as written (no 1-based shift, as Roboflow converts
them); every object is kept (``difficult`` is not used). A file without ``<size>`` (or with a zero size) gets
the size from the image header, counted as the fix ``size_from_image``. The image is ``<filename>`` in the
image folder, else the XML's stem with an image suffix.
"""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from harness.acquire.importers.records import (
    IMAGE_SUFFIXES,
    SourceBox,
    SourceDataset,
    SourceImage,
    split_name,
)
from scaledet.errors import DataError

FORMAT = "voc"
XML_FOLDERS = ("annotations", "Annotations")
IMAGE_FOLDERS = ("images", "JPEGImages")
CORNERS = ("xmin", "ymin", "xmax", "ymax")


def split_folders(source: Path) -> dict[str, Path]:
    """Roboflow layout: split -> folder holding its XML files and images."""
    found = {}
    for child in sorted(p for p in source.iterdir() if p.is_dir()):
        split = split_name(child.name)
        if split and any(child.glob("*.xml")):
            found[split] = child
    return found


def xml_folder(source: Path) -> Path | None:
    folders = (source / n for n in XML_FOLDERS)
    return next((f for f in folders if f.is_dir() and any(f.glob("*.xml"))), None)


def looks_like(source: Path) -> bool:
    return bool(split_folders(source)) or xml_folder(source) is not None


def read(source: Path) -> SourceDataset:
    """Every split of a VOC export; class names in order of first appearance."""
    names: list[str] = []
    fixes: dict[str, Counter[str]] = {}
    folders = split_folders(source)
    if folders:
        splits = {split: [_read_xml(x, folder, names) for x in sorted(folder.glob("*.xml"))]
                  for split, folder in folders.items()}
        where = ", ".join(str(f) for f in folders.values())
    else:
        xml_dir = xml_folder(source)
        if xml_dir is None:
            raise DataError(f"{source}: no VOC XML found (expected <split>/*.xml, or annotations/*.xml with "
                            "images/)")
        image_dir = next((source / n for n in IMAGE_FOLDERS if (source / n).is_dir()), xml_dir)
        images = {x.stem: _read_xml(x, image_dir, names) for x in sorted(xml_dir.glob("*.xml"))}
        splits, unlisted = _assign(source, images)
        fixes = {"train" if "train" in splits else next(iter(splits)): Counter(unlisted_image=unlisted)}
        where = str(xml_dir)
    return SourceDataset(FORMAT, tuple(names), f"the <name> tags of the XML files in {where}", splits, fixes)


def _assign(source: Path, images: dict[str, SourceImage]) -> tuple[dict[str, list[SourceImage]], int]:
    """Split the images by the export's split lists (all ``train`` without lists); also the unlisted count."""
    lists = _split_lists(source)
    if not lists:
        return {"train": list(images.values())}, 0
    by_name = {image.path.name: stem for stem, image in images.items()}
    splits: dict[str, list[SourceImage]] = {}
    listed: set[str] = set()
    for split, entries in lists.items():
        stems = []
        for where, entry in entries:
            stem = entry if entry in images else by_name.get(entry)
            if stem is None:
                raise DataError(f"{where}: {entry!r} has no XML file among the export's annotations")
            if stem in listed and stem not in stems:
                raise DataError(f"{where}: {entry!r} is listed in two splits")
            if stem not in stems:
                stems.append(stem)
            listed.add(stem)
        splits[split] = [images[s] for s in sorted(stems)]
    return splits, sum(1 for stem in images if stem not in listed)


def _split_lists(source: Path) -> dict[str, list[tuple[str, str]]]:
    """Split -> [(``file:line``, image id or file name)] from ImageSets/Main or ``<split>_labels.csv``."""
    lists: dict[str, list[tuple[str, str]]] = {}
    main = source / "ImageSets" / "Main"
    for path in sorted(main.glob("*.txt")) if main.is_dir() else []:
        split = split_name(path.stem)
        if split:
            lines = enumerate(_text(path).splitlines(), start=1)
            lists[split] = [(f"{path}:{n}", line.split()[0]) for n, line in lines if line.strip()]
    if lists:
        return lists
    for path in sorted([*source.glob("*_labels.csv"), *source.glob("data/*_labels.csv")]):
        split = split_name(path.stem.removesuffix("_labels"))
        if split:
            lists[split] = _csv_entries(path)
    return lists


def _csv_entries(path: Path) -> list[tuple[str, str]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if "filename" not in (reader.fieldnames or []):
                raise DataError(f"{path}: no 'filename' column (header: {reader.fieldnames})")
            return [(f"{path}:{reader.line_num}", row["filename"]) for row in reader if row.get("filename")]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read split list {path}: {error}") from error


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read split list {path}: {error}") from error


def _read_xml(path: Path, image_dir: Path, names: list[str]) -> SourceImage:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        raise DataError(f"cannot read VOC XML {path}: {error}") from error
    image_path = _image_of(path, root.findtext("filename"), image_dir)
    width, height = _size(path, root)
    boxes = []
    for index, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{path}: object {index}: field 'name' missing or empty")
        corners = []
        for key in CORNERS:
            text = obj.findtext(f"bndbox/{key}")
            try:
                corners.append(float(text))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DataError(f"{path}: object {index} ({name}): field 'bndbox/{key}' missing or not a "
                                f"number (got {text!r})") from None
        if not all(math.isfinite(v) for v in corners):
            raise DataError(f"{path}: object {index} ({name}): bndbox values must be finite, got {corners}")
        if name not in names:
            names.append(name)
        boxes.append(SourceBox(names.index(name), *corners))
    return SourceImage(image_path, image_path.name, tuple(boxes), width, height, size_missing=width is None)


def _image_of(path: Path, file_name: str | None, image_dir: Path) -> Path:
    candidates = [image_dir / Path(file_name.strip()).name] if file_name and file_name.strip() else []
    candidates += [image_dir / f"{path.stem}{suffix}" for suffix in IMAGE_SUFFIXES]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DataError(f"{path}: image not found (looked for {', '.join(c.name for c in candidates[:3])}... "
                        f"in {image_dir})")
    return found


def _size(path: Path, root: ET.Element) -> tuple[int | None, int | None]:
    size = root.find("size")
    if size is None:
        return None, None
    values = []
    for key in ("width", "height"):
        text = size.findtext(key)
        try:
            values.append(int(float(text)) if text and text.strip() else 0)
        except (ValueError, OverflowError):
            raise DataError(f"{path}: field 'size/{key}' is not a number (got {text!r})") from None
    if min(values) <= 0:
        return None, None
    return values[0], values[1]
