"""k-shot training subsets: the seed chooses the subset (GLIP's on-the-fly sampler ignores its seed)."""

from __future__ import annotations

import random
from collections import Counter

from scaledet.data import CocoDataset, subset
from scaledet.errors import DataError

__all__ = ["sample_shots", "subset"]  # subset lives in scaledet.data (used below the workloads layer too)


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
