"""GLIP's own few-shot splits: a few-shot cell whose data carries GLIP's ``fewshot_train_shot{k}_seed{s}.json``
trains on exactly that file (and selects its model on the matching val file); without the file it draws a seeded
subset. Both recorded. Real jobs (`harness run --mode fewshot`, debug executor) from the demo's pretrained
checkpoint on a copy of the demo's real Raccoon images laid out as GLIP's ODinW folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.catalog import datasets as registry
from harness.cli import main
from harness.run.results import iter_records
from harness.workloads.fewshot import few_shot_subset, glip_few_shot_file, sample_shots
from scaledet.errors import DataError

RACCOON = registry.get_dataset("Raccoon")  # ODinW-13's record; the demo ships a copy of its real images
CPU_SIZED = ["--set", "data.train_size=320", "--set", "model.min_size_test=320", "--set", "model.max_size_test=533",
             "--set", "train.max_steps=2", "--set", "train.checkpoint_every=2"]


def _glip_file(root: Path, split: str, image_ids: list[int], shots: int = 1, seed: int = 3) -> Path:
    """GLIP's few-shot file of ``split``: those images of the split and their boxes, beside the split's json."""
    data = json.loads(RACCOON.annotation_path(split, root).read_text())
    path = glip_few_shot_file(RACCOON, split, shots, seed, root)
    path.write_text(json.dumps({"images": [i for i in data["images"] if i["id"] in image_ids],
                                "annotations": [a for a in data["annotations"] if a["image_id"] in image_ids],
                                "categories": data["categories"]}))
    return path


@pytest.fixture
def glip_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding Raccoon (the demo's real images) in GLIP's layout, as `$SCALEDET_DATA`."""
    root = tmp_path / "data"
    shutil.copytree(registry.demo_datasets()["Raccoon"].folder(), RACCOON.folder(root))
    monkeypatch.setenv(registry.DATA_ENV, str(root))
    return root


def test_glip_files_give_the_subset_and_the_selection_set_else_a_seeded_draw(glip_root: Path):
    train = registry.load_split(RACCOON, "train", glip_root)
    _glip_file(glip_root, "train", [5, 9])
    _glip_file(glip_root, "valid", [3])
    glip = few_shot_subset(RACCOON, train, 1, 3)
    assert glip.source == "glip file" and sorted(i["id"] for i in glip.train.images) == [5, 9]
    assert [i["id"] for i in glip.valid.images] == [3]
    record = glip.record()
    assert record["selected_on"] == "GLIP's val file"
    assert set(record["files"]) == {"fewshot_train_shot1_seed3.json", "fewshot_val_shot1_seed3.json"}
    drawn = few_shot_subset(RACCOON, train, 1, 30)  # no file for seed 30
    assert drawn.source == "drawn" and drawn.valid is None
    assert sorted(i["id"] for i in drawn.train.images) == sample_shots(train, 1, 30)
    _glip_file(glip_root, "train", [], seed=300)  # a file without boxes is refused, naming it
    with pytest.raises(DataError, match=r"fewshot_train_shot1_seed300\.json"):
        few_shot_subset(RACCOON, train, 1, 300)


@pytest.mark.slow
def test_a_fewshot_job_trains_on_glips_file_and_records_it(demo, glip_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    _glip_file(glip_root, "train", [5, 9])
    _glip_file(glip_root, "valid", [3])
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--suite", "odinw13", "--datasets", "Raccoon", "--mode", "fewshot", "--shots", "1",
                 "--seeds", "3,30", "--split-policy", "test", "--checkpoint", str(demo.checkpoint), "--no-report",
                 "--executor", "debug", *CPU_SIZED]) == 0
    records = {r.spec["seed"]: r for r in iter_records(tmp_path / "results")}
    glip, drawn = records[3], records[30]
    assert glip.status == drawn.status == "done"
    assert glip.image_ids == [5, 9]  # exactly the file's images
    assert glip.fewshot_subset["source"] == "glip file"
    assert glip.fewshot_subset["selected_on"] == "GLIP's val file"
    assert drawn.fewshot_subset["source"] == "drawn" and drawn.fewshot_subset["selected_on"] == "the valid split"
    train = registry.load_split(RACCOON, "train", glip_root)
    assert drawn.image_ids == sample_shots(train, 1, 30)
