"""Multi-dataset repeat factor sampling (LVIS-style), seeded, rank-aware, resumable.

Repeat factor of an image (Gupta et al., LVIS): ``r(I) = max_{c in I} max(1, sqrt(t / f(c)))`` where
``f(c)`` is the fraction of images that contain category ``c``. ``combined`` (the default, the paper's "we directly
combine all datasets and use repeat factor sampling"): the fraction over the union of the training datasets, each
dataset's categories distinct, as they are in the concatenated label space; so a dataset's categories repeat by how
rare they are among all images, and a small dataset's images repeat more. ``per_dataset``: the fraction over the
images of the category's own dataset (each dataset sampled in proportion to its size). Each epoch rounds
``r`` stochastically, shuffles, pads to a multiple of the world size and gives rank ``k`` every
``world``-th entry. The stream is a pure function of (seed, rank, world), so resuming is skipping. With the
engine's global batch B (each rank takes B / world per step), step s draws the epoch's positions s·B … (s+1)·B − 1
whatever the world size (up to the padding at an epoch's end).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence

import torch

from scaledet.errors import ConfigError


def repeat_factors(image_categories: Sequence[Sequence[Hashable]], threshold: float) -> list[float]:
    """``r(I)`` for each image of one image set, given the categories in each image (t = ``threshold``).

    Images without boxes get 1. ``threshold <= 0`` gives all ones (plain uniform sampling).
    """
    if threshold <= 0 or not image_categories:
        return [1.0] * len(image_categories)
    counts: dict[Hashable, int] = {}
    for cats in image_categories:
        for c in set(cats):
            counts[c] = counts.get(c, 0) + 1
    total = len(image_categories)
    per_cat = {c: max(1.0, math.sqrt(threshold / (n / total))) for c, n in counts.items()}
    return [max((per_cat[c] for c in set(cats)), default=1.0) for cats in image_categories]


REPEAT_FACTOR_MODES = ("combined", "per_dataset")


def dataset_repeat_factors(datasets_categories: Sequence[Sequence[Sequence[int]]], threshold: float,
                           mode: str = "combined") -> list[float]:
    """``r(I)`` of every image of several datasets, in order (dataset by dataset), given each dataset's category
    ids per image; ``mode`` as in the module docstring."""
    if mode not in REPEAT_FACTOR_MODES:
        raise ConfigError(f"data.repeat_factors is {mode!r}; expected one of {', '.join(REPEAT_FACTOR_MODES)}")
    if mode == "per_dataset":
        return [r for categories in datasets_categories for r in repeat_factors(categories, threshold)]
    union = [[(k, c) for c in image] for k, categories in enumerate(datasets_categories) for image in categories]
    return repeat_factors(union, threshold)


class RepeatFactorSampler(torch.utils.data.Sampler):
    """Endless stream of ``(index, augmentation_seed)`` for this rank; ``state_dict`` records how far it got.

    ``factors`` are the repeat factors of the concatenated datasets' images (in global index order).
    The engine calls ``advance(n)`` for every n samples it actually consumed, so prefetching by the
    loader never moves the recorded position.
    """

    def __init__(self, factors: Sequence[float], seed: int = 0, rank: int = 0, world_size: int = 1):
        if not factors:
            raise ValueError("cannot sample from zero images")
        self.factors = torch.tensor(list(factors), dtype=torch.float64)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.consumed = 0  # samples of this rank consumed so far

    def _epoch(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        whole = self.factors.floor()
        extra = (torch.rand(len(self.factors), generator=generator, dtype=torch.float64)
                 < self.factors - whole).double()
        indices = torch.repeat_interleave(torch.arange(len(self.factors)), (whole + extra).long())
        indices = indices[torch.randperm(len(indices), generator=generator)].tolist()
        padding = (-len(indices)) % self.world_size
        indices += indices[:padding]
        return indices[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = 0, self.consumed
        while True:
            indices = self._epoch(epoch)
            if skip >= len(indices):
                skip -= len(indices)
                epoch += 1
                continue
            for position in range(skip, len(indices)):
                seed = (self.seed * 7919 + epoch) * 1_000_003 + position * self.world_size + self.rank
                yield indices[position], seed
            skip = 0
            epoch += 1

    def advance(self, n: int) -> None:
        """Record ``n`` more samples consumed."""
        self.consumed += int(n)

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "rank": self.rank, "world_size": self.world_size, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``consumed`` (seed and world size must match, else the stream would differ)."""
        if state["seed"] != self.seed or state["world_size"] != self.world_size:
            raise ValueError(
                f"sampler state is for seed {state['seed']} / world size {state['world_size']}, "
                f"this run has seed {self.seed} / world size {self.world_size}"
            )
        self.consumed = int(state["consumed"])
