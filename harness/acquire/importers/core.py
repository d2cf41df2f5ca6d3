"""``import_dataset``: read an export, match its classes to the registry's, write GLIP's layout atomically."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from harness.acquire import images
from harness.acquire.importers.formats import READERS, detect_format, reader
from harness.acquire.importers.records import SourceImage
from harness.acquire.importers.splits import make_missing_splits
from harness.acquire.importers.summary import DroppedImage, ImportSummary, write_record
from harness.acquire.importers.writer import write_splits
from harness.catalog.datasets import DatasetSpec
from scaledet.errors import ConfigError, DataError
from scaledet.names import check_name

log = logging.getLogger(__name__)

NOTICE_PREFIXES = ("README", "LICENSE", "LICENCE")  # kept with the copy, as the datasets' licences ask


def match_categories(spec: DatasetSpec, names: tuple[str, ...], where: str) -> dict[int, int]:
    """Source class index -> registry category id, by name (case-insensitive); others are a ``DataError``."""
    registry = {name.lower(): cid for cid, name in spec.categories}
    unknown = [n for n in names if n.lower() not in registry]
    if unknown:
        raise DataError(f"{where}: classes {unknown} are not classes of {spec.name}: the source lists "
                        f"{list(names)}, the registry {list(spec.class_names)} "
                        "(matched by name, case-insensitive)")
    absent = [n for n in spec.class_names if n.lower() not in {s.lower() for s in names}]
    if absent:
        log.warning("%s: the source has no class %s of the registry's %s", where, absent,
                    list(spec.class_names))
    return {index: registry[name.lower()] for index, name in enumerate(names)}


def import_dataset(spec: DatasetSpec, source: Path, fmt: str = "auto", root: Path | None = None,
                   seed: int = 0, *, overwrite: bool = False, drop_broken_images: bool = False) -> ImportSummary:
    """Import the export at ``source`` (``coco``, ``yolo``, ``voc`` or ``auto``) as ``spec`` under ``root``.

    Writes ``spec.folder(root)``: each split's annotation json (``spec.annotation_path``) with its images
    beside it, ``import.json`` (seed, made splits, image lists) and the export's README / licence files.
    The folder is built in a temporary folder beside it and moved into place when complete; an existing
    dataset is replaced only with ``overwrite``. Fixes are counted in the summary and logged.

    Every source image is decoded first: a broken one is a ``DataError`` naming it, unless
    ``drop_broken_images``, which leaves it and its boxes out (counted in the summary). The written images
    are recorded in each split folder's decode cache (:mod:`harness.acquire.images`).
    """
    source = Path(source)
    if spec.embedded:
        raise ConfigError(f"{spec.name}: the demo copy ships with the package; import into the odinw13 "
                          "record instead")
    if not source.is_dir():
        raise DataError(f"{source}: not a folder (expected an unpacked COCO, YOLO or VOC export)")
    fmt = detect_format(source) if fmt == "auto" else check_name("format", fmt, READERS)
    data = reader(fmt)(source)
    category_of = match_categories(spec, data.class_names, data.classes_from)
    ignored = tuple(s for s in data.splits if s not in spec.split_files)
    if ignored:
        log.warning("%s: splits %s are not splits of %s (%s): not imported", source, ignored, spec.name,
                    spec.splits)
    kept_splits, dropped = drop_broken(
        {s: v for s, v in data.splits.items() if s not in ignored}, source, drop=drop_broken_images)
    splits, made = make_missing_splits(spec, kept_splits, seed, str(source))
    target = spec.folder(root)
    if target.exists() and not overwrite:
        raise DataError(f"{target}: {spec.name} is already there; pass overwrite=True (--overwrite) to "
                        "replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = _fresh_folder(target, "import")
    try:
        counts = write_splits(spec, splits, category_of, work, data.fixes)
        for split, split_counts in counts.items():  # copies of files just decoded: cached as good
            folder = (work / spec.split_files[split]).parent
            images.remember(folder, (folder / name for name in split_counts.files))
        kept = _keep_notices(source, work)
        summary = ImportSummary(spec.name, fmt, source, target, seed, counts, made, ignored, kept, dropped)
        write_record(summary, work)
        _move_into_place(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for line in summary.lines():
        log.info("%s", line)
    return summary


def drop_broken(splits: dict[str, list[SourceImage]], source: Path, *, drop: bool
                ) -> tuple[dict[str, list[SourceImage]], tuple[DroppedImage, ...]]:
    """Decode every image of ``splits``: the splits without broken ones and what was dropped; a broken
    image is a ``DataError`` naming it unless ``drop``."""
    problems = images.verify_images([i.path for v in splits.values() for i in v], desc=f"decode {source.name}")
    if not problems:
        return splits, ()
    if not drop:
        raise DataError(f"{source}: {images.describe(problems)}; fix or remove them, or pass "
                        "--drop-broken-images to import without them (their annotations are dropped too)")
    dropped = tuple(DroppedImage(split, i.file_name, len(i.boxes), problems[i.path])
                    for split, v in splits.items() for i in v if i.path in problems)  # fmt: skip
    for item in dropped:
        log.warning("%s: dropped %s/%s and its %d boxes: %s", source, item.split, item.file_name, item.boxes,
                    item.problem)
    kept = {s: [i for i in v if i.path not in problems] for s, v in splits.items()}
    empty = [s for s, v in kept.items() if splits[s] and not v]
    if empty:
        raise DataError(f"{source}: every image of split(s) {', '.join(empty)} is broken: "
                        f"{images.describe(problems)}")
    return kept, dropped


def _keep_notices(source: Path, folder: Path) -> tuple[str, ...]:
    """Copy the export's README / licence files (top level) into the dataset folder; their names."""
    notices = sorted(p for p in source.iterdir()
                     if p.is_file() and p.name.upper().startswith(NOTICE_PREFIXES))
    for path in notices:
        shutil.copyfile(path, folder / path.name)
    return tuple(p.name for p in notices)


def _move_into_place(work: Path, target: Path) -> None:
    """Rename ``work`` to ``target``; an existing ``target`` is set aside first and removed after."""
    if not target.exists():
        os.replace(work, target)
        return
    old = _fresh_folder(target, "old")
    os.replace(target, old / "dataset")
    try:
        os.replace(work, target)
    except OSError:
        os.replace(old / "dataset", target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fresh_folder(target: Path, kind: str) -> Path:
    """A new hidden folder beside ``target`` (same file system, so renames are atomic)."""
    folder = target.parent / f".{target.name}.{kind}-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    return folder
