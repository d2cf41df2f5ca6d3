"""Repeat factor sampling: hand-computed factors, seeded rank-aware stream, exact resume."""

from __future__ import annotations

import itertools
import math

import pytest

from scaledet.errors import ConfigError
from scaledet.sampling import RepeatFactorSampler, dataset_repeat_factors, repeat_factors


def test_repeat_factors_hand_computed():
    # 4 images; category 1 in all 4 (f = 1), category 2 in 1 (f = 0.25); t = 0.5
    factors = repeat_factors([[1], [1, 2], [1], [1]], threshold=0.5)
    assert factors == pytest.approx([1.0, math.sqrt(0.5 / 0.25), 1.0, 1.0])
    assert repeat_factors([[1], []], threshold=0.0) == [1.0, 1.0]
    assert repeat_factors([[], [3]], threshold=2.0) == pytest.approx([1.0, math.sqrt(2.0 / 0.5)])


def test_combined_repeat_factors_hand_computed():
    """Two datasets, both with a category id 1 (distinct labels in the concatenated space); t = 0.5.
    A: 4 images [[1], [1], [1, 2], []]; B: 2 images [[1], []]; 6 images in all.
    Combined: f(A1) = 3/6 -> r 1; f(A2) = 1/6 -> sqrt(0.5 * 6) = sqrt(3); f(B1) = 1/6 -> sqrt(3).
    Per dataset: f(A1) = 3/4 -> 1; f(A2) = 1/4 -> sqrt(2); f(B1) = 1/2 -> 1."""
    a, b = [[1], [1], [1, 2], []], [[1], []]
    assert dataset_repeat_factors([a, b], 0.5) == pytest.approx([1, 1, math.sqrt(3), 1, math.sqrt(3), 1])
    assert dataset_repeat_factors([a, b], 0.5, "combined") == dataset_repeat_factors([a, b], 0.5)  # the default
    assert dataset_repeat_factors([a, b], 0.5, "per_dataset") == pytest.approx([1, 1, math.sqrt(2), 1, 1, 1])
    assert dataset_repeat_factors([a, b], 0.0) == [1.0] * 6
    with pytest.raises(ConfigError, match="data.repeat_factors is 'joint'; expected one of combined, per_dataset"):
        dataset_repeat_factors([a, b], 0.5, "joint")


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_stochastic_rounding_repeats_rare_images():
    sampler = RepeatFactorSampler([1.0, 3.0, 1.5], seed=0)
    epoch = sampler._epoch(0)
    assert epoch.count(1) == 3 and epoch.count(0) == 1 and epoch.count(2) in (1, 2)
    counts = [sampler._epoch(e).count(2) for e in range(400)]
    assert sum(counts) / 400 == pytest.approx(1.5, abs=0.08)


def test_seeded_and_rank_aware():
    factors = [1.0] * 10
    assert _take(RepeatFactorSampler(factors, seed=1), 25) == _take(RepeatFactorSampler(factors, seed=1), 25)
    assert _take(RepeatFactorSampler(factors, seed=1), 10) != _take(RepeatFactorSampler(factors, seed=2), 10)
    r0 = [i for i, _ in _take(RepeatFactorSampler(factors, seed=3, rank=0, world_size=2), 5)]
    r1 = [i for i, _ in _take(RepeatFactorSampler(factors, seed=3, rank=1, world_size=2), 5)]
    assert sorted(r0 + r1) == list(range(10))  # one epoch split between the two ranks
    seeds = [s for _, s in _take(RepeatFactorSampler(factors, seed=3, rank=0, world_size=2), 5)]
    seeds += [s for _, s in _take(RepeatFactorSampler(factors, seed=3, rank=1, world_size=2), 5)]
    assert len(set(seeds)) == 10  # every sample gets its own augmentation seed


def test_resume_continues_the_same_stream():
    straight = _take(RepeatFactorSampler([1.0, 2.5, 1.0], seed=4), 30)
    first = RepeatFactorSampler([1.0, 2.5, 1.0], seed=4)
    first.advance(13)
    resumed = RepeatFactorSampler([1.0, 2.5, 1.0], seed=4)
    resumed.load_state_dict(first.state_dict())
    assert _take(resumed, 17) == straight[13:]
    with pytest.raises(ValueError, match="world size"):
        RepeatFactorSampler([1.0], seed=4, world_size=2).load_state_dict(first.state_dict())


def test_augmentation_independent_of_worker_count(tmp_path):
    import torch
    from coco_fixtures import odinw_coco

    from scaledet.data import DetectionDataset, category_mapping, collate, load_coco
    from scaledet.labels import LabelSpace
    from scaledet.transforms import LargeScaleJitter

    ds = load_coco(odinw_coco(tmp_path, "Packages", ["valid"]), name="packages")
    space = LabelSpace.from_embeddings(["package"], torch.randn(1, 4), "packages")
    data = DetectionDataset([ds], [category_mapping(ds, space)], LargeScaleJitter(64, (0.1, 2.0), 0.5))

    def batches(workers):
        sampler = RepeatFactorSampler([1.0] * len(ds), seed=5)
        loader = torch.utils.data.DataLoader(data, batch_size=3, sampler=sampler, num_workers=workers,
                                             collate_fn=collate)
        return list(itertools.islice(iter(loader), 2))

    for (imgs_a, tgts_a), (imgs_b, tgts_b) in zip(batches(0), batches(2)):
        # same crops and flips; pixels may differ by 1 ulp (interpolation vectorised per thread count)
        assert all(torch.allclose(a, b, atol=1e-6, rtol=0) for a, b in zip(imgs_a, imgs_b))
        assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(tgts_a, tgts_b))


def test_negative_threshold_means_uniform_sampling():
    assert repeat_factors([[1], [1, 2]], threshold=-1.0) == [1.0, 1.0]


def test_state_records_every_advance():
    sampler = RepeatFactorSampler([1.0, 2.0], seed=6, rank=1, world_size=3)
    sampler.advance(5)
    sampler.advance(8)
    assert sampler.state_dict() == {"seed": 6, "rank": 1, "world_size": 3, "consumed": 13}


def test_resume_at_every_position_of_the_first_epochs():
    straight = _take(RepeatFactorSampler([1.0, 2.5, 1.0], seed=4), 20)
    assert [i for i, _ in straight[:4]] == RepeatFactorSampler([1.0, 2.5, 1.0], seed=4)._epoch(0)[:4]  # epoch 0 first
    for consumed in range(12):
        resumed = RepeatFactorSampler([1.0, 2.5, 1.0], seed=4)
        resumed.advance(consumed)
        assert _take(resumed, 8) == straight[consumed:consumed + 8], consumed


def test_epoch_is_padded_to_a_multiple_of_the_world_size():
    # 4 images, 3 ranks: 2 entries repeated so that every rank gets 2
    epochs = [RepeatFactorSampler([1.0] * 4, seed=2, rank=r, world_size=3)._epoch(0) for r in range(3)]
    assert [len(e) for e in epochs] == [2, 2, 2] and {i for e in epochs for i in e} == {0, 1, 2, 3}


def test_defaults_and_an_empty_image_list():
    sampler = RepeatFactorSampler([1.0, 1.0])
    assert sampler.state_dict() == {"seed": 0, "rank": 0, "world_size": 1, "consumed": 0}
    with pytest.raises(ValueError, match=r"^cannot sample from zero images$"):
        RepeatFactorSampler([])
