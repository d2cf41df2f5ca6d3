"""The inference pipeline (scaledet.inference) on the demo's real images and its pretrained checkpoint: batches of
one padded size, loader workers and batching equal one image at a time, 2 gloo ranks score what 1 rank scores."""

from __future__ import annotations

import itertools
import json
import math
import threading
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from engine_fixtures import free_port, rank_environment

from harness.catalog import datasets as registry
from scaledet.config import preset, with_overrides
from scaledet.data import category_mapping, read_image, subset
from scaledet.detector_parts import InputTransform
from scaledet.engine import load_detector
from scaledet.errors import ConfigError, DataError
from scaledet.evaluation import coco_eval
from scaledet.inference import (
    AUTO_SETTINGS,
    InferenceSettings,
    Prefetched,
    evaluate,
    own_vocabulary,
    padded_batch,
    predict,
    presized,
    resized_size,
    shard,
    size_batches,
    to_coco,
)
from scaledet.protocol import scoring_settings

pytestmark = pytest.mark.usefixtures("one_thread")


def _raccoon_test():
    return registry.load_split(registry.get_dataset("Raccoon", "demo"), "test")  # 40 images of mixed sizes


def test_test_size_is_the_size_the_detectors_transform_gives(demo):
    model, raccoon = load_detector(demo.checkpoint, "cpu").eval(), _raccoon_test()
    transform = model.transform
    for record in raccoon.images[:12]:
        resized = transform.resize(read_image(raccoon.image_root / record["file_name"]))[0]
        assert resized_size(record["height"], record["width"], float(transform.min_size[-1]),
                         float(transform.max_size)) == tuple(resized.shape[-2:]), record["file_name"]


def test_batches_hold_one_padded_size_and_cover_every_image_once(demo):
    model, raccoon = load_detector(demo.checkpoint, "cpu"), _raccoon_test()
    batches = size_batches(raccoon, model, 4)
    assert sorted(i for b in batches for i in b) == list(range(len(raccoon)))
    assert all(1 <= len(b) <= 4 for b in batches)
    divisible, sizes = model.transform.size_divisible, []
    for batch in batches:
        padded = {tuple(math.ceil(s / divisible) * divisible for s in resized_size(
            raccoon.images[i]["height"], raccoon.images[i]["width"], float(model.transform.min_size[-1]),
            float(model.transform.max_size))) for i in batch}
        assert len(padded) == 1, batch
        sizes.append(padded.pop())
    assert len(set(sizes)) > 1  # Raccoon's sizes differ: a plain split would mix them
    assert len(batches) > math.ceil(len(raccoon) / 4)
    assert shard(7, 1, 3) == [1, 4]


def _by_image(rows: list[dict]) -> dict[int, list[tuple]]:
    found: dict[int, list[tuple]] = {}
    for row in rows:
        found.setdefault(row["image_id"], []).append((row["category_id"], row["score"], *row["bbox"]))
    return {k: sorted(v, key=lambda r: -r[1]) for k, v in found.items()}


def test_workers_and_batches_give_what_one_image_at_a_time_gives(demo):
    """Batch 4 with 2 loader workers against batch 1 decoded in the main process: the same detections per image
    (float noise of batched convolutions aside) and the same metrics."""
    model, raccoon = load_detector(demo.checkpoint, "cpu"), _raccoon_test()
    settings = scoring_settings("coco")
    alone = predict(model, raccoon, settings=settings, inference=InferenceSettings(batch_size=1, workers=0))
    batched = predict(model, raccoon, settings=settings, inference=InferenceSettings(batch_size=4, workers=2))
    assert [r["image_id"] for r in alone] == sorted((r["image_id"] for r in alone),
                                                    key=[img["id"] for img in raccoon.images].index)
    one, four = _by_image(alone), _by_image(batched)
    assert one.keys() == four.keys() and len(alone) == len(batched) > 0
    for image_id, rows in one.items():
        top = [r for r in rows if r[1] > 0.05]  # confident detections: same class, score and box
        assert [r[0] for r in top] == [r[0] for r in four[image_id][: len(top)]], image_id
        for a, b in zip(top, four[image_id], strict=False):
            assert b[1:] == pytest.approx(a[1:], abs=1e-3)
    assert coco_eval(raccoon.source, batched)["AP"] == pytest.approx(coco_eval(raccoon.source, alone)["AP"], abs=1e-4)


def test_the_pipeline_predicts_what_the_model_predicts_from_each_decoded_image(demo):
    """Batch 1 without workers: the loader's normalised, resized, zero-padded batch taken uncopied and the boxes
    scaled back outside the model give, to the last bit, what the model gives when handed each decoded image."""
    model, raccoon = load_detector(demo.checkpoint, "cpu").eval(), _raccoon_test()
    raccoon = subset(raccoon, [img["id"] for img in raccoon.images[:12]])
    assert len({(img["height"], img["width"]) for img in raccoon.images}) > 1
    settings = scoring_settings("coco")
    rows = predict(model, raccoon, settings=settings, inference=InferenceSettings(batch_size=1, workers=0))
    space = own_vocabulary(raccoon, model.label_space)
    to_category = {v: k for k, v in category_mapping(raccoon, space).items()}
    expected = []
    with torch.inference_mode(), model.scoring(space, settings.detections_per_image, settings.score_thresh):
        for record in raccoon.images:
            (out,) = model([read_image(raccoon.image_root / record["file_name"])])
            expected += to_coco(int(record["id"]), out, to_category)
    assert len(rows) > len(raccoon) and rows == expected


