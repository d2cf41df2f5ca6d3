"""Training-data leakage: which models were trained on a benchmark dataset or on its source.

Each known checkpoint declares its training data as its model card or paper states it: an external model's by its
adapter family (``harness.workloads.hf.families``, ``Family.checkpoints``, keyed by repo id), a published row's here
(:data:`DECLARED`, keyed by the row's name). A report cell is

- ``leak`` when that data contains the dataset itself or its source (:func:`sources_of`: every ODinW dataset is in
  ODinW-35, ODinW-13's are in ODinW-13 too; ShellfishOpenImages and VehiclesOpenImages come from OpenImages,
  PascalVOC from PASCAL VOC);
- ``unknown`` when the model's training data is not declared here, or is declared only in part (``complete``
  False) and the declared part does not overlap;
- ``clean`` otherwise: zero-shot in the sense of the Grounding DINO paper (the dataset's images were not trained on).

A ScaleDet model trained by this harness declares its upstream datasets (the record's ``upstream``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.catalog.datasets import get_suite

DERIVED_FROM = {"ShellfishOpenImages": "OpenImages", "VehiclesOpenImages": "OpenImages", "PascalVOC": "PASCAL VOC"}
ALIASES = {"oid": "openimages", "openimagesv6": "openimages", "o365": "objects365", "voc": "pascalvoc",
           "odinw": "odinw-35", "odinw35": "odinw-35", "odinw13": "odinw-13"}  # fmt: skip
LEAK, CLEAN, UNKNOWN = "leak", "clean", "unknown"


@dataclass(frozen=True)
class Declared:
    """A model's training data as stated by ``source``; ``complete``: the statement lists all of it."""

    data: tuple[str, ...]
    source: str
    complete: bool = True


_GDINO = "Grounding DINO README (IDEA-Research/GroundingDINO)"
GROUNDING_DINO_T = Declared(("Objects365", "GoldG", "Cap4M"), _GDINO)
GROUNDING_DINO_B = Declared(("COCO", "Objects365", "GoldG", "Cap4M", "OpenImages", "ODinW-35", "RefCOCO"), _GDINO)

# the published rows of the reports, by their names there (checkpoints of the external families are declared by
# their adapter family: harness.workloads.hf.families, ``Family.checkpoints``)
DECLARED: dict[str, Declared] = {
    "GLIP-T(C)": Declared(("Objects365", "GoldG"), "GLIP README (microsoft/GLIP)"),
    "GLIP-T": Declared(("Objects365", "GoldG", "Cap4M"), "GLIP README (microsoft/GLIP)"),
    "GroundingDINO-T": GROUNDING_DINO_T,
    **{f"ScaleDet-{size}": Declared(("LVIS", "COCO", "Objects365", "OpenImages"),
                                    "ScaleDet paper (CVPR 2023): upstream LVIS, COCO, Objects365, OpenImages")
       for size in ("R", "T", "B")},
    "GroundingDINO-B": GROUNDING_DINO_B,
}


def _key(name: str) -> str:
    folded = name.casefold().replace(" ", "").replace("_", "")
    return ALIASES.get(folded, folded)


def sources_of(dataset: str) -> tuple[str, ...]:
    """The dataset and what it was drawn from (see the module docstring)."""
    found = [dataset]
    if dataset in get_suite("odinw13").datasets:
        found.append("ODinW-13")
    if dataset in get_suite("odinw35").datasets:
        found.append("ODinW-35")
    if dataset in DERIVED_FROM:
        found.append(DERIVED_FROM[dataset])
    return tuple(found)


@dataclass(frozen=True)
class Verdict:
    """A cell's leakage: ``status`` (leak/clean/unknown) and why."""

    status: str
    reason: str


def verdict(declared: Declared | None, dataset: str) -> Verdict:
    """Whether a model with ``declared`` training data (None: not declared) saw ``dataset`` or its source."""
    if declared is None:
        return Verdict(UNKNOWN, "training data not declared (Family.checkpoints, harness.catalog.leakage)")
    overlap = [s for s in sources_of(dataset) if _key(s) in {_key(d) for d in declared.data}]
    if overlap:
        return Verdict(LEAK, f"trained on {' and '.join(overlap)} ({declared.source})")
    if not declared.complete:
        return Verdict(UNKNOWN, f"training data declared in part ({declared.source})")
    return Verdict(CLEAN, f"not in its training data ({declared.source})")


def declared_for(model: str) -> Declared | None:
    """The declared training data of a published row (None when unknown)."""
    return DECLARED.get(model)


def upstream_declared(upstream: Iterable[str], source: str = "the record's upstream datasets") -> Declared:
    """A model trained by this harness: its upstream datasets, as recorded."""
    return Declared(tuple(upstream), source)
