"""k-shot training subsets: the seed chooses the subset (GLIP's on-the-fly sampler ignores its seed)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from scaledet.data import CocoDataset
from scaledet.errors import DataError


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


def subset(dataset: CocoDataset, image_ids: list[int]) -> CocoDataset:
    """``dataset`` restricted to ``image_ids`` (annotations and the evaluation json alike)."""
    keep = set(image_ids)
    images = tuple(img for img in dataset.images if img["id"] in keep)
    source = {**dataset.source, "images": [img for img in dataset.source["images"] if img["id"] in keep],
              "annotations": [a for a in dataset.source["annotations"] if a["image_id"] in keep]}
    return replace(dataset, images=images, annotations={i: dataset.annotations[i] for i in keep}, source=source)
