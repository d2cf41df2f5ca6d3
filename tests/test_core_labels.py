"""Label spaces: eq. 2 (concatenation), eq. 3-4 (similarity matrix), fingerprints and the embedding cache."""

import hashlib
import math

import pytest
import torch

from scaledet.errors import ConfigError
from scaledet.labels import LabelSpace, default_cache_dir, encode_label_space, similarity_matrix
from scaledet.prompts import IMAGENET_TEMPLATES, SHORT_TEMPLATES
from scaledet.text import EncoderSetting

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


class Pickled:
    """Not a tensor, list or string: ``torch.load(weights_only=True)`` refuses files holding one."""


def test_cache_entries_of_another_label_space_or_unsafe_files_are_re_encoded(tmp_path, caplog):
    enc = CountingEncoder()
    ls = encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    entry = tmp_path / f"{ls.fingerprint}.pt"
    other_encoder = {"names": ["fish"], "encoder_id": "fake-v0", "embeddings": torch.ones(1, 3)}
    other_names = {"names": ["shark"], "encoder_id": "fake-v1", "embeddings": torch.ones(1, 3)}
    unsafe = {"names": ["fish"], "encoder_id": "fake-v1", "embeddings": torch.ones(1, 3), "x": Pickled()}
    for state in (other_encoder, other_names, unsafe):
        torch.save(state, entry)
        caplog.clear()
        with caplog.at_level("WARNING", logger="scaledet.labels"):
            again = encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
        assert torch.equal(again.embeddings, ls.embeddings)
        (message,) = [r.getMessage() for r in caplog.records]
        if state is unsafe:
            assert message.startswith(f"ignoring unreadable embedding cache {entry} (")
        else:
            assert message == f"embedding cache {entry} belongs to another label space; re-encoding"
    assert enc.calls == 4  # each bad entry was re-encoded (and overwritten)
    with caplog.at_level("DEBUG", logger="scaledet.labels"):
        encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    assert enc.calls == 4 and f"label embeddings from cache {entry}" in [r.getMessage() for r in caplog.records]


def test_unreadable_cache_warning_names_the_file_and_the_error(tmp_path, caplog):
    enc = CountingEncoder()
    ls = encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    (tmp_path / f"{ls.fingerprint}.pt").write_bytes(b"not a torch file")
    with caplog.at_level("WARNING", logger="scaledet.labels"):
        encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"ignoring unreadable embedding cache {tmp_path / ls.fingerprint}.pt (")
    assert message.endswith(")") and "None" not in message and len(message) > len(str(tmp_path)) + 45


def test_cache_folder_is_created_and_use_cache_false_always_encodes(tmp_path):
    enc = CountingEncoder()
    nested = tmp_path / "a" / "b"
    ls = encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=nested)
    assert (nested / f"{ls.fingerprint}.pt").is_file()
    encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=nested, use_cache=False)
    assert enc.calls == 2
    fresh = tmp_path / "fresh"
    encode_label_space(["fish"], "aquarium", enc, SHORT_TEMPLATES, cache_dir=fresh, use_cache=False)
    assert enc.calls == 3 and not fresh.exists()  # nothing read, nothing written


def test_default_cache_dir_follows_scaledet_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEDET_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "embeddings"


def test_labels_with_several_prompts_each_get_their_own_mean(tmp_path):
    enc = CountingEncoder()
    ls = encode_label_space(["ab", "abc", "b"], "d", enc, ("{}", "x {}"), cache_dir=tmp_path)

    def expected(name):
        a, b = enc.encode([name])[0], enc.encode([f"x {name}"])[0]
        mean = a / a.norm() + b / b.norm()
        return (mean / mean.norm()).tolist()

    for row, name in zip(ls.embeddings.tolist(), ["ab", "abc", "b"], strict=True):
        assert row == pytest.approx(expected(name), abs=1e-6)


def test_empty_label_list_and_mismatched_prompt_names(tmp_path):
    enc = CountingEncoder()
    empty = encode_label_space([], "d", enc, SHORT_TEMPLATES, cache_dir=tmp_path, use_cache=False)
    assert len(empty) == 0 and tuple(empty.embeddings.shape) == (0, 0) and enc.calls == 0
    with pytest.raises(ConfigError, match=r"^2 label names but 1 prompt names$"):
        encode_label_space(["a", "b"], "d", enc, SHORT_TEMPLATES, cache_dir=tmp_path, prompt_names=["x"])


