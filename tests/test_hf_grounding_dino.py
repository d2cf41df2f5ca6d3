"""The Grounding DINO and MM-Grounding-DINO adapters on tiny randomly initialised models and real demo images:
detections equal what a ``transformers`` user computes from the model and the processor's post-processing (class
score = mean token probability over the class's tokens), boxes in the image's own pixels, long label lists split
into chunks with the same per-class detections, and batching without effect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from hf_tiny_grounding_dino import save_tiny_grounding_dino, save_tiny_mm_grounding_dino
from PIL import Image

from harness.workloads.hf.families.base import Family, ImageDetections, Loaded
from harness.workloads.hf.families.grounding_dino import GroundingDino, MMGroundingDino
from scaledet.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread

RACCOON = Path(__file__).resolve().parents[1] / "harness/data/demo/odinw/Raccoon/Raccoon.v2-raw.coco"
IMAGE = RACCOON / "test/raccoon-105.jpg"  # 320 wide, 427 high
SAME_SIZE_IMAGE = RACCOON / "train/raccoon-103.jpg"  # also 320 x 427
CLASSES = ["raccoon", "chanterelle", "cow", "striped hyena"]
WORDS = ["raccoon", "chanterelle", "cow", "striped", "hyena", "fish", "shark", "penguin"]
# 43 classes (ODinW-like names; words outside WORDS are spelled out one letter a token)
MANY = ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray", "raccoon", "cow", "chanterelle",
        "striped hyena", "dog", "cat", "pistol", "pothole", "boat", "car", "truck", "bus", "person", "helmet",
        "head", "hand", "egg", "pig", "duck", "fox", "owl", "bee", "ant", "deer", "goat", "horse", "sheep", "mask",
        "cone", "sign", "drone", "bird", "frog", "crab", "seal", "shark fin"]
TOO_LONG = "an extraordinarily long class description"
BUILDERS = {"grounding-dino": (GroundingDino(), save_tiny_grounding_dino),
            "mm-grounding-dino": (MMGroundingDino(), save_tiny_mm_grounding_dino)}


def _load(tmp_path_factory, name: str, max_text_len: int) -> tuple[Family, Loaded, Path]:
    family, save = BUILDERS[name]
    folder = save(tmp_path_factory.mktemp(f"{name}-{max_text_len}"), WORDS, max_text_len=max_text_len)
    return family, family.load(folder, torch.device("cpu")), folder


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def tiny(request, tmp_path_factory) -> tuple[Family, Loaded, Path]:
    return _load(tmp_path_factory, request.param, 256)


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def short(request, tmp_path_factory) -> tuple[Family, Loaded, Path]:
    """A tiny model whose text limit is 32 tokens."""
    return _load(tmp_path_factory, request.param, 32)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.open(IMAGE).convert("RGB")


def _by_class(found: ImageDetections, n_classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each class's (boxes, scores), ordered by score then box, so that the order of detections does not count."""
    out = []
    for c in range(n_classes):
        keep = found.labels == c
        boxes, scores = found.boxes[keep], found.scores[keep]
        order = sorted(range(len(scores)), key=lambda i: (scores[i].item(), *boxes[i].tolist()))
        out.append((boxes[order], scores[order]))
    return out


def _assert_same(a: ImageDetections, b: ImageDetections, n_classes: int, atol: float = 0.0) -> None:
    assert a.labels.dtype == b.labels.dtype == torch.int64
    assert a.boxes.dtype == b.boxes.dtype == a.scores.dtype == torch.float32
    assert sorted(a.labels.tolist()) == sorted(b.labels.tolist())
    for (boxes_a, scores_a), (boxes_b, scores_b) in zip(_by_class(a, n_classes), _by_class(b, n_classes),
                                                        strict=True):
        torch.testing.assert_close(scores_a, scores_b, atol=atol, rtol=atol)
        torch.testing.assert_close(boxes_a, boxes_b, atol=atol, rtol=atol)


def test_saved_model_is_read_by_its_family(tiny):
    family, loaded, folder = tiny
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] in family.model_types
    assert type(loaded.model).__name__ == family.model_class == config["architectures"][0]
    assert type(loaded.processor).__name__ == family.processor_class == "GroundingDinoProcessor"
    assert loaded.model.config.max_text_len == 256 and not loaded.amp


def _direct(loaded: Loaded, image: Image.Image, threshold: float) -> tuple[ImageDetections, torch.Tensor, dict]:
    """What a transformers user computes: processor -> model -> the processor's post-processing, and per class the
    mean probability of the class's tokens, found here by hand."""
    processor, model = loaded.processor, loaded.model
    inputs = processor(images=image, text="raccoon. chanterelle. cow. striped hyena.", return_tensors="pt")
    tokens = processor.tokenizer.convert_ids_to_tokens(inputs.input_ids[0])
    assert tokens == ["[CLS]", "raccoon", ".", "chanterelle", ".", "cow", ".", "striped", "hyena", ".", "[SEP]"]
    ids = inputs.input_ids[0].tolist()
    vocab = processor.tokenizer.get_vocab()
    positions = [[ids.index(vocab["raccoon"])], [ids.index(vocab["chanterelle"])], [ids.index(vocab["cow"])],
                 [7, 8]]
    with torch.no_grad():
        outputs = model(**inputs)
    result = processor.post_process_grounded_object_detection(outputs, inputs.input_ids, threshold=0.0,
                                                              text_threshold=0.3,
                                                              target_sizes=[(image.height, image.width)])[0]
    assert len(result["boxes"]) == model.config.num_queries == 20
    probs = outputs.logits[0].sigmoid()
    scores = torch.stack([probs[:, p].mean(-1) for p in positions], dim=-1)  # (queries, classes)
    query, label = torch.nonzero(scores >= threshold, as_tuple=True)
    expected = ImageDetections(result["boxes"][query], scores[query, label], label)
    return expected, scores, {"pred_boxes": outputs.pred_boxes[0], "probs": probs}


