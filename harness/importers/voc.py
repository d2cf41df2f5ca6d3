"""Pascal VOC exports (placeholder until the VOC reader lands)."""

from __future__ import annotations

from pathlib import Path

from harness.importers.records import SourceDataset
from scaledet.errors import DataError

FORMAT = "voc"


def looks_like(source: Path) -> bool:
    return False


def read(source: Path) -> SourceDataset:
    raise DataError(f"{source}: the VOC reader is not available yet")
