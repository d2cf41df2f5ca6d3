"""Which of a suite's classes are unseen in a set of upstream datasets, under one of three named rules.

``upstream`` entries are upstream label spaces (``lvis``, ``coco``, ``objects365``, ``openimages``, also
spelt ``LVIS``, ``L``, ``C``, ``O365``, ``OID``, ... in any case) or ODinW datasets of the same suite (the
demo suite pretrains on Aquarium, Packages and Raccoon; their class lists come from the registry). The
suite's classes are those of its transfer datasets, in registry order, deduplicated by exact spelling
("CoW", the mushroom, and "cow", the animal, stay two classes). An empty ``upstream`` leaves every class
unseen under "names" and "text".

Rules:

- ``names``: unseen when the class is in none of the upstream class lists after one normalisation
  (:func:`normalise`: lower-case, ``_``/``-`` to spaces, parenthesised qualifiers dropped, whitespace
  collapsed). Every spelling an upstream class has counts: Objects365's official and corrected names, and,
  with ``lvis_synonyms=True``, every LVIS synonym. ODinW-13 against the four: 14 classes, 13 with synonyms
  ("aeroplane" is a synonym of LVIS "airplane"); against COCO alone: 27.
- ``paper``: the ScaleDet paper's curated list of 12 (supplementary, "Unseen class labels in Figure 3"),
  restricted to the suite's classes. The paper uses that one list for every point of its Figure 3, whose
  upstream sets are L, L+C, L+C+O365 and L+C+O365+OID; those four sets (in any order or spelling) are the
  only valid ones. Any other upstream set (COCO alone, ODinW datasets, ...) is a ConfigError: the paper
  defines no list for it, use "names" or "text". The list is what case-sensitive exact matching against the
  four class lists gives on the seven multi-class ODinW datasets (verified in the tests).
- ``text``: unseen when the cosine between the class's text embedding and its nearest upstream label's is
  below ``threshold`` (:data:`DEFAULT_THRESHOLD`). Embeddings come from ``scaledet.labels.encode_label_space``
  (disk cache) with one prompt template (:data:`TEXT_TEMPLATES`) and the offline MiniLM encoder unless
  ``encoder`` is given; upstream labels are embedded in their text form (LVIS underscores as spaces,
  Objects365 typos fixed; plus LVIS synonyms with ``lvis_synonyms=True``). See :data:`DEFAULT_THRESHOLD` for
  how the threshold was chosen.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch

from harness.catalog.upstream import SPECS as UPSTREAM_SPECS
from harness.catalog.upstream_labels import UPSTREAM_ORDER, read_label_file, upstream_classes
from scaledet.errors import ConfigError
from scaledet.names import check_name

log = logging.getLogger(__name__)

RULES: dict[str, str] = {
    "names": "in none of the upstream class lists after normalisation (lower-case, _/- to space, "
    "parenthesised qualifiers dropped, whitespace collapsed)",
    "paper": "the ScaleDet paper's curated list of 12 (supplementary), restricted to the suite's classes; "
    "defined for the upstream sets of its Figure 3 (L, L+C, L+C+O365, L+C+O365+OID)",
    "text": "nearest upstream label's text-embedding cosine below a threshold (default 0.80; MiniLM, one "
    "prompt template)",
}

# ScaleDet supplementary: "Unseen class labels in Figure 3 in Sec 4.2 are 12 class labels in downstream datasets".
PAPER_UNSEEN: tuple[str, ...] = ("dock", "jetski", "lift", "jellyfish", "stingray", "CoW", "chanterelle",
                                 "aeroplane", "diningtable", "motorbike", "pottedplant", "tvmonitor")
# Figure 3's x-axis: 1-4 = L, L+C, L+C+O365, L+C+O365+OID; the paper uses its one list for all four.
PAPER_UPSTREAM_SETS: tuple[frozenset[str], ...] = tuple(
    frozenset(UPSTREAM_ORDER[:n]) for n in range(1, len(UPSTREAM_ORDER) + 1))

TEXT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
# Chosen by hand on measured cosines (MiniLM, TEXT_TEMPLATES, ODinW-13 against the four upstream datasets;
# table in docs/data-registry.md). Other spellings and near-synonyms of upstream labels score >= 0.81
# (package -> packet 0.81, pottedplant -> Potted Plant 0.82, Cottontail-Rabbit -> rabbit 0.83,
# motorbike -> motorcycle 0.86, tvmonitor -> tv 0.90, diningtable -> dining table 0.91); concepts absent
# upstream score below 0.80 (dock 0.65, stingray 0.66, chanterelle 0.70, jetski 0.75, lift 0.76,
# pothole 0.797). 0.80 is the round value between; pothole is 0.003 below it, so other encoders or
# templates need their own threshold.
DEFAULT_THRESHOLD = 0.80

_QUALIFIER = re.compile(r"\([^)]*\)")


def normalise(name: str) -> str:
    """The one normalisation of the "names" rule: lower-case, ``_``/``-`` to spaces, ``(...)`` dropped,
    whitespace collapsed. ``"bow_(weapon)"`` -> ``"bow"``, ``"Cottontail-Rabbit"`` -> ``"cottontail rabbit"``."""
    text = _QUALIFIER.sub(" ", name.lower().replace("_", " ").replace("-", " "))
    return " ".join(text.split())


def _aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in UPSTREAM_SPECS.values():
        for alias in (spec.name, spec.short, spec.title):
            out[alias.lower()] = spec.name
    return out


def resolve_upstream(suite: str, upstream: Sequence[str]) -> tuple[str, ...]:
    """Canonical names of the ``upstream`` entries: label-space names (``lvis`` ...) or ODinW datasets of
    ``suite``; duplicates dropped. An unknown entry fails naming the valid ones."""
    from harness.catalog.datasets import suite_datasets

    if isinstance(upstream, str):
        raise ConfigError(f"upstream: expected a list of dataset names, got the string {upstream!r} "
                          f"(write [{upstream!r}] or split 'A+B' on '+')")
    aliases = _aliases()
    odinw = {name.lower(): name for name in suite_datasets(suite) if name not in UPSTREAM_ORDER}
    out: list[str] = []
    for entry in upstream:
        key = str(entry).strip().lower()
        if key in aliases:
            out.append(aliases[key])
        elif key in odinw:
            out.append(odinw[key])
        else:
            valid = list(UPSTREAM_ORDER) + [spec.short for spec in UPSTREAM_SPECS.values()] + sorted(odinw.values())
            check_name("upstream dataset", str(entry), valid, where=f"unseen classes of suite '{suite}'")
    return tuple(dict.fromkeys(out))


def suite_classes(suite: str) -> tuple[tuple[str, str], ...]:
    """(class name, first dataset having it) for the suite's transfer datasets, registry order, deduplicated."""
    from harness.catalog.datasets import class_names, get_suite

    seen: dict[str, str] = {}
    for dataset in get_suite(suite).datasets:
        for name in class_names(dataset, suite):
            seen.setdefault(name, dataset)
    return tuple(seen.items())


