"""Label spaces: eq. 2 (concatenation), eq. 3-4 (similarity matrix), fingerprints and the embedding cache."""

import math

import pytest
import torch

from scaledet.errors import ConfigError
from scaledet.labels import LabelSpace, encode_label_space, similarity_matrix
from scaledet.prompts import IMAGENET_TEMPLATES, SHORT_TEMPLATES

R = 1 / math.sqrt(2)


def test_similarity_matrix_by_hand_with_non_unit_embeddings():
    # directions (1,0), (0,1), (1,1)/sqrt2 given with lengths 3, 2 and sqrt2
    sim = similarity_matrix(torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
    # cosines: row 0 [1, 0, R] (min 0), row 1 [0, 1, R] (min 0), row 2 [R, R, 1] (min R -> [0, 0, 1])
    expected = [[1.0, 0.0, R], [0.0, 1.0, R], [0.0, 0.0, 1.0]]
    for row, want in zip(sim.tolist(), expected, strict=True):
        assert row == pytest.approx(want, abs=1e-6)


def test_similarity_rows_span_zero_to_one_with_ones_on_the_diagonal():
    # cosines of row 0: [1, 0.6, -0.8] -> (c + 0.8) / 1.8 = [1, 0.7778, 0]
    sim = similarity_matrix(torch.tensor([[1.0, 0.0], [0.6, 0.8], [-0.8, 0.6]]))
    assert sim[0].tolist() == pytest.approx([1.0, 1.4 / 1.8, 0.0], abs=1e-6)
    assert torch.diagonal(sim).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert sim.min(dim=1).values.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)


def test_row_with_all_equal_cosines_becomes_all_ones():
    # a single label, or labels that all point the same way: no spread to normalise by
    assert similarity_matrix(torch.tensor([[2.0, 0.0]])).tolist() == [[1.0]]
    sim = similarity_matrix(torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.5, 0.5]]))
    assert torch.equal(sim, torch.ones(3, 3))


def test_zero_embedding_is_an_error():
    with pytest.raises(ConfigError, match="all zeros"):
        similarity_matrix(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def space(names, dataset, seed=0):
    return LabelSpace.from_embeddings(names, torch.randn(len(names), 4, generator=torch.Generator().manual_seed(seed)), dataset)


def test_concatenation_is_a_disjoint_union_in_order():
    coco, lvis = space(["person", "car"], "coco", 1), space(["person", "zebra", "car"], "lvis", 2)
    joint = LabelSpace.concat([coco, lvis])
    assert joint.names == ("person", "car", "person", "zebra", "car")
    assert joint.datasets == ("coco", "coco", "lvis", "lvis", "lvis")
    assert joint.indices_of("lvis") == [2, 3, 4]
    assert torch.equal(joint.embeddings[2:], lvis.embeddings)
    assert torch.equal(joint.subset("coco").embeddings, coco.embeddings)
    assert joint.fingerprint != LabelSpace.concat([lvis, coco]).fingerprint


def test_concatenation_refuses_mixed_encoders():
    a = LabelSpace.from_embeddings(["a"], torch.ones(1, 2), "x", encoder_id="e1")
    b = LabelSpace.from_embeddings(["b"], torch.ones(1, 2), "y", encoder_id="e2")
    with pytest.raises(ConfigError, match="different text encoders"):
        LabelSpace.concat([a, b])


def test_state_round_trip():
    joint = LabelSpace.concat([space(["a", "b"], "d1"), space(["c"], "d2")])
    back = LabelSpace.from_state(joint.to_state())
    assert back.names == joint.names and back.datasets == joint.datasets
    assert back.fingerprint == joint.fingerprint and torch.equal(back.embeddings, joint.embeddings)


class CountingEncoder:
    """A deterministic fake encoder that counts its calls (for cache behaviour only)."""

    def __init__(self, encoder_id="fake-v1"):
        self.id = encoder_id
        self.calls = 0
        self.texts = 0

    def encode(self, texts):
        self.calls += 1
        self.texts += len(texts)
        return torch.stack([torch.tensor([float(len(t)), float(sum(map(ord, t)) % 97), 1.0]) for t in texts])


def test_cache_serves_the_same_label_space_without_encoder_calls(tmp_path):
    enc = CountingEncoder()
    first = encode_label_space(["fish", "shark"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    assert enc.calls == 1 and enc.texts == 2 * len(SHORT_TEMPLATES)
    again = encode_label_space(["fish", "shark"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    assert enc.calls == 1
    assert torch.equal(first.embeddings, again.embeddings) and first.fingerprint == again.fingerprint


def test_cache_misses_on_changed_prompts_or_encoder(tmp_path):
    enc = CountingEncoder()
    base = encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    other_prompts = encode_label_space(["fish"], "aquarium", enc, ("a photo of a {}.",), cache_dir=tmp_path)
    renamed = encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, tmp_path, prompt_names=["a fish"])
    other_encoder = encode_label_space(["fish"], "aquarium", CountingEncoder("fake-v2"), SHORT_TEMPLATES, tmp_path)
    assert enc.calls == 3
    assert len({base.fingerprint, other_prompts.fingerprint, renamed.fingerprint, other_encoder.fingerprint}) == 4
    assert renamed.names == ("fish",) and renamed.prompts[0][0] == "a photo of a a fish."


def test_corrupt_cache_file_is_re_encoded(tmp_path):
    enc = CountingEncoder()
    ls = encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    (tmp_path / f"{ls.fingerprint}.pt").write_bytes(b"not a torch file")
    encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    assert enc.calls == 2


def test_label_embedding_is_the_normalised_mean_of_normalised_prompt_embeddings(tmp_path):
    enc = CountingEncoder()
    ls = encode_label_space(["ab"], "d", enc, ("{}", "x {}"), cache_dir=tmp_path)
    # prompts "ab" -> [2, (97+98) % 97 = 1, 1], "x ab" -> [4, (120+32+97+98) % 97 = 56, 1]
    a = torch.tensor([2.0, 1.0, 1.0])
    b = torch.tensor([4.0, 56.0, 1.0])
    mean = (a / a.norm() + b / b.norm()) / 2
    assert ls.embeddings[0].tolist() == pytest.approx((mean / mean.norm()).tolist(), abs=1e-6)


def test_imagenet_template_set_has_80_prompts():
    assert len(IMAGENET_TEMPLATES) == 80 and all("{}" in t for t in IMAGENET_TEMPLATES)
