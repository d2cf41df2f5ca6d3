"""OpenImages v6 boxable CSVs → COCO json, streaming and cached.

- Boxes: ``XMin, XMax, YMin, YMax`` are fractions of the image size → absolute ``[x, y, w, h]``.
  Sizes come from an image-sizes CSV (``ImageID,Width,Height``) when given, else from each image's header
  (PIL reads only the header), once per image.
- ``IsGroupOf`` 1 → ``iscrowd`` 1. ``LabelName`` MIDs map to the class list's ids (row numbers of
  ``class-descriptions-boxable.csv``); an unknown MID is counted, skipped and reported.
- Optional image-level labels (``ImageID,Source,LabelName,Confidence``): per image ``pos_category_ids``
  (confidence 1) and ``neg_category_ids`` (confidence 0), what the OpenImages metric needs; images with
  verified labels and no boxes are kept (they can hold false positives).
- Memory: rows are streamed with :mod:`csv` and annotations written as they come; what is kept is one
  small entry per distinct image (id map, size, image-level labels), not per row.
- Cache: the output name carries a hash of the inputs' paths, sizes and mtimes, the class list and the
  converter version; a re-run with the same inputs returns the existing file without reading the CSV.
  (Image headers are not part of the key: replacing images in place needs ``force=True``.)
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from harness.catalog.upstream_labels import UpstreamClass, upstream_classes
from scaledet.errors import DataError
from scaledet.files import atomic_write_text, cache_dir

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf")


@dataclass(frozen=True)
class ConversionResult:
    """The COCO json written (or found in the cache) and what the conversion counted."""

    path: Path
    images: int
    annotations: int
    unknown_mids: dict[str, int]  # MID -> rows skipped
    cached: bool


def cache_root() -> Path:
    """``$SCALEDET_CACHE/openimages-coco``, else the user cache dir's ``openimages-coco``."""
    return cache_dir("openimages-coco")


def convert_openimages(
    bbox_csv: Path,
    out_dir: Path,
    *,
    image_dir: Path | None = None,
    image_sizes: Path | None = None,
    image_labels: Path | None = None,
    class_csv: Path | None = None,
    classes: Sequence[UpstreamClass] | None = None,
    force: bool = False,
) -> ConversionResult:
    """Convert ``bbox_csv`` to a COCO json in ``out_dir`` (cached; see the module docstring)."""
    classes = tuple(classes or upstream_classes("openimages"))
    if image_sizes is None and image_dir is None:
        raise DataError(f"{bbox_csv}: image sizes are needed: give an image-sizes CSV or the image folder")
    if class_csv is not None:
        check_class_csv(class_csv, classes)
    inputs = [p for p in (bbox_csv, image_sizes, image_labels, class_csv) if p is not None]
    key = _cache_key(inputs, classes, image_dir)
    out = Path(out_dir) / f"{Path(bbox_csv).stem}-{key[:16]}.json"
    meta = out.with_suffix(".meta.json")
    if out.is_file() and meta.is_file() and not force:
        log.info("OpenImages conversion cached: %s", out)
        return ConversionResult(**{**json.loads(meta.read_text()), "path": out, "cached": True})
    out.parent.mkdir(parents=True, exist_ok=True)
    sizes = _SizeSource(image_sizes, image_dir)
    labels = read_image_labels(image_labels, classes) if image_labels is not None else {}
    counts = _write_coco(Path(bbox_csv), out, classes, sizes, labels)
    result = ConversionResult(out, counts["images"], counts["annotations"], dict(counts["unknown"]), False)
    atomic_write_text(meta, json.dumps({k: v for k, v in asdict(result).items() if k not in ("path", "cached")}))
    if result.unknown_mids:
        top = ", ".join(f"{mid} ({n})" for mid, n in Counter(result.unknown_mids).most_common(5))
        log.warning("%s: %d rows with MIDs not in the class list skipped: %s", bbox_csv,
                    sum(result.unknown_mids.values()), top)
    log.info("OpenImages conversion: %d images, %d boxes -> %s", result.images, result.annotations, out)
    return result


def check_class_csv(path: Path, classes: Sequence[UpstreamClass]) -> None:
    """``class-descriptions-boxable.csv`` (``MID,Name`` rows, optional header) must list our classes in order."""
    rows = [row for row in _read_rows(path) if row and row[0] != "LabelName"]
    found = [row[0] for row in rows]
    expected = [c.mid for c in classes]
    if found != expected:
        diff = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b), min(len(found), len(expected)))
        raise DataError(f"{path}: {len(found)} classes, expected the {len(expected)} OpenImages v6 boxable "
                        f"classes in order; first difference at row {diff + 1}")


def read_image_labels(path: Path, classes: Sequence[UpstreamClass]) -> dict[str, tuple[set[int], set[int]]]:
    """ImageID → (positive, negative) class ids from a human-verified image-level labels CSV."""
    ids = {c.mid: c.original_id for c in classes}
    labels: dict[str, tuple[set[int], set[int]]] = {}
    for line, row in _dict_rows(path, ("ImageID", "LabelName", "Confidence")):
        cid = ids.get(row["LabelName"])
        if cid is None:
            continue
        pos, neg = labels.setdefault(row["ImageID"], (set(), set()))
        (pos if _number(row, "Confidence", path, line) > 0 else neg).add(cid)
    return labels


