"""Splits the source lacks, drawn from its ``train`` split with a fixed seed.

The fraction of the pool (``train`` plus the missing splits) each missing split gets is the registry's
(GLIP paper Table 9) proportion: for Raccoon, whose original release has only train/test, ``valid`` takes
29 / (150 + 29) = 16.2 % of the release's 160 train images (26; ``train`` keeps 134, ``test`` its 40).
When a count is unknown the fraction is :data:`DEFAULT_FRACTION`. ``mini_val`` is never made up: GLIP's
mini_val lists are not in the registry, so a source without one fails.
"""

from __future__ import annotations

import random

from harness.acquire.importers.records import SourceImage
from harness.acquire.importers.summary import MadeSplit
from harness.catalog.datasets import DatasetSpec
from scaledet.errors import DataError

DEFAULT_FRACTION = 0.15
POOL_SPLIT = "train"


def fractions(spec: DatasetSpec, missing: list[str]) -> dict[str, float]:
    """Missing split -> share of the pool (``train`` + the missing splits), from the registry's counts."""
    counts = [spec.images.get(s) for s in [POOL_SPLIT, *missing]]
    if any(not c for c in counts):
        return {s: DEFAULT_FRACTION for s in missing}
    total = sum(counts)  # type: ignore[arg-type]
    return {s: spec.images[s] / total for s in missing}  # type: ignore[operator]


def make_missing_splits(spec: DatasetSpec, splits: dict[str, list[SourceImage]], seed: int, where: str
                        ) -> tuple[dict[str, list[SourceImage]], dict[str, MadeSplit]]:
    """The registry's splits, those the source lacks drawn from ``train`` with ``random.Random(seed)``."""
    missing = [s for s in spec.splits if s not in splits]
    if not missing:
        return {s: splits[s] for s in spec.splits}, {}
    if "mini_val" in missing:
        raise DataError(f"{where}: no mini_val split; {spec.name} needs one (GLIP's mini_val image lists are "
                        "not recorded here, so it is not made up): add a mini_val folder to the export")
    if POOL_SPLIT not in splits:
        raise DataError(f"{where}: splits {', '.join(missing)} are missing and there is no {POOL_SPLIT} "
                        f"split to draw them from (found: {', '.join(splits) or 'none'})")
    pool = sorted(splits[POOL_SPLIT], key=lambda image: image.file_name)
    shares = fractions(spec, missing)
    sizes = {s: round(len(pool) * shares[s]) for s in missing}
    if sum(sizes.values()) >= len(pool) or not all(sizes.values()):
        raise DataError(f"{where}: {len(pool)} {POOL_SPLIT} images are too few to draw {', '.join(missing)} "
                        f"from (wanted {sizes} and at least one left for {POOL_SPLIT})")
    order = random.Random(seed).sample(range(len(pool)), len(pool))
    out = dict(splits)
    made = {}
    start = 0
    for split in missing:
        chosen = sorted(order[start:start + sizes[split]])
        start += sizes[split]
        out[split] = [pool[i] for i in chosen]
        made[split] = MadeSplit(POOL_SPLIT, shares[split], sizes[split])
    kept = sorted(order[start:])
    out[POOL_SPLIT] = [pool[i] for i in kept]
    return {s: out[s] for s in spec.splits}, made
