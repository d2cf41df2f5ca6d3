"""COCO reading (real ODinW images converted from YOLO), label-space mapping, decoding errors, transforms."""

from __future__ import annotations

import json

import pytest
import torch
from coco_fixtures import odinw_coco

from scaledet.config import DataConfig
from scaledet.data import DetectionDataset, category_mapping, load_coco, read_image
from scaledet.errors import ConfigError, DataError
from scaledet.labels import LabelSpace
from scaledet.transforms import LargeScaleJitter, ResizeShortestEdge, hflip, training_transform


def _space(names, dataset):
    return LabelSpace.from_embeddings(names, torch.randn(len(names), 8), dataset)


def test_yolo_fixture_to_coco_drops_empty_root_and_keeps_sparse_ids(tmp_path):
    path = odinw_coco(tmp_path, "NorthAmericaMushrooms", ["train"], id_step=5)
    raw = json.loads(path.read_text())
    assert [c["id"] for c in raw["categories"]] == [0, 5, 10]
    ds = load_coco(path, name="mushrooms")
    assert len(ds) == 41 and ds.category_ids == (5, 10) and ds.category_names == ("CoW", "chanterelle")
    assert sum(len(a) for a in ds.annotations.values()) == len(raw["annotations"])
    # the first label line, hand-converted: class 1 cx .4471 cy .5036 w .7776 h .9255 on the image size
    first = ds.images[0]
    box = ds.annotations[first["id"]][0]["bbox"]
    assert box[2] == pytest.approx(0.7776442307692307 * first["width"])


def test_mapping_onto_slices_of_concatenated_space(tmp_path):
    mush = load_coco(odinw_coco(tmp_path, "NorthAmericaMushrooms", ["valid"], id_step=3), name="mushrooms")
    pack = load_coco(odinw_coco(tmp_path, "Packages", ["valid"]), name="packages")
    space = LabelSpace.concat([_space(["package"], "packages"), _space(["CoW", "chanterelle"], "mushrooms")])
    assert category_mapping(mush, space) == {3: 1, 6: 2}
    assert category_mapping(pack, space) == {1: 0}
    data = DetectionDataset([pack, mush], [category_mapping(pack, space), category_mapping(mush, space)], None)
    assert len(data) == len(pack) + len(mush) and data.locate(len(pack)) == (1, 0)
    image, target = data[len(pack)]
    assert image.shape[0] == 3 and 0 <= image.min() and image.max() <= 1
    assert set(target["labels"].tolist()) <= {1, 2}
    with pytest.raises(ConfigError, match="2 categories but its label space slice has 1"):
        category_mapping(mush, LabelSpace.concat([_space(["x"], "mushrooms")]))


def test_empty_label_file_is_a_negative_image(tmp_path):
    path = odinw_coco(tmp_path, "Aquarium", ["train"])
    ds = load_coco(path)
    empty = [img for img in ds.images if not ds.annotations[img["id"]]]
    labels_dir = odinw_coco.__globals__["ODINW"] / "Aquarium" / "train" / "labels"
    n_empty_files = sum(1 for p in labels_dir.iterdir() if not p.read_text().strip())
    assert len(empty) == n_empty_files


def test_undecodable_image_names_the_path(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        read_image(bad)
    with pytest.raises(DataError, match="field 'annotations'"):
        (tmp_path / "x.json").write_text('{"images": [], "categories": []}')
        load_coco(tmp_path / "x.json")


def test_hflip_hand_computed():
    image = torch.arange(6.0).reshape(1, 1, 6).expand(3, 2, 6)
    flipped, target = hflip(image, {"boxes": torch.tensor([[1.0, 0, 3, 2]]), "labels": torch.tensor([0])})
    assert flipped[0, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert target["boxes"].tolist() == [[3.0, 0, 5, 2]]


def test_large_scale_jitter_plain_resize_and_crop():
    image = torch.rand(3, 50, 100)
    target = {"boxes": torch.tensor([[10.0, 10, 30, 20], [90, 0, 100, 50]]), "labels": torch.tensor([0, 1])}
    out, t = LargeScaleJitter(200, (1.0, 1.0), hflip_prob=0.0)(image, target, torch.Generator().manual_seed(0))
    assert out.shape == (3, 200, 200) and out[:, 100:].abs().sum() == 0  # 100 x 200 image padded below
    assert t["boxes"].tolist() == [[20.0, 20, 60, 40], [180, 0, 200, 100]]
    # scale 4: 200 x 400 resized image, a 200 x 200 window; boxes shifted, clipped, small ones dropped
    out, t = LargeScaleJitter(200, (4.0, 4.0), hflip_prob=0.0)(image, target, torch.Generator().manual_seed(0))
    assert out.shape == (3, 200, 200) and out[:, 199].abs().sum() > 0
    assert (t["boxes"] >= 0).all() and (t["boxes"] <= 200).all() and len(t["boxes"]) == len(t["labels"])


def test_standard_augmentation_resizes_the_shorter_side_capped_by_the_longer():
    image = torch.rand(3, 50, 100)
    target = {"boxes": torch.tensor([[10.0, 10, 30, 20]]), "labels": torch.tensor([0])}
    # shorter side 50 -> 200: scale 4, the longer side 400 under the cap
    out, t = ResizeShortestEdge((200,), 1000, hflip_prob=0.0)(image, target, torch.Generator().manual_seed(0))
    assert out.shape == (3, 200, 400) and t["boxes"].tolist() == [[40.0, 40, 120, 80]]
    # the cap 300 on the longer side wins: scale 3 -> 150 x 300, no crop, no padding
    out, t = ResizeShortestEdge((200,), 300, hflip_prob=0.0)(image, target, torch.Generator().manual_seed(0))
    assert out.shape == (3, 150, 300) and t["boxes"].tolist() == [[30.0, 30, 90, 60]]
    # the flip mirrors the boxes; sizes are drawn from the list, every one of them in time
    out, t = ResizeShortestEdge((100,), 1000, hflip_prob=1.0)(image, target, torch.Generator().manual_seed(0))
    assert t["boxes"].tolist() == [[140.0, 20, 180, 40]]
    shapes = {ResizeShortestEdge((60, 80), 1000)(image, target, torch.Generator().manual_seed(s))[0].shape[1]
              for s in range(20)}
    assert shapes == {60, 80}


def test_the_augmentation_is_chosen_by_the_data_config():
    assert isinstance(training_transform(DataConfig()), LargeScaleJitter)  # the paper's
    standard = training_transform(DataConfig(augmentation="standard", train_min_sizes=(600,), train_max_size=900))
    assert isinstance(standard, ResizeShortestEdge) and (standard.min_sizes, standard.max_size) == ((600,), 900)
    with pytest.raises(ConfigError, match="data.augmentation is 'mosaic'; expected one of lsj, standard"):
        training_transform(DataConfig(augmentation="mosaic"))


def test_same_seed_same_augmentation():
    image = torch.rand(3, 64, 80)
    target = {"boxes": torch.tensor([[5.0, 5, 40, 40]]), "labels": torch.tensor([0])}
    lsj = LargeScaleJitter(64, (0.1, 2.0), 0.5)
    a = lsj(image, target, torch.Generator().manual_seed(7))
    b = lsj(image, target, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"])