@cache
def _lvis_synonyms() -> dict[str, tuple[str, ...]]:
    return {row["name"]: tuple(row.get("synonyms", ())) for row in read_label_file("lvis_v1.json")["classes"]}


def upstream_spellings(entry: str, suite: str, lvis_synonyms: bool = False) -> tuple[tuple[str, ...], ...]:
    """Every spelling of every class of one canonical upstream entry, one tuple per class."""
    from harness.catalog.datasets import class_names

    if entry not in UPSTREAM_ORDER:
        return tuple((name,) for name in class_names(entry, suite))
    synonyms = _lvis_synonyms() if entry == "lvis" and lvis_synonyms else {}
    return tuple(tuple(dict.fromkeys((c.name, c.text, *synonyms.get(c.name, ())))) for c in upstream_classes(entry))


def found_in(suite: str, upstream: Sequence[str], *, lvis_synonyms: bool = False) -> dict[str, tuple[str, ...]]:
    """Rule "names" spelled out: each suite class -> the upstream entries that have it after normalisation."""
    entries = resolve_upstream(suite, upstream)
    spaces = {e: {normalise(s) for spellings in upstream_spellings(e, suite, lvis_synonyms) for s in spellings}
              for e in entries}
    return {name: tuple(e for e in entries if normalise(name) in spaces[e]) for name, _ in suite_classes(suite)}


