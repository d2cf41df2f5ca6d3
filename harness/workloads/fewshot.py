"""k-shot training subsets: GLIP's own few-shot files where the data has them, else a seeded draw (GLIP's
on-the-fly sampler ignores its seed; the seed chooses our subset).

GLIP's ODinW zips hold, beside a dataset's train and valid annotation files, ``fewshot_train_shot{k}_seed{s}.json``
and ``fewshot_val_shot{k}_seed{s}.json`` (k in 1, 3, 5, 10; s in 3, 30, 300): the images and boxes of its
published few-shot results. A few-shot cell with that k and seed trains on exactly that file and selects its
model on the matching val file; a cell without one draws its subset (:func:`sample_shots`) and selects on the
valid split. The record says which (:class:`FewShotSubset`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.acquire.fetch import sha256_file
from harness.catalog.datasets import DatasetSpec
from scaledet.data import CocoDataset, load_coco, subset
from scaledet.errors import DataError

__all__ = ["FewShotSubset", "few_shot_subset", "glip_few_shot_file", "sample_shots", "subset"]  # subset: scaledet.data

GLIP_FILE_SPLITS = {"train": "train", "valid": "val"}  # our split -> the word in GLIP's file names


def sample_shots(dataset: CocoDataset, shots: int, seed: int) -> list[int]:
    """Image ids of a k-shot subset: images in a seeded random order, each taken while it brings a class
    that has fewer than ``shots`` boxes so far; stops when every class has ``shots`` (or has run out).

    Deterministic for (dataset, shots, seed); a different seed gives a different order, hence subset.
    """
    if shots < 1:
        raise DataError(f"{dataset.name}: shots must be >= 1, got {shots}")
    order = [img["id"] for img in dataset.images]
    random.Random(f"{dataset.name}:{shots}:{seed}").shuffle(order)
    counts: Counter[int] = Counter()
    chosen: list[int] = []
    for image_id in order:
        classes = [a["category_id"] for a in dataset.annotations[image_id]]
        if any(counts[c] < shots for c in set(classes)):
            chosen.append(image_id)
            counts.update(classes)
        if all(counts[c] >= shots for c in dataset.category_ids):
            break
    return sorted(chosen)


def glip_few_shot_file(spec: DatasetSpec, split: str, shots: int, seed: int, root: Path | None = None) -> Path:
    """Where GLIP's few-shot file of ``split`` (train or valid) lies: beside the split's annotation file."""
    return spec.annotation_path(split, root).parent / f"fewshot_{GLIP_FILE_SPLITS[split]}_shot{shots}_seed{seed}.json"


@dataclass(frozen=True)
class FewShotSubset:
    """The training images of a few-shot cell and the set its model is selected on, and where both came from."""

    train: CocoDataset
    valid: CocoDataset | None  # None: the dataset's valid split
    source: str  # "glip file" | "drawn"
    files: tuple[Path, ...] = ()

    def record(self) -> dict[str, Any]:
        """What the job's record says about the subset."""
        out: dict[str, Any] = {"source": self.source, "images": len(self.train),
                               "selected_on": "GLIP's val file" if self.valid is not None else "the valid split"}
        if self.source == "drawn":
            out["rule"] = "harness.workloads.fewshot.sample_shots (seeded; GLIP's file for this k and seed absent)"
        out["files"] = {path.name: {"path": str(path), "sha256": sha256_file(path)} for path in self.files}
        return out


def few_shot_subset(spec: DatasetSpec, train: CocoDataset, shots: int, seed: int,
                    root: Path | None = None) -> FewShotSubset:
    """GLIP's few-shot files of (``shots``, ``seed``) when ``train``'s folder has them, else a seeded draw."""
    train_file = glip_few_shot_file(spec, "train", shots, seed, root)
    if not train_file.is_file():
        return FewShotSubset(subset(train, sample_shots(train, shots, seed)), None, "drawn")
    picked = _load_glip_file(spec, train_file, train)
    files = [train_file]
    valid_file = glip_few_shot_file(spec, "valid", shots, seed, root) if "valid" in spec.split_files else None
    valid = None
    if valid_file is not None and valid_file.is_file():
        valid = _load_glip_file(spec, valid_file, train)
        files.append(valid_file)
    return FewShotSubset(picked, valid, "glip file", tuple(files))


def _load_glip_file(spec: DatasetSpec, path: Path, train: CocoDataset) -> CocoDataset:
    """A GLIP few-shot file, checked as any COCO file and against the dataset's categories (images beside it)."""
    data = load_coco(path, name=spec.name, root_ids=(0, *spec.root_ids), check_files=True)
    if data.category_ids != train.category_ids:
        raise DataError(f"{path}: category ids {list(data.category_ids)} differ from the train split's "
                        f"{list(train.category_ids)} of {spec.name}")
    if not any(data.annotations.values()):
        raise DataError(f"{path}: a few-shot file without boxes")
    return data
