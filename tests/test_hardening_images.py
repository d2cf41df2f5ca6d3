"""Hardening of image reading (issue 8, part 2): ``read_image`` / ``load_image`` and the importers' image
sizes on truncated, transparent, 16-bit, grayscale, CMYK, EXIF-rotated, empty and huge files (all made
here with PIL, small where possible)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from test_import_formats import PACKAGES, THREE_SPLITS, yolo_export

from harness.acquire.importers import import_dataset
from harness.acquire.importers.writer import image_size
from harness.catalog.datasets import load_split
from scaledet import data as scaledet_data
from scaledet.data import DetectionDataset, load_coco, load_image, read_image
from scaledet.errors import DataError
from scaledet.images import decode_problem

EXIF_ORIENTATION = 0x0112


def pixels(tensor: torch.Tensor) -> list:
    """[H][W][3] in 0..255, rounded."""
    return (tensor.permute(1, 2, 0) * 255).round().int().tolist()


def test_truncated_jpeg_is_a_data_error_naming_the_path(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.effect_noise((64, 48), 60).convert("RGB").save(path, quality=95)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=rf"cannot decode image {path}: image file is truncated"):
        read_image(path)


def test_zero_byte_file_is_a_data_error_naming_it(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=rf"image file {path} is empty \(0 bytes\)"):
        read_image(path)
    with pytest.raises(DataError, match=rf"cannot read image size of {path}"):
        image_size(path)


def test_missing_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=rf"image file {tmp_path / 'gone.png'} not found"):
        read_image(tmp_path / "gone.png")


def test_png_with_alpha_is_composited_over_white(tmp_path):
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    rgba.save(tmp_path / "rgba.png")
    assert pixels(read_image(tmp_path / "rgba.png")) == [[[255, 255, 255], [0, 0, 255], [127, 127, 127]]]
    la = Image.new("LA", (2, 1))
    la.putdata([(0, 0), (10, 255)])
    la.save(tmp_path / "la.png")
    assert pixels(read_image(tmp_path / "la.png")) == [[[255, 255, 255], [10, 10, 10]]]
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 200, 0, 0])
    palette.putdata([0, 1])
    palette.save(tmp_path / "p.png", transparency=0)
    assert pixels(read_image(tmp_path / "p.png")) == [[[255, 255, 255], [200, 0, 0]]]


def test_16_bit_png_is_scaled_to_8_bit_not_clipped_to_white(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")  # 16-bit on disk, as PIL reads it
    image = read_image(tmp_path / "deep.png")
    assert image.shape == (3, 1, 4)
    assert pixels(image)[0] == [[0] * 3, [1] * 3, [128] * 3, [255] * 3]


def test_grayscale_becomes_three_equal_channels(tmp_path):
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.uint8), mode="L").save(tmp_path / "gray.png")
    assert pixels(read_image(tmp_path / "gray.png")) == [[[0] * 3, [100] * 3, [255] * 3]]


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    image = read_image(tmp_path / "cmyk.jpg")
    assert image.shape == (3, 16, 16)
    assert torch.allclose(image.mean(dim=(1, 2)), torch.tensor([1.0, 0.0, 0.0]), atol=0.03)


def upright_scene() -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A 48x24 black image with a red box at x 8..24, y 8..16 (8-pixel aligned: JPEG keeps it clean)."""
    image = Image.new("RGB", (48, 24))
    box = (8, 8, 24, 16)
    ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(255, 0, 0))
    return image, box


def save_rotated(upright: Image.Image, path: Path) -> None:
    """Store the pixels turned by 90 degrees with EXIF orientation 6, so a viewer shows ``upright``."""
    raw = upright.transpose(Image.Transpose.ROTATE_90)  # exif_transpose applies ROTATE_270 for 6
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    raw.save(path, quality=100, exif=exif)


def assert_red_inside_only(image: torch.Tensor, box: tuple[float, float, float, float]) -> None:
    x0, y0, x1, y1 = (round(v) for v in box)
    red = (image[0] > 0.6) & (image[1] < 0.3) & (image[2] < 0.3)
    inside = torch.zeros_like(red)
    inside[y0:y1, x0:x1] = True
    assert red[inside].float().mean() > 0.9
    assert red[~inside].float().mean() < 0.02


