"""The OmDet-Turbo adapter family on a tiny random model: its detections are those of the model and its
processor called directly, in the image's own pixels, batch-independent, with labels that index the texts
given and a text limit that chunks the class list exactly where the processor would truncate the task
prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from hf_tiny_omdet import NUM_QUERIES, save_tiny_omdet_turbo
from PIL import Image

from harness.workloads.hf.families.base import ImageDetections, Loaded
from harness.workloads.hf.families.omdet_turbo import OmDetTurbo
from scaledet.errors import ConfigError

DEMO = Path(__file__).resolve().parents[1] / "harness/data/demo/odinw/Raccoon/Raccoon.v2-raw.coco/test"
CLASSES = ["raccoon", "chanterelle", "cow"]
# out-of-vocabulary words: the tokenizer spells them one character a token, so each costs ~10 prompt tokens
LONG = ["xylophones", "quizzical", "jackknifed", "zigzagging", "bewitching", "frizzled", "humbugging",
        "jabberwock"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_omdet_turbo(tmp_path_factory.mktemp("omdet") / "model", CLASSES)


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> Loaded:
    return OmDetTurbo().load(model_dir, torch.device("cpu"))


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.open(DEMO / "raccoon-105.jpg").convert("RGB")  # 320 wide, 427 high


@pytest.fixture(scope="module")
def image2() -> Image.Image:
    return Image.open(DEMO / "raccoon-106.jpg").convert("RGB")  # 269 wide, 187 high


def assert_same(a: ImageDetections, b: ImageDetections, atol: float = 0.0) -> None:
    assert torch.equal(a.labels, b.labels)
    assert a.boxes.dtype == a.scores.dtype == torch.float32 and a.labels.dtype == torch.int64
    if atol:
        assert torch.allclose(a.boxes, b.boxes, atol=atol, rtol=0)
        assert torch.allclose(a.scores, b.scores, atol=atol, rtol=0)
    else:
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)


def test_saved_model_is_read_by_the_family(model_dir: Path, loaded: Loaded) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] in OmDetTurbo.model_types
    assert type(loaded.model).__name__ == OmDetTurbo.model_class and not loaded.model.training
    assert type(loaded.processor).__name__ == OmDetTurbo.processor_class
    assert not loaded.amp and OmDetTurbo.max_tokens(loaded) == 77


def test_equals_model_and_processor_called_directly(model_dir: Path, loaded: Loaded,
                                                    image: Image.Image) -> None:
    found = OmDetTurbo().detect(loaded, [image], CLASSES, threshold=0.0)[0]

    # what a transformers user writes, on a fresh copy of the model (its own text-embedding caches)
    model = transformers.OmDetTurboForObjectDetection.from_pretrained(model_dir, local_files_only=True).eval()
    processor = transformers.OmDetTurboProcessor.from_pretrained(model_dir, local_files_only=True)
    task = "Detect raccoon, chanterelle, cow."
    inputs = processor(images=image, text=CLASSES, task=task, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    expected = processor.post_process_grounded_object_detection(
        outputs, threshold=0.0, target_sizes=[(427, 320)], max_num_det=NUM_QUERIES * len(CLASSES))[0]

    assert_same(found, ImageDetections(expected["boxes"], expected["scores"], expected["labels"]))
    # more than the post-processing's default of one detection a query, all three classes found
    assert len(found.scores) > NUM_QUERIES and set(found.labels.tolist()) == {0, 1, 2}


def test_boxes_are_in_the_images_pixels(loaded: Loaded, image: Image.Image) -> None:
    found = OmDetTurbo().detect(loaded, [image], CLASSES, threshold=0.0)[0]
    inputs = loaded.processor(images=image, text=CLASSES, return_tensors="pt")
    with torch.no_grad():
        raw = loaded.model(**inputs)
    logits, coords = raw.decoder_class_logits[0], raw.decoder_coord_logits[0]
    query, label = divmod(int(logits.argmax()), len(CLASSES))  # the best (query, class): first after NMS
    cx, cy, w, h = coords[query].tolist()
    width, height = 320, 427
    by_hand = torch.tensor([max(0.0, (cx - w / 2) * width), max(0.0, (cy - h / 2) * height),
                            min(width, (cx + w / 2) * width), min(height, (cy + h / 2) * height)])
    best = found.top(1)
    assert int(best.labels[0]) == label
    assert torch.allclose(best.scores[0], logits[query, label].sigmoid())
    assert torch.allclose(best.boxes[0], by_hand, atol=1e-4)
    swapped = by_hand * torch.tensor([height / width, width / height] * 2)  # had (w, h) been taken for (h, w)
    assert not torch.allclose(best.boxes[0], swapped, atol=1)
    assert (found.boxes[:, 0::2] <= width).all() and (found.boxes[:, 1::2] <= height).all()
    assert (found.boxes >= 0).all() and (found.boxes[:, 1::2] > width).any()  # y past 320: scaled by height


def test_a_batch_equals_each_image_alone(loaded: Loaded, image: Image.Image, image2: Image.Image) -> None:
    family = OmDetTurbo()
    batch = family.detect(loaded, [image, image2], CLASSES, threshold=0.0)
    for one, alone in zip(batch, [image, image2], strict=True):
        assert_same(one, family.detect(loaded, [alone], CLASSES, threshold=0.0)[0], atol=1e-5)
    assert not torch.allclose(batch[0].boxes, batch[1].boxes)


def test_labels_index_the_texts_even_when_names_repeat(loaded: Loaded, image: Image.Image) -> None:
    texts = ["cow", "raccoon", "cow"]
    found = OmDetTurbo().detect(loaded, [image], texts, threshold=0.0)[0]
    assert set(found.labels.tolist()) == {0, 1, 2}
    first, third = (found.labels == 0), (found.labels == 2)
    assert torch.equal(found.scores[first], found.scores[third])
    assert torch.equal(found.boxes[first], found.boxes[third])


def prompt_truncated(loaded: Loaded, image: Image.Image, texts: list[str]) -> bool:
    """Whether the processor cuts the default task prompt of ``texts`` (decoded back, it misses text)."""
    inputs = loaded.processor(images=image, text=texts, return_tensors="pt")
    ids = inputs["tasks_input_ids"][0][inputs["tasks_attention_mask"][0].bool()]
    decoded = loaded.processor.tokenizer.decode(ids, skip_special_tokens=True)
    return "".join(decoded.split()) != "".join(f"Detect {', '.join(texts)}.".lower().split())


def test_fits_where_the_processor_would_not_truncate(loaded: Loaded, image: Image.Image) -> None:
    family = OmDetTurbo()
    texts = CLASSES + LONG
    answers = [family.fits(loaded, texts[:k]) for k in range(1, len(texts) + 1)]
    assert answers == [not prompt_truncated(loaded, image, texts[:k]) for k in range(1, len(texts) + 1)]
    assert answers[0] and not answers[-1]  # the limit falls inside the list
    assert not family.fits(loaded, ["x" * 76])  # one class text of 78 tokens
    with pytest.raises(ConfigError):
        family.chunks(loaded, ["cow", "x" * 76])


def test_a_long_list_is_chunked_and_each_class_found_as_in_its_chunk_alone(loaded: Loaded,
                                                                         image: Image.Image) -> None:
    family = OmDetTurbo()
    texts = CLASSES + LONG
    chunks = family.chunks(loaded, texts)
    assert len(chunks) >= 2 and [t for _, chunk in chunks for t in chunk] == texts
    found = family.detect(loaded, [image], texts, threshold=0.0)[0]
    assert set(found.labels.tolist()) == set(range(len(texts)))
    for offset, chunk in chunks:
        alone = family.detect_chunk(loaded, [image], chunk, threshold=0.0)[0]
        mine = (found.labels >= offset) & (found.labels < offset + len(chunk))
        mine_alone = ImageDetections(found.boxes[mine], found.scores[mine], found.labels[mine] - offset)
        assert_same(mine_alone, alone)
