"""The three averages (over datasets, over all classes, over unseen classes), aggregated over seeds.

Each average is first computed per seed, on seeds that have a result for every dataset of the suite;
the reported value is the mean ± sample std of those per-seed scores. A class with no ground truth in the
evaluation split (per-class AP NaN in the cells, -1 in the record) is left out of the class averages.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.reporting.model import Cell, Missing, Stat

NO_GROUND_TRUTH = Missing("– (no ground truth)")  # a class value, or a class mean with no class to average
Unseen = Mapping[str, frozenset[str]]  # dataset -> unseen class names
SeedScore = Callable[[pd.DataFrame], float | None]  # one seed's cells (one per dataset) -> score

DEFINITIONS = {
    "mAP": "mean over datasets: the plain mean of the per-dataset AP (COCO AP@[.5:.95], x100) over the "
    "suite's datasets (the ODinW-13 score).",
    "mAP_C": "mean over all classes: the plain mean of per-class AP over every class of every dataset "
    "of the suite, pooled (paper Table 8b).",
    "mAP_unseen": "mean over unseen classes: the plain mean of per-class AP over the classes that are "
    "unseen for the checkpoint's upstream datasets (paper Figure 3, third panel).",
}


@dataclass(frozen=True)
class UnseenRule:
    """Which downstream classes count as unseen for a checkpoint: ``classes(upstream)`` and a name."""

    name: str
    classes: Callable[[tuple[str, ...]], Unseen]


def stat(values: Sequence[float]) -> Stat:
    """Mean ± sample standard deviation (0 for one value)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Stat(statistics.fmean(values), std, len(values))


def over_seeds(group: pd.DataFrame, datasets: Sequence[str], score: SeedScore) -> Cell:
    """``score`` per seed that covers every dataset, then mean ± std over those seeds."""
    present = group[group["dataset"].isin(datasets) & group["status"].eq("done")]
    complete = [seed for seed, cells in present.groupby("seed")
                if set(cells["dataset"]) == set(datasets)]  # fmt: skip
    if not complete:
        covered = present["dataset"].nunique()
        return Missing(f"missing ({covered}/{len(datasets)} datasets)")
    scores = [score(present[present["seed"] == seed]) for seed in complete]
    values = [s for s in scores if s is not None]
    return stat(values) if values else Missing("n/a")


def dataset_mean(cells: pd.DataFrame) -> float:
    """Mean of the per-dataset AP of one seed."""
    return statistics.fmean(cells["ap"])


def class_mean(cells: pd.DataFrame) -> float | None:
    """Mean of per-class AP pooled over all datasets of one seed (None without per-class AP)."""
    values = [ap for per_class in cells["per_class"] for ap in per_class.values() if not math.isnan(ap)]
    return statistics.fmean(values) if values else None


def no_ground_truth(cells: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, class) of every class with no ground truth in the done ``cells``, sorted, each once."""
    done = cells[cells["status"] == "done"]
    return sorted({(str(d), name) for d, per_class in zip(done["dataset"], done["per_class"], strict=True)
                   for name, ap in per_class.items() if math.isnan(ap)})  # fmt: skip


def class_cell(group: pd.DataFrame, datasets: Sequence[str]) -> Cell:
    """The mean over all classes of one checkpoint, or why it cannot be given."""
    cell = over_seeds(group, datasets, class_mean)
    if cell != Missing("n/a"):
        return cell
    return NO_GROUND_TRUTH if no_ground_truth(group) else Missing("n/a (no per-class AP)")


def unseen_mean(unseen: Unseen) -> SeedScore:
    """A seed score: mean of per-class AP over the ``unseen`` classes (None if none are present)."""

    def score(cells: pd.DataFrame) -> float | None:
        values = [ap for dataset, per_class in zip(cells["dataset"], cells["per_class"], strict=True)
                  for name, ap in per_class.items()
                  if name in unseen.get(dataset, frozenset()) and not math.isnan(ap)]  # fmt: skip
        return statistics.fmean(values) if values else None

    return score


def unseen_cell(group: pd.DataFrame, datasets: Sequence[str], rule: UnseenRule | None) -> Cell:
    """The unseen-class average of one checkpoint, or why it cannot be given."""
    upstream = str(group["upstream"].iloc[0])
    if rule is None:
        return Missing("n/a (no unseen rule)")
    if not upstream:
        return Missing("n/a (upstream unknown)")
    unseen = rule.classes(tuple(upstream.split("+")))
    if not any(unseen.get(d) for d in datasets):
        return Missing("n/a (no unseen classes)")
    cell = over_seeds(group, datasets, unseen_mean(unseen))
    if cell != Missing("n/a"):
        return cell
    lacking = {(d, name) for d, name in no_ground_truth(group) if name in unseen.get(d, frozenset())}
    return NO_GROUND_TRUTH if lacking else Missing("n/a (no per-class AP)")
