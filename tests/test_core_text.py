"""The real text encoders: MiniLM offline, OpenCLIP code path with random weights, missing weights."""

import pytest
import torch

from scaledet.errors import WeightsUnavailableError
from scaledet.labels import encode_label_space, similarity_matrix
from scaledet.prompts import SHORT_TEMPLATES
from scaledet.text import MiniLMEncoder, OpenCLIPEncoder, TextEncoder, build_text_encoder


class Counting:
    def __init__(self, inner):
        self.inner, self.id, self.calls = inner, inner.id, 0

    def encode(self, texts):
        self.calls += 1
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder()


def test_minilm_relates_related_labels(minilm, tmp_path):
    enc = Counting(minilm)
    ls = encode_label_space(["footwear", "sneakers", "avocado"], "t", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    cos = ls.embeddings @ ls.embeddings.t()
    assert ls.embeddings.shape == (3, 384)
    assert cos[0, 1] > cos[0, 2] + 0.1, cos
    sim = similarity_matrix(ls.embeddings)
    assert sim[0, 1] > sim[0, 2]
    assert enc.calls == 1
    encode_label_space(["footwear", "sneakers", "avocado"], "t", enc, SHORT_TEMPLATES, cache_dir=tmp_path)
    assert enc.calls == 1  # the second time comes from the cache


def test_minilm_is_a_text_encoder(minilm):
    assert isinstance(minilm, TextEncoder) and minilm.id == "minilm-l6-v2"
    assert isinstance(build_text_encoder("minilm"), MiniLMEncoder)


def test_openclip_code_path_with_random_weights():
    enc = OpenCLIPEncoder("ViT-B-32", pretrained=None)
    out = enc.encode(["a photo of a cat.", "a photo of a dog."])
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    assert enc.id == "openclip:ViT-B-32:random"


def test_openclip_missing_local_weights_say_how_to_supply_them(tmp_path):
    missing = tmp_path / "nowhere" / "open_clip_model.bin"
    with pytest.raises(WeightsUnavailableError) as info:
        OpenCLIPEncoder("ViT-B-32", pretrained=str(missing)).encode(["x"])
    message = str(info.value)
    assert str(missing) in message and "ViT-B-32" in message and "pass its path" in message


def test_openclip_hub_weights_unreachable_offline_is_a_clear_error():
    # conftest sets HF_HUB_OFFLINE=1, as a user without internet should; the hub lookup then fails at once
    with pytest.raises(WeightsUnavailableError) as info:
        build_text_encoder("clip").encode(["x"])
    assert "openai" in str(info.value) and "text_weights=PATH" in str(info.value)