def test_exif_rotated_photo_is_read_upright_and_the_importer_records_the_upright_size(tmp_path):
    upright, box = upright_scene()
    path = tmp_path / "rotated.jpg"
    save_rotated(upright, path)
    assert Image.open(path).size == (24, 48)  # as stored
    assert image_size(path) == (48, 24)  # as the model sees it
    image = read_image(path)
    assert image.shape == (3, 24, 48)
    assert_red_inside_only(image, box)


def test_a_box_drawn_on_the_upright_object_is_where_the_model_tensor_has_it(tmp_path):
    upright, (x0, y0, x1, y1) = upright_scene()
    cx, cy, w, h = (x0 + x1) / 2 / 48, (y0 + y1) / 2 / 24, (x1 - x0) / 48, (y1 - y0) / 24
    source = yolo_export(tmp_path / "src", ["package"],
                         {**THREE_SPLITS, "train": {"a": f"0 {cx} {cy} {w} {h}\n"}})
    save_rotated(upright, source / "train" / "images" / "a.jpg")
    import_dataset(PACKAGES, source, root=tmp_path / "root")
    dataset = load_split(PACKAGES, "train", tmp_path / "root")
    assert (dataset.images[0]["width"], dataset.images[0]["height"]) == (48, 24)
    image, target = DetectionDataset([dataset], [{1: 0}], None)[0]
    assert torch.allclose(target["boxes"], torch.tensor([[x0, y0, x1, y1]], dtype=torch.float32))
    assert_red_inside_only(image, target["boxes"][0].tolist())


def test_huge_image_is_refused_over_the_pixel_limit_or_reduced_while_decoding(tmp_path):
    width, height = 12000, 9000  # 108 M pixels: 1.3 GB as a float tensor
    assert width * height > scaledet_data.MAX_PIXELS
    huge = Image.new("L", (width, height), 0)
    box = (1200, 900, 3600, 2700)
    ImageDraw.Draw(huge).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    huge.save(tmp_path / "huge.jpg", quality=90)
    del huge
    with pytest.raises(DataError, match=rf"image {tmp_path / 'huge.jpg'} is 12000x9000 = 108000000 pixels, "
                                        r"over the limit of 100000000"):
        read_image(tmp_path / "huge.jpg")
    image, scale = load_image(tmp_path / "huge.jpg", max_side=1200)
    assert image.shape == (3, 900, 1200) and scale == (0.1, 0.1)
    assert decode_problem(tmp_path / "huge.jpg") is None  # the pre-job check decodes it as the loader does
    data = (tmp_path / "huge.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert "image file is truncated" in (decode_problem(tmp_path / "cut.jpg") or "")
    annotations = {"images": [{"id": 1, "file_name": "huge.jpg", "width": width, "height": height}],
                   "categories": [{"id": 1, "name": "a"}],
                   "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]}]}
    (tmp_path / "huge.json").write_text(json.dumps(annotations))
    image, target = DetectionDataset([load_coco(tmp_path / "huge.json")], [{1: 0}], None, max_side=1200)[0]
    assert image.shape == (3, 900, 1200)
    assert torch.allclose(target["boxes"], torch.tensor([[120.0, 90.0, 360.0, 270.0]]))
    bright = image[0] > 0.5
    assert bright[90:270, 120:360].float().mean() > 0.97 and bright.float().sum() < 1.02 * 180 * 240


def test_max_side_reduces_non_jpeg_images_and_scales_each_axis(tmp_path):
    Image.new("RGB", (100, 30), (0, 200, 0)).save(tmp_path / "wide.png")
    image, scale = load_image(tmp_path / "wide.png", max_side=50)
    assert image.shape == (3, 15, 50) and scale == (0.5, 0.5)
    assert load_image(tmp_path / "wide.png", max_side=500)[1] == (1.0, 1.0)


def test_decompression_bomb_is_a_data_error_naming_the_file(tmp_path, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1200 pixels > 2 x 100: PIL raises
    with pytest.raises(DataError, match=rf"cannot decode image {tmp_path / 'bomb.png'}: Image size"):
        read_image(tmp_path / "bomb.png")
    with pytest.raises(DataError, match=rf"cannot read image size of {tmp_path / 'bomb.png'}"):
        image_size(tmp_path / "bomb.png")