@pytest.mark.parametrize("threshold", [0.0, "median"])
def test_detections_equal_the_model_and_processor_used_directly(tiny, image, threshold):
    family, loaded, _ = tiny
    _, scores, raw = _direct(loaded, image, 0.0)
    if threshold == "median":
        threshold = scores.median().item()
    expected, _, _ = _direct(loaded, image, threshold)
    found = family.detect_chunk(loaded, [image], CLASSES, threshold)
    assert len(found) == 1
    _assert_same(found[0], expected, len(CLASSES), atol=1e-6)
    n_pairs = scores.numel()
    assert len(found[0].scores) == (n_pairs if threshold == 0.0 else (scores >= threshold).sum().item())
    assert threshold == 0.0 or 0 < len(found[0].scores) < n_pairs
    # the multi-token class is the mean over its two tokens, neither of them alone nor the max over all tokens
    two = raw["probs"][:, 7:9]
    assert not torch.allclose(two.mean(-1), two.max(-1).values)
    torch.testing.assert_close(scores[:, 3], two.mean(-1))


def test_boxes_are_in_the_image_pixels(tiny, image):
    family, loaded, _ = tiny
    _, scores, raw = _direct(loaded, image, 0.0)
    found = family.detect_chunk(loaded, [image], CLASSES, 0.0)[0]
    width, height = image.size
    assert (width, height) == (320, 427)
    query = int(scores[:, 0].argmax())
    cx, cy, w, h = raw["pred_boxes"][query].tolist()
    by_hand = torch.tensor([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
    best = int(torch.where(found.labels == 0, found.scores, -1.0).argmax())
    assert found.scores[best] == pytest.approx(scores[query, 0].item(), abs=1e-7)
    torch.testing.assert_close(found.boxes[best], by_hand, atol=1e-3, rtol=0)


def test_long_label_list_runs_in_chunks_with_each_chunk_s_own_detections(short, image):
    family, loaded, _ = short
    assert len(MANY) == 43 and len(set(MANY)) == 43
    chunks = family.chunks(loaded, MANY)
    assert len(chunks) > 1
    assert [t for _, chunk in chunks for t in chunk] == MANY
    tokenizer = loaded.processor.tokenizer
    for (offset, chunk), (next_offset, _) in zip(chunks, [*chunks[1:], (len(MANY), [])], strict=True):
        assert MANY[offset:next_offset] == chunk
        n_tokens = len(tokenizer(". ".join(chunk) + ".").input_ids)
        assert n_tokens <= 32 and family.fits(loaded, chunk)
        if next_offset < len(MANY):  # greedy: one class more would not fit
            assert len(tokenizer(". ".join(MANY[offset:next_offset + 1]) + ".").input_ids) > 32
            assert not family.fits(loaded, MANY[offset:next_offset + 1])
    found = family.detect(loaded, [image], MANY, 0.0)[0]
    alone = ImageDetections.concat([family.detect_chunk(loaded, [image], chunk, 0.0)[0].shifted(offset)
                                    for offset, chunk in chunks])
    assert len(found.labels) == loaded.model.config.num_queries * len(MANY)  # every (query, class) pair
    _assert_same(found, alone, len(MANY))


def test_a_list_that_fits_runs_as_one_chunk(tiny, image):
    family, loaded, _ = tiny
    assert family.chunks(loaded, CLASSES) == [(0, CLASSES)]
    _assert_same(family.detect(loaded, [image], CLASSES, 0.1)[0],
                 family.detect_chunk(loaded, [image], CLASSES, 0.1)[0], len(CLASSES))


def test_a_class_longer_than_the_text_limit_is_an_error(short, image):
    family, loaded, _ = short
    assert len(loaded.processor.tokenizer(TOO_LONG + ".").input_ids) > 32
    with pytest.raises(ConfigError, match=re.escape(repr(TOO_LONG))):
        family.detect(loaded, [image], ["fish", TOO_LONG, "shark"], 0.0)
    with pytest.raises(ConfigError, match="text limit"):
        family.detect_chunk(loaded, [image], MANY, 0.0)


def test_a_batch_equals_each_image_alone(tiny, image):
    family, loaded, _ = tiny
    other = Image.open(SAME_SIZE_IMAGE).convert("RGB")
    assert other.size == image.size
    batch = family.detect_chunk(loaded, [image, other], CLASSES, 0.0)
    assert len(batch) == 2
    for one, alone in zip(batch, [image, other], strict=True):
        _assert_same(one, family.detect_chunk(loaded, [alone], CLASSES, 0.0)[0], len(CLASSES), atol=1e-5)
    assert not torch.allclose(batch[0].scores, batch[1].scores)  # two different images