def test_encoder_setting_travels_with_the_label_space(tmp_path):
    enc = CountingEncoder()
    enc.setting = EncoderSetting("minilm")
    ls = encode_label_space(["a", "b"], "d1", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    assert ls.encoder_setting == EncoderSetting("minilm")
    plain = LabelSpace.from_embeddings(["c"], torch.ones(1, 3), "d2", encoder_id="fake-v1")
    for joint in (LabelSpace.concat([plain, ls]), LabelSpace.concat([ls, plain])):
        assert joint.encoder_setting == EncoderSetting("minilm") and joint.encoder_id == "fake-v1"
        sub = joint.subset("d1")
        assert sub.encoder_setting == EncoderSetting("minilm") and sub.encoder_id == "fake-v1"
        assert sub.names == ("a", "b") and torch.equal(sub.embeddings, ls.embeddings)
    alone = LabelSpace.concat([plain])
    assert alone.encoder_id == "fake-v1" and alone.encoder_setting is None
    with pytest.raises(ConfigError, match=r"^cannot concatenate an empty list of label spaces$"):
        LabelSpace.concat([])


def test_state_round_trip_keeps_the_encoder_setting_and_names_a_missing_field():
    setting = EncoderSetting("openclip:ViT-B-16", "laion2b_s34b_b88k")
    space = LabelSpace(("a", "b"), ("d", "d"), (("a",), ("b",)), "enc", torch.eye(2), setting)
    assert LabelSpace.from_state(space.to_state()).encoder_setting == setting
    state = space.to_state()
    del state["names"]
    with pytest.raises(ConfigError, match=r"^label space state lacks the field 'names'$"):
        LabelSpace.from_state(state)


def test_progress_bar_only_from_four_encoder_calls_on(tmp_path, capsys):
    # 64 labels per encoder call: 192 labels are 3 calls (no bar), 193 are 4 (a bar naming the encoder)
    for count, shown in ((192, False), (193, True)):
        names = [f"label {i}" for i in range(count)]
        encode_label_space(names, "d", CountingEncoder(), ("{}",), cache_dir=tmp_path, use_cache=False)
        err = capsys.readouterr().err
        assert ("encoding labels (fake-v1)" in err and "4/4" in err and "chunk/s]" in err) == shown, err
        assert bool(err) == shown


def test_fingerprint_is_the_documented_hash_of_the_unicode_json():
    # persisted (cache file names, checkpoints): sha256 of the JSON [names, prompts, encoder id], non-ASCII kept
    space = LabelSpace(("café",), ("d",), (("a photo of a café.",),), "enc", torch.ones(1, 2))
    payload = '[["café"], [["a photo of a café."]], "enc"]'.encode()
    assert space.fingerprint == hashlib.sha256(payload).hexdigest()[:16]


def test_label_space_field_errors_name_what_disagrees():
    with pytest.raises(ConfigError, match=r"^label space fields disagree: 2 names, 1 datasets, 2 prompt lists, "
                                          r"embeddings \[2, 2\]$"):
        LabelSpace(("a", "b"), ("d",), (("a",), ("b",)), "e", torch.ones(2, 2))
    with pytest.raises(ConfigError, match=r"^label space fields disagree: 1 names, 1 datasets, 1 prompt lists, "
                                          r"embeddings \[2, 2\]$"):
        LabelSpace(("a",), ("d",), (("a",),), "e", torch.ones(2, 2))
    plain = LabelSpace.from_embeddings(["a"], torch.ones(1, 2))
    assert plain.datasets == ("",) and plain.encoder_id == "given"
    with pytest.raises(ConfigError, match=r"^no labels of dataset 'x' here; datasets: \['', 'd'\]$"):
        LabelSpace.concat([plain, LabelSpace.from_embeddings(["b"], torch.ones(1, 2), "d")]).indices_of("x")


def test_embedding_shape_and_zero_row_errors():
    with pytest.raises(ConfigError, match=r"^embeddings must be a 2-d tensor \[n, D\], got shape \[3\]$"):
        LabelSpace.from_embeddings(["a", "b", "c"], torch.ones(3))
    with pytest.raises(ConfigError, match=r"^embeddings rows \[1, 3\] are all zeros$"):
        similarity_matrix(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
    with pytest.raises(ConfigError, match=r"^embeddings rows \[0, 1\] are all zeros$"):
        similarity_matrix(torch.zeros(2, 0))  # rows of no dimensions have no direction either