def test_a_padded_batch_is_taken_uncopied_and_anything_else_batched_as_torchvision_does():
    transform = InputTransform(320, 533, [0.5] * 3, [0.2] * 3).eval()
    images = [torch.rand(3, 300, 410), torch.rand(3, 320, 427)]
    batch = padded_batch([(7, images[0], (600, 820)), (9, images[1], (320, 427))], size_divisible=32)
    assert batch.indices == [7, 9] and batch.sizes == [(300, 410), (320, 427)] and batch.originals[0] == (600, 820)
    torchvision_batch = transform.batch_images(images, 32)  # not presized: torchvision's own
    assert torchvision_batch.shape == (2, 3, 320, 448) and torch.equal(batch.images, torchvision_batch)
    with presized(_Holder(transform)), torch.inference_mode():  # as predict runs: views there keep no base
        views = batch.views(torch.device("cpu"))
        assert transform.batch_images(views, 32).data_ptr() == batch.images.data_ptr()
        copies = transform.batch_images([v.clone() for v in views], 32)
        assert copies.data_ptr() != batch.images.data_ptr() and torch.equal(copies, torchvision_batch)
        wider = torch.zeros(2, 3, 352, 480)  # padded beyond what batch_images pads to: copied, not taken
        assert transform.batch_images([wider[i, :, :h, :w] for i, (h, w) in enumerate(batch.sizes)],
                                      32).shape == (2, 3, 320, 448)
        detections = [{"boxes": torch.tensor([[10.0, 20.0, 30.0, 40.0]])}]
        assert transform.postprocess(detections, [(300, 410)], [(300, 410)]) is detections
    assert not transform.presized
    scaled = transform.postprocess([{"boxes": torch.tensor([[10.0, 20.0, 30.0, 40.0]])}], [(300, 410)], [(600, 820)])
    assert scaled[0]["boxes"].tolist() == [[20.0, 40.0, 60.0, 80.0]]


def test_prefetched_keeps_the_order_raises_the_loaders_error_and_stops_with_its_consumer():
    assert list(Prefetched(range(7), depth=2)) == list(range(7))

    def failing():
        yield 1
        raise DataError("image 2 is not a JPEG")

    items = iter(Prefetched(failing()))
    assert next(items) == 1
    with pytest.raises(DataError, match="image 2 is not a JPEG"):
        next(items)
    consumer = iter(Prefetched(itertools.count(), depth=1))
    assert [next(consumer) for _ in range(3)] == [0, 1, 2]
    assert any(t.name == "prefetch" for t in threading.enumerate())
    consumer.close()  # the consumer stops early: the thread ends instead of filling forever
    assert not any(t.name == "prefetch" for t in threading.enumerate())


class _Freed:
    """An item that records, in ``threads``, the thread it is freed in."""

    def __init__(self, threads: list[str]) -> None:
        self.threads = threads

    def __del__(self) -> None:
        self.threads.append(threading.current_thread().name)


def test_prefetched_frees_every_item_in_its_thread_even_the_last_ones():
    threads: list[str] = []
    seen = 0
    for item in Prefetched(_Freed(threads) for _ in range(9)):
        seen += 1
        del item  # as predict lets go of each batch
    assert seen == 9
    assert threads == ["prefetch"] * 9  # the consumer freed none: a worker's batch is unmapped beside the forward


class _Holder:
    def __init__(self, transform: InputTransform) -> None:
        self.transform = transform


def _rank(rank: int, world: int, port: int, checkpoint: str, out: str) -> None:
    rank_environment(rank, world, port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        metrics = evaluate(load_detector(checkpoint, "cpu"), _raccoon_test(),
                           inference=InferenceSettings(batch_size=4, workers=1))
        Path(out, f"rank{rank}.json").write_text(json.dumps(metrics))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_score_what_one_process_scores(demo, tmp_path: Path):
    """Each rank predicts its share of the batches; rank 0 gathers the detections by image id and scores once."""
    mp.spawn(_rank, args=(2, free_port(), str(demo.checkpoint), str(tmp_path)), nprocs=2, join=True)
    two = json.loads((tmp_path / "rank0.json").read_text())
    assert json.loads((tmp_path / "rank1.json").read_text()) is None  # rank 1 predicted, rank 0 scored
    one = evaluate(load_detector(demo.checkpoint, "cpu"), _raccoon_test(),
                   inference=InferenceSettings(batch_size=4, workers=0))
    assert two["AP"] > 0.05
    assert {k: v for k, v in two.items() if k != "per_class"} == pytest.approx(
        {k: v for k, v in one.items() if k != "per_class"}, abs=1e-9)
    assert two["per_class"] == pytest.approx(one["per_class"], abs=1e-9)


def test_settings_name_the_config_key_they_come_from():
    for kwargs, key in (({"batch_size": 0}, "data.test_batch_size"), ({"workers": -1}, "data.test_workers"),
                        ({"amp": "fp8"}, "data.test_amp")):
        with pytest.raises(ConfigError, match=key):
            InferenceSettings(**kwargs)


def test_auto_settings_resolve_by_device_and_the_config_reads_auto_or_a_count():
    auto = InferenceSettings()
    assert (auto.on("cpu").batch_size, auto.on("cpu").workers) == AUTO_SETTINGS["cpu"] == (1, 0)
    assert (auto.on("cuda:1").batch_size, auto.on("cuda:1").workers) == AUTO_SETTINGS["cuda"]
    assert InferenceSettings(batch_size=8, workers="auto").on("cpu") == InferenceSettings(8, 0)
    cfg = with_overrides(preset("scaledet"), ["data.test_batch_size=2", "data.test_workers=auto"])
    assert InferenceSettings.of(cfg).on("cuda") == InferenceSettings(2, AUTO_SETTINGS["cuda"][1])
    with pytest.raises(ConfigError, match=r"data.test_workers is 'two'; expected auto or a whole number >= 0"):
        with_overrides(preset("scaledet"), ["data.test_workers=two"])
