"""The result of an import: counts per split, fixes, how missing splits were made; ``import.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.acquire.importers.records import FIXES

RECORD_FILE = "import.json"


@dataclass(frozen=True)
class SplitCounts:
    """One written split: images, boxes, fixes made (kind -> count) and the image files, in json order."""

    images: int
    boxes: int
    fixes: Mapping[str, int] = field(default_factory=dict)
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class MadeSplit:
    """A split the source lacked, drawn from ``from_split`` with ``fraction`` of its images (seeded)."""

    from_split: str
    fraction: float
    images: int


@dataclass(frozen=True)
class DroppedImage:
    """A source image left out because it does not decode (``--drop-broken-images``), with its boxes."""

    split: str
    file_name: str
    boxes: int
    problem: str


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`harness.acquire.importers.import_dataset` wrote."""

    dataset: str
    fmt: str  # the source format (after auto-detection)
    source: Path
    folder: Path  # the dataset's variant folder
    seed: int
    splits: Mapping[str, SplitCounts]
    made_splits: Mapping[str, MadeSplit] = field(default_factory=dict)
    ignored_splits: tuple[str, ...] = ()  # source splits the registry record does not have
    notices: tuple[str, ...] = ()  # README / licence files copied from the export
    dropped: tuple[DroppedImage, ...] = ()  # broken images left out (with their annotations)

    @property
    def fixes(self) -> dict[str, int]:
        """Fix kind -> count over all splits."""
        total: dict[str, int] = {}
        for counts in self.splits.values():
            for kind, n in counts.fixes.items():
                total[kind] = total.get(kind, 0) + n
        return total

    def fix_line(self) -> str:
        """One line naming every fix with its count and splits, or saying there were none."""
        parts = []
        for kind, n in self.fixes.items():
            where = ", ".join(f"{s} {c.fixes[kind]}" for s, c in self.splits.items() if c.fixes.get(kind))
            parts.append(f"{n} {FIXES.get(kind, kind)} ({where})")
        return f"{self.dataset}: fixes: " + ("; ".join(parts) if parts else "none")

    def lines(self) -> list[str]:
        """The summary as printed by ``harness data import`` (and logged)."""
        counts = ", ".join(f"{s} {c.images} images / {c.boxes} boxes" for s, c in self.splits.items())
        out = [f"{self.dataset}: imported {self.fmt} export {self.source} -> {self.folder}: {counts}",
               self.fix_line()]
        for split, made in self.made_splits.items():
            out.append(f"{self.dataset}: made split {split} from {made.from_split}: {made.images} images "
                       f"(fraction {made.fraction:.4f}, seed {self.seed})")
        if self.dropped:
            boxes = sum(d.boxes for d in self.dropped)
            files = ", ".join(f"{d.split}/{d.file_name}" for d in self.dropped)
            out.append(f"{self.dataset}: dropped {len(self.dropped)} broken image(s) that do not decode and their "
                       f"{boxes} box(es) (--drop-broken-images): {files}")
        if self.ignored_splits:
            out.append(f"{self.dataset}: source splits not in the registry record, not imported: "
                       f"{', '.join(self.ignored_splits)}")
        return out

    def record(self) -> dict[str, Any]:
        """The content of ``import.json``: seed, how splits were made and the image list per split."""
        return {
            "dataset": self.dataset,
            "format": self.fmt,
            "source": str(self.source),
            "seed": self.seed,
            "made_splits": {s: {"from": m.from_split, "fraction": m.fraction, "images": m.images}
                            for s, m in self.made_splits.items()},
            "ignored_splits": list(self.ignored_splits),
            "notices": list(self.notices),
            "dropped_broken_images": [{"split": d.split, "file": d.file_name, "boxes": d.boxes,
                                       "problem": d.problem} for d in self.dropped],
            "splits": {s: {"images": c.images, "boxes": c.boxes, "fixes": dict(c.fixes),
                           "files": list(c.files)} for s, c in self.splits.items()},
        }


def write_record(summary: ImportSummary, folder: Path) -> Path:
    """Write ``import.json`` into ``folder`` (the temporary variant folder, moved into place as a whole)."""
    path = folder / RECORD_FILE
    path.write_text(json.dumps(summary.record(), indent=1) + "\n")
    return path
