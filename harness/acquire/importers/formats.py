"""The source formats, and telling them apart (``auto``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from harness.acquire.importers import coco, voc, yolo
from harness.acquire.importers.records import SourceDataset
from scaledet.errors import DataError

READERS: dict[str, ModuleType] = {"coco": coco, "yolo": yolo, "voc": voc}
FORMATS: tuple[str, ...] = (*READERS, "auto")
LOOKED_FOR = {
    "coco": f"<split>/{coco.ANNOTATION_NAME}",
    "yolo": "data.yaml or <split>/labels",
    "voc": "*.xml in annotations/, Annotations/ or <split>/",
}


def detect_format(source: Path) -> str:
    """The one format ``source`` looks like; none or several is a ``DataError`` saying what was looked for."""
    if not source.is_dir():
        raise DataError(f"{source}: not a folder (expected an unpacked COCO, YOLO or VOC export)")
    found = [fmt for fmt, module in READERS.items() if module.looks_like(source)]
    if len(found) == 1:
        return found[0]
    looked = "; ".join(f"{fmt}: {what}" for fmt, what in LOOKED_FOR.items())
    if not found:
        raise DataError(f"{source}: cannot tell the export format (looked for {looked}); pass --format")
    raise DataError(f"{source}: looks like several formats ({', '.join(found)}); pass --format")


def reader(fmt: str) -> Callable[[Path], SourceDataset]:
    return READERS[fmt].read