def _write_coco(bbox_csv: Path, out: Path, classes: Sequence[UpstreamClass], sizes: _SizeSource,
                labels: Mapping[str, tuple[set[int], set[int]]]) -> dict[str, Any]:
    ids = {c.mid: c.original_id for c in classes}
    categories = [{"id": c.original_id, "name": c.name, "mid": c.mid} for c in classes]
    image_ids: dict[str, int] = {}
    unknown: Counter[str] = Counter()
    n_ann = 0
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        images_part = Path(tmp) / "images.json"
        body = Path(tmp) / "coco.json"
        with images_part.open("w") as images_out, body.open("w") as ann_out:
            ann_out.write('{"info": {"description": "OpenImages v6 boxes converted by scaledet-harness", '
                          f'"source": {json.dumps(str(bbox_csv))}}}, "licenses": [], '
                          f'"categories": {json.dumps(categories)}, "annotations": [\n')
            for line, row in tqdm(_dict_rows(bbox_csv, BOX_COLUMNS), desc="OpenImages boxes", unit=" rows",
                                  disable=None, mininterval=5):
                cid = ids.get(row["LabelName"])
                if cid is None:
                    unknown[row["LabelName"]] += 1
                    continue
                image_id = image_ids.get(row["ImageID"])
                if image_id is None:
                    image_id = image_ids[row["ImageID"]] = len(image_ids) + 1
                    _write_image(images_out, image_id, row["ImageID"], sizes, labels)
                width, height = sizes.get(row["ImageID"])
                n_ann += 1
                ann = _annotation(row, n_ann, image_id, cid, width, height, bbox_csv, line)
                ann_out.write(("" if n_ann == 1 else ",\n") + json.dumps(ann))
            for name in labels:
                if name not in image_ids:
                    image_ids[name] = len(image_ids) + 1
                    _write_image(images_out, image_ids[name], name, sizes, labels)
            ann_out.write('\n], "images": [\n')
        with body.open("a") as ann_out, images_part.open() as images_in:
            shutil.copyfileobj(images_in, ann_out)
            ann_out.write("\n]}\n")
        os.replace(body, out)
    return {"images": len(image_ids), "annotations": n_ann, "unknown": unknown}


def _write_image(stream: IO[str], image_id: int, name: str, sizes: _SizeSource,
                 labels: Mapping[str, tuple[set[int], set[int]]]) -> None:
    width, height = sizes.get(name)
    entry: dict[str, Any] = {"id": image_id, "file_name": f"{name}.jpg", "width": width, "height": height,
                             "openimages_id": name}
    if name in labels:
        pos, neg = labels[name]
        entry["pos_category_ids"] = sorted(pos)
        entry["neg_category_ids"] = sorted(neg)
    stream.write(("" if image_id == 1 else ",\n") + json.dumps(entry))


def _annotation(row: Mapping[str, str], ann_id: int, image_id: int, cid: int, width: int, height: int,
                path: Path, line: int) -> dict[str, Any]:
    x0, x1 = _number(row, "XMin", path, line) * width, _number(row, "XMax", path, line) * width
    y0, y1 = _number(row, "YMin", path, line) * height, _number(row, "YMax", path, line) * height
    w, h = x1 - x0, y1 - y0
    return {"id": ann_id, "image_id": image_id, "category_id": cid,
            "bbox": [round(x0, 3), round(y0, 3), round(w, 3), round(h, 3)], "area": round(w * h, 3),
            "iscrowd": int(_number(row, "IsGroupOf", path, line) == 1)}


class _SizeSource:
    """Image sizes by OpenImages ImageID: from a sizes CSV, else from each image's header."""

    def __init__(self, sizes_csv: Path | None, image_dir: Path | None):
        self.image_dir = image_dir
        self.last: tuple[str, tuple[int, int]] | None = None
        self.table: dict[str, tuple[int, int]] | None = None
        if sizes_csv is not None:
            self.table = {row["ImageID"]: (int(_number(row, "Width", sizes_csv, line)),
                                           int(_number(row, "Height", sizes_csv, line)))
                          for line, row in _dict_rows(sizes_csv, ("ImageID", "Width", "Height"))}
            self.where = str(sizes_csv)

    def get(self, name: str) -> tuple[int, int]:
        if self.last is not None and self.last[0] == name:
            return self.last[1]
        size = self._lookup(name)
        self.last = (name, size)
        return size

    def _lookup(self, name: str) -> tuple[int, int]:
        if self.table is not None:
            if name not in self.table:
                raise DataError(f"{self.where}: no size for image {name}")
            return self.table[name]
        path = Path(self.image_dir or ".") / f"{name}.jpg"
        try:
            with Image.open(path) as image:
                return image.size
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"cannot read the size of OpenImages image {path}: {error}") from error


def _read_rows(path: Path) -> Iterator[list[str]]:
    try:
        with Path(path).open(newline="", encoding="utf-8") as stream:
            yield from csv.reader(stream)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error


def _dict_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    rows = _read_rows(path)
    header = next(rows, None)
    missing = [c for c in required if header is None or c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; header is {header}")
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        yield line, dict(zip(header, row))


def _number(row: Mapping[str, str], column: str, path: Path, line: int) -> float:
    try:
        return float(row[column])
    except ValueError:
        raise DataError(f"{path}:{line}: column {column}: expected a number, got {row[column]!r}") from None


def _cache_key(inputs: Sequence[Path], classes: Sequence[UpstreamClass], image_dir: Path | None) -> str:
    stats = []
    for path in inputs:
        st = Path(path).stat()
        stats.append([str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    payload = {"version": CONVERTER_VERSION, "inputs": stats, "classes": [(c.original_id, c.mid) for c in classes],
               "image_dir": str(image_dir) if image_dir else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
