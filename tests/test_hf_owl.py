"""The OWL-ViT and OWLv2 adapter families (harness.workloads.hf.families.owl) against transformers used directly, on
tiny randomly initialised models and a real, non-square demo image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from hf_tiny_owl import save_tiny_owlv2, save_tiny_owlvit
from PIL import Image

from harness.workloads.hf.families.base import Family, ImageDetections, Loaded
from harness.workloads.hf.families.owl import Owlv2, OwlViT
from scaledet.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread

ROOT = Path(__file__).resolve().parents[1]
RACCOON = ROOT / "harness/data/demo/odinw/Raccoon/Raccoon.v2-raw.coco/test/raccoon-105.jpg"  # 320 wide, 427 high
MUSHROOMS = ROOT / "harness/data/demo/odinw/NorthAmericaMushrooms/North American Mushrooms.v1-416x416.coco/valid"
TEXTS = ["raccoon", "chanterelle", "cow"]
WORDS = [*TEXTS, "fish", "penguin", "a", "photo", "of"]
PATCHES = 16  # the tiny models' 4 x 4 grid: one box per patch
FAMILIES = {"owlvit": (OwlViT(), save_tiny_owlvit), "owlv2": (Owlv2(), save_tiny_owlv2)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, tuple[Family, Loaded, Path]]:
    """Family name -> (family, its tiny model loaded on the CPU, the model's folder)."""
    root = tmp_path_factory.mktemp("owl")
    out = {}
    for name, (family, save) in FAMILIES.items():
        folder = save(root / name, WORDS)
        out[name] = (family, family.load(folder, torch.device("cpu")), folder)
    return out


@pytest.fixture(scope="module")
def raccoon() -> Image.Image:
    image = Image.open(RACCOON).convert("RGB")
    assert image.size == (320, 427)
    return image


@pytest.fixture(scope="module")
def mushroom() -> Image.Image:
    return Image.open(min(MUSHROOMS.glob("chanterelle*.jpg"))).convert("RGB")


@pytest.fixture(scope="module")
def direct(tiny, raccoon) -> dict[str, tuple[dict, object]]:
    """Family name -> transformers used directly on the raccoon image with ``TEXTS``."""
    return {name: transformers_direct(folder, name, raccoon, TEXTS) for name, (_, _, folder) in tiny.items()}


def transformers_direct(folder: Path, name: str, image: Image.Image, texts: list[str]):
    """Detections as a user of transformers gets them (the models' documented example), and the raw outputs."""
    prefix = "Owlv2" if name == "owlv2" else "OwlViT"
    model = getattr(transformers, f"{prefix}ForObjectDetection").from_pretrained(folder, local_files_only=True)
    processor = getattr(transformers, f"{prefix}Processor").from_pretrained(folder, local_files_only=True)
    inputs = processor(text=[texts], images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = model.eval()(**inputs)
    target_sizes = torch.tensor([(image.height, image.width)])
    results = processor.post_process_grounded_object_detection(outputs, threshold=0.0, target_sizes=target_sizes)
    return results[0], outputs


def hand_box(cxcywh: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    cx, cy, w, h = cxcywh.tolist()
    return torch.tensor([(cx - w / 2) * scale_x, (cy - h / 2) * scale_y, (cx + w / 2) * scale_x,
                         (cy + h / 2) * scale_y])


@pytest.mark.parametrize("name", FAMILIES)
def test_detections_equal_transformers_used_directly(tiny, direct, raccoon, name):
    family, loaded, _ = tiny[name]
    (found,) = family.detect(loaded, [raccoon], TEXTS, threshold=0.0)
    expected, _ = direct[name]
    assert len(found.scores) == PATCHES  # threshold 0: every patch's best query
    assert torch.equal(found.boxes, expected["boxes"])
    assert torch.equal(found.scores, expected["scores"])
    assert torch.equal(found.labels, expected["labels"])
    assert found.boxes.dtype == found.scores.dtype == torch.float32
    assert found.labels.dtype == torch.int64


@pytest.mark.parametrize("name", FAMILIES)
def test_boxes_are_in_the_images_own_pixels(tiny, direct, raccoon, name):
    """OWLv2 boxes are normalised to the bottom/right-padded square (side max(h, w) = 427), OWL-ViT boxes to the
    stretched image (x by the width 320, y by the height 427)."""
    family, loaded, _ = tiny[name]
    (found,) = family.detect(loaded, [raccoon], TEXTS, threshold=0.0)
    _, outputs = direct[name]
    raw = outputs.pred_boxes[0]
    scale = (427, 427) if name == "owlv2" else (320, 427)
    other = (320, 427) if name == "owlv2" else (427, 427)
    for patch in (5, 10, 15):
        assert torch.allclose(found.boxes[patch], hand_box(raw[patch], *scale), atol=1e-4)
        assert not torch.allclose(found.boxes[patch], hand_box(raw[patch], *other), atol=1.0)


@pytest.mark.parametrize("name", FAMILIES)
def test_owlv2_target_size_is_the_padded_square(tiny, raccoon, name):
    family, _, _ = tiny[name]
    assert family.target_size(raccoon) == ((427, 427) if name == "owlv2" else (427, 320))


@pytest.mark.parametrize("name", FAMILIES)
def test_a_batch_gives_each_image_its_own_detections(tiny, raccoon, mushroom, name):
    family, loaded, _ = tiny[name]
    assert mushroom.size != raccoon.size
    batch = family.detect(loaded, [raccoon, mushroom], TEXTS, threshold=0.0)
    alone = [family.detect(loaded, [image], TEXTS, threshold=0.0)[0] for image in (raccoon, mushroom)]
    for got, want in zip(batch, alone, strict=True):
        assert torch.allclose(got.boxes, want.boxes, atol=1e-4)
        assert torch.allclose(got.scores, want.scores, atol=1e-6)
        assert torch.equal(got.labels, want.labels)
    assert not torch.allclose(batch[0].scores, batch[1].scores)  # the images really differ


@pytest.mark.parametrize("name", FAMILIES)
def test_labels_index_the_texts_given(tiny, raccoon, name):
    family, loaded, _ = tiny[name]
    texts = ["fish", "raccoon", "penguin", "cow", "chanterelle"]
    (found,) = family.detect(loaded, [raccoon], texts, threshold=0.0)
    assert found.labels.dtype == torch.int64
    assert ((found.labels >= 0) & (found.labels < len(texts))).all()
    # the same queries in reverse order: each detection's label follows its text
    (reverse,) = family.detect(loaded, [raccoon], texts[::-1], threshold=0.0)
    assert torch.equal(reverse.labels, len(texts) - 1 - found.labels)
    assert torch.allclose(reverse.scores, found.scores, atol=1e-6)
    assert torch.equal(reverse.boxes, found.boxes)
    # a query's own score: only "cow" asked, every patch scores it
    (cow,) = family.detect(loaded, [raccoon], ["cow"], threshold=0.0)
    assert torch.equal(cow.labels, torch.zeros(PATCHES, dtype=torch.int64))
    won = found.labels == texts.index("cow")
    assert won.any()
    assert torch.allclose(cow.scores[won], found.scores[won], atol=1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_threshold_keeps_scores_above_it(tiny, raccoon, name):
    family, loaded, _ = tiny[name]
    (everything,) = family.detect(loaded, [raccoon], TEXTS, threshold=0.0)
    threshold = everything.scores.median().item()
    (kept,) = family.detect(loaded, [raccoon], TEXTS, threshold=threshold)
    above = everything.scores > threshold
    assert 0 < len(kept.scores) == int(above.sum()) < PATCHES
    assert torch.equal(kept.scores, everything.scores[above])
    assert torch.equal(kept.labels, everything.labels[above])


@pytest.mark.parametrize("name", FAMILIES)
def test_a_label_list_is_one_chunk_and_no_labels_no_detections(tiny, raccoon, name):
    family, loaded, _ = tiny[name]
    many = WORDS * 5  # 40 queries: no limit on their number
    assert family.fits(loaded, many)
    assert family.chunks(loaded, many) == [(0, many)]
    assert family.chunks(loaded, []) == []
    (found,) = family.detect(loaded, [raccoon], many, threshold=0.0)
    assert len(found.scores) == PATCHES and int(found.labels.max()) < len(many)
    (none,) = family.detect(loaded, [raccoon], [], threshold=0.0)
    assert len(none.scores) == 0 and none.labels.dtype == torch.int64


@pytest.mark.parametrize("name", FAMILIES)
def test_a_text_over_the_16_token_limit_is_a_config_error(tiny, raccoon, name):
    """16 tokens with the start and end tokens fit; one more is refused (never truncated), naming text and limit."""
    family, loaded, _ = tiny[name]
    assert family.max_tokens(loaded) == 16
    longest = " ".join(["cow"] * 14)
    too_long = " ".join(["cow"] * 15)
    assert family.token_count(loaded, longest) == 16 and family.token_count(loaded, too_long) == 17
    assert family.fits(loaded, ["raccoon", longest])
    assert not family.fits(loaded, ["raccoon", too_long])
    (found,) = family.detect(loaded, [raccoon], ["raccoon", longest], threshold=0.0)
    assert set(found.labels.tolist()) <= {0, 1} and len(found.scores) == PATCHES
    for call in (lambda: family.detect(loaded, [raccoon], ["raccoon", too_long]),
                 lambda: family.chunks(loaded, ["raccoon", too_long]),
                 lambda: family.detect_chunk(loaded, [raccoon], [too_long, "cow"], 0.0)):
        with pytest.raises(ConfigError, match=rf"{too_long!r} has 17 tokens.*at most 16"):
            call()


def test_tiny_models_are_saved_with_their_model_type_and_rebuild_identically(tiny, tmp_path):
    import json

    for name, (_, loaded, folder) in tiny.items():
        assert json.loads((folder / "config.json").read_text())["model_type"] == name
        assert loaded.model.config.text_config.max_position_embeddings == 16
    again = save_tiny_owlv2(tmp_path / "again", WORDS)
    rebuilt = transformers.Owlv2ForObjectDetection.from_pretrained(again, local_files_only=True)
    first = tiny["owlv2"][1].model.state_dict()
    assert all(torch.equal(value, first[key]) for key, value in rebuilt.state_dict().items())


def test_image_detections_are_on_the_cpu_as_float32_and_int64(tiny, raccoon):
    family, loaded, _ = tiny["owlvit"]
    (found,) = family.detect_chunk(loaded, [raccoon], TEXTS, 0.0)
    assert isinstance(found, ImageDetections)
    assert found.boxes.shape == (PATCHES, 4) and found.boxes.device.type == "cpu"
    assert (found.boxes.dtype, found.scores.dtype, found.labels.dtype) == (torch.float32, torch.float32, torch.int64)
