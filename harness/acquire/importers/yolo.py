"""Roboflow / Ultralytics YOLO exports: ``data.yaml`` (``names``) and ``<split>/images`` + ``<split>/labels``.

Also accepted: ``images/<split>`` + ``labels/<split>``. ``data.yaml``'s split paths are not used (Roboflow
writes them relative to other roots); splits are the folders ``train``, ``valid`` (or ``val``), ``test``.
A label file ``<stem>.txt`` holds one ``class cx cy w h`` line per box, normalised to [0, 1]; an empty label
file is an image with no objects, as is an image without a label file (counted and reported).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import yaml

from harness.acquire.importers.records import SourceBox, SourceDataset, SourceImage, image_files, split_name
from scaledet.errors import DataError

FORMAT = "yolo"
YAML_NAMES = ("data.yaml", "data.yml")


def split_folders(source: Path) -> dict[str, tuple[Path, Path]]:
    """Split -> (images folder, labels folder) in either supported layout."""
    found: dict[str, tuple[Path, Path]] = {}
    for child in sorted(p for p in source.iterdir() if p.is_dir()):
        split = split_name(child.name)
        if split and (child / "images").is_dir():
            found[split] = (child / "images", child / "labels")
    if (source / "images").is_dir():
        for child in sorted(p for p in (source / "images").iterdir() if p.is_dir()):
            split = split_name(child.name)
            if split and split not in found:
                found[split] = (child, source / "labels" / child.name)
    return found


def yaml_file(source: Path) -> Path | None:
    return next((source / n for n in YAML_NAMES if (source / n).is_file()), None)


def looks_like(source: Path) -> bool:
    if yaml_file(source) is not None:
        return True
    return any(labels.is_dir() for _, labels in split_folders(source).values())


def class_names(path: Path) -> tuple[str, ...]:
    """``names`` of a data.yaml (a list, or a mapping 0..n-1 -> name), checked against ``nc`` when present."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict) and set(names) == set(range(len(names))):
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: field 'names' must be a non-empty list of class names "
                        f"(or a mapping 0..n-1 -> name), got {names!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: field 'names' lists {repeated} more than once; class names must be unique")
    if "nc" in data and data["nc"] != len(names):
        raise DataError(f"{path}: field 'nc' is {data['nc']!r} but 'names' lists {len(names)} classes")
    return tuple(names)


def read(source: Path) -> SourceDataset:
    """Every split of a YOLO export; label files are parsed strictly (errors name the file and line)."""
    path = yaml_file(source)
    if path is None:
        raise DataError(f"{source}: no data.yaml (the YOLO export's class names) found")
    names = class_names(path)
    folders = split_folders(source)
    if not folders:
        raise DataError(f"{source}: no YOLO split found (expected <split>/images and <split>/labels for "
                        "split folders train, valid, test)")
    splits: dict[str, list[SourceImage]] = {}
    fixes: dict[str, Counter[str]] = {}
    for split, (images_dir, labels_dir) in folders.items():
        fixes[split] = Counter()
        images = image_files(images_dir)
        stems = {p.stem for p in images}
        if labels_dir.is_dir():
            fixes[split]["orphan_label"] += sum(1 for p in labels_dir.glob("*.txt") if p.stem not in stems)
        splits[split] = []
        for image in images:
            label_file = labels_dir / f"{image.stem}.txt"
            if label_file.is_file():
                boxes = parse_label_file(label_file, names, path)
            else:
                fixes[split]["no_label_file"] += 1
                boxes = ()
            splits[split].append(SourceImage(image, image.name, boxes))
    return SourceDataset(FORMAT, names, f"{path} (names)", splits, fixes)


def parse_label_file(path: Path, names: tuple[str, ...], yaml_path: Path) -> tuple[SourceBox, ...]:
    """Boxes of one label file; a malformed line is a ``DataError`` naming ``path:line``."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read label file {path}: {error}") from error
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 5:
            raise DataError(f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}: "
                            f"{line.strip()!r}")
        try:
            value = float(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise DataError(f"{where}: expected a class id and 4 numbers, got {line.strip()!r}") from None
        if not value.is_integer() or not 0 <= value < len(names):
            raise DataError(f"{where}: class id {fields[0]} out of range: {yaml_path} names {len(names)} "
                            f"classes (ids 0..{len(names) - 1})")
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{where}: box values must be finite numbers, got {line.strip()!r}")
        cx, cy, w, h = values
        boxes.append(SourceBox(int(value), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, normalized=True))
    return tuple(boxes)
