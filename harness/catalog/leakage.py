"""Training-data leakage: which models were trained on a benchmark dataset or on its source.

Each known checkpoint declares its training data as its model card or paper states it (:data:`DECLARED`, keyed by
Hugging Face repo id, and by the name of a published row). A report cell is

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


_OWL = "OWL-ViT paper (Minderer et al., ECCV 2022): LiT image-text pretraining, detection training on O365 + VG"
_OWL2 = "OWLv2 paper (Minderer et al., NeurIPS 2023): self-training on pseudo-annotated WebLI"
_OWL2_FT = _OWL2 + ", then fine-tuned on O365 + VG ('-finetuned'; '-ensemble' averages both weights)"
_GDINO = "Grounding DINO README (IDEA-Research/GroundingDINO)"
_MMGDINO = "MM-Grounding-DINO (mmdetection configs/mm_grounding_dino): pretraining data named in the checkpoint"
_LLMDET = ("LLMDet paper (Fu et al., CVPR 2025): GroundingCap-1M, fine-tuned from an MM-Grounding-DINO checkpoint "
           "whose own data is not restated")
_MMG = "openmmlab-community/mm_grounding_dino_"

DECLARED: dict[str, Declared] = {
    **{f"google/owlvit-{size}": Declared(("Objects365", "Visual Genome"), _OWL)
       for size in ("base-patch32", "base-patch16", "large-patch14")},
    **{f"google/owlv2-{size}": Declared(("WebLI",), _OWL2) for size in ("base-patch16", "large-patch14")},
    **{f"google/owlv2-{size}-{variant}": Declared(("WebLI", "Objects365", "Visual Genome"), _OWL2_FT)
       for size in ("base-patch16", "large-patch14") for variant in ("finetuned", "ensemble")},
    "IDEA-Research/grounding-dino-tiny": Declared(("Objects365", "GoldG", "Cap4M"), _GDINO),
    "IDEA-Research/grounding-dino-base": Declared(
        ("COCO", "Objects365", "GoldG", "Cap4M", "OpenImages", "ODinW-35", "RefCOCO"), _GDINO),
    _MMG + "tiny_o365v1_goldg": Declared(("Objects365", "GoldG"), _MMGDINO),
    _MMG + "tiny_o365v1_goldg_grit": Declared(("Objects365", "GoldG", "GRIT"), _MMGDINO),
    _MMG + "tiny_o365v1_goldg_v3det": Declared(("Objects365", "GoldG", "V3Det"), _MMGDINO),
    _MMG + "tiny_o365v1_goldg_grit_v3det": Declared(("Objects365", "GoldG", "GRIT", "V3Det"), _MMGDINO),
    _MMG + "base_o365v1_goldg_v3det": Declared(("Objects365", "GoldG", "V3Det"), _MMGDINO),
    _MMG + "large_o365v2_oiv6_goldg": Declared(("Objects365", "OpenImages", "GoldG"), _MMGDINO),
    **{f"iSEE-Laboratory/llmdet_{size}": Declared(("GroundingCap-1M", "COCO", "Flickr30k", "GQA", "V3Det"), _LLMDET,
                                                  complete=False) for size in ("tiny", "base", "large")},
    "omlab/omdet-turbo-swin-tiny-hf": Declared(
        ("Objects365", "GoldG"), "OmDet-Turbo paper (arXiv 2403.06892): detection, grounding, VQA and HOI "
        "pretraining; only the detection and grounding sets are named here", complete=False),
    # the published rows of the reports, by their names there
    "GLIP-T(C)": Declared(("Objects365", "GoldG"), "GLIP README (microsoft/GLIP)"),
    "GLIP-T": Declared(("Objects365", "GoldG", "Cap4M"), "GLIP README (microsoft/GLIP)"),
    "GroundingDINO-T": Declared(("Objects365", "GoldG", "Cap4M"), _GDINO),
    **{f"ScaleDet-{size}": Declared(("LVIS", "COCO", "Objects365", "OpenImages"),
                                    "ScaleDet paper (CVPR 2023): upstream LVIS, COCO, Objects365, OpenImages")
       for size in ("R", "T", "B")},
    "GroundingDINO-B": Declared(("COCO", "Objects365", "GoldG", "Cap4M", "OpenImages", "ODinW-35", "RefCOCO"), _GDINO),
}


def _key(name: str) -> str:
    folded = name.casefold().replace(" ", "").replace("_", "")
    return ALIASES.get(folded, folded)


def sources_of(dataset: str) -> tuple[str, ...]:
    """The dataset and what it was drawn from (see the module docstring)."""
    found = [dataset]
    if dataset in get_suite("odinw13").datasets:
        found += ["ODinW-13", "ODinW-35"]
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
        return Verdict(UNKNOWN, "training data not declared (harness.catalog.leakage.DECLARED)")
    overlap = [s for s in sources_of(dataset) if _key(s) in {_key(d) for d in declared.data}]
    if overlap:
        return Verdict(LEAK, f"trained on {' and '.join(overlap)} ({declared.source})")
    if not declared.complete:
        return Verdict(UNKNOWN, f"training data declared in part ({declared.source})")
    return Verdict(CLEAN, f"not in its training data ({declared.source})")


def declared_for(model: str) -> Declared | None:
    """The declared training data of a repo id or published row name (None when unknown)."""
    return DECLARED.get(model)


def upstream_declared(upstream: Iterable[str], source: str = "the record's upstream datasets") -> Declared:
    """A model trained by this harness: its upstream datasets, as recorded."""
    return Declared(tuple(upstream), source)