def unseen_classes(suite: str, upstream: Sequence[str], rule: str = "names", *, lvis_synonyms: bool = False,
                   threshold: float = DEFAULT_THRESHOLD, encoder=None) -> list[str]:
    """The suite's class names unseen in ``upstream`` under ``rule`` ("names", "paper" or "text"), in
    registry order. ``lvis_synonyms`` applies to "names" and "text"; ``threshold`` and ``encoder`` (a
    ``scaledet.text.TextEncoder``, default the offline MiniLM) to "text" only."""
    check_rule(rule)
    if rule == "names":
        return [name for name, where in found_in(suite, upstream, lvis_synonyms=lvis_synonyms).items() if not where]
    if rule == "paper":
        return _paper(suite, upstream)
    return [n.name for n in nearest_upstream_labels(suite, upstream, lvis_synonyms=lvis_synonyms, encoder=encoder)
            if n.cosine < check_threshold(threshold)]


def _paper(suite: str, upstream: Sequence[str]) -> list[str]:
    entries = frozenset(resolve_upstream(suite, upstream))
    if entries not in PAPER_UPSTREAM_SETS:
        valid = ", ".join("+".join(s for s in UPSTREAM_ORDER if s in chosen) for chosen in PAPER_UPSTREAM_SETS)
        given = "+".join(sorted(entries)) or "(none)"
        raise ConfigError(f"unseen rule 'paper': upstream {given} has no curated list; the paper's list is "
                          f"defined for its Figure 3 upstream sets {valid}; use rule 'names' or 'text'")
    return [name for name, _ in suite_classes(suite) if name in PAPER_UNSEEN]


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`RULES`, else a ConfigError naming the nearest."""
    return check_name("unseen rule", rule, RULES)


def check_threshold(threshold: float) -> float:
    if not -1.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"unseen rule 'text': threshold {threshold} is not a cosine; expected -1 <= t <= 1")
    return float(threshold)


@dataclass(frozen=True)
class NearestLabel:
    """A suite class, its nearest upstream label by text-embedding cosine, and where that label comes from."""

    name: str
    label: str
    upstream: str
    cosine: float


def nearest_upstream_labels(suite: str, upstream: Sequence[str], *, lvis_synonyms: bool = False,
                            encoder=None, templates: Sequence[str] = TEXT_TEMPLATES) -> list[NearestLabel]:
    """Rule "text" spelled out: for each suite class its nearest upstream label (cosine of the
    ``encode_label_space`` embeddings, cached on disk). No upstream: nearest is empty, cosine -1."""
    from scaledet.labels import encode_label_space

    entries = resolve_upstream(suite, upstream)
    if encoder is None:
        from scaledet.text import MiniLMEncoder

        encoder = MiniLMEncoder()
    classes = [name for name, _ in suite_classes(suite)]
    if not classes:
        return []
    queries = encode_label_space(classes, suite, encoder, templates)
    per_entry = {entry: _embedding_texts(entry, suite, lvis_synonyms) for entry in entries}
    labels = [(entry, text) for entry, texts in per_entry.items() for text in texts]
    log.debug("rule text: %d classes of %s against %d upstream labels (%s)", len(classes), suite, len(labels),
              encoder.id)
    if not labels:
        return [NearestLabel(name, "", "", -1.0) for name in classes]
    table = torch.cat([encode_label_space(texts, entry, encoder, templates).embeddings
                       for entry, texts in per_entry.items() if texts], dim=0)
    best, index = (queries.embeddings @ table.t()).max(dim=1)
    return [NearestLabel(name, labels[int(i)][1], labels[int(i)][0], round(float(c), 4))
            for name, c, i in zip(classes, best, index)]


def _embedding_texts(entry: str, suite: str, lvis_synonyms: bool) -> list[str]:
    if entry not in UPSTREAM_ORDER:
        return [spellings[0] for spellings in upstream_spellings(entry, suite)]
    out = [c.text for c in upstream_classes(entry)]
    if entry == "lvis" and lvis_synonyms:
        out += [s.replace("_", " ").strip() for syns in _lvis_synonyms().values() for s in syns]
    return list(dict.fromkeys(out))
