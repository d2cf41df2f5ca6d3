"""The external-model workload end to end: ``harness run --model hf:<dir>`` runs a ``direct`` cell of the demo for
every adapter family (tiny random models through the real ``transformers`` code paths), records what ran, gives
each model revision its own job id, scores the same detections the adapter gives, and shards over ranks."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from engine_fixtures import free_port
from hf_fixtures import SAVERS, cache_as

from harness.catalog.datasets import get_dataset, load_split
from harness.cli import main
from harness.job import JobSpec
from harness.run.results import iter_records
from harness.workloads.hf import work
from harness.workloads.hf.families import family_of
from harness.workloads.hf.inference import predict_external
from harness.workloads.hf.models import resolve
from scaledet.evaluation import coco_eval


def run_direct(model: Path, root: Path, *extra: str) -> list:
    code = main(["run", "--suite", "demo", "--datasets", "Raccoon", "--model", f"hf:{model}", "--results-root",
                 str(root / "results"), "--runs-root", str(root / "runs"), "--no-report", *extra])
    assert code == 0
    return list(iter_records(root / "results"))


@pytest.mark.parametrize("family", sorted(SAVERS))
def test_a_direct_cell_of_the_demo_runs_for_every_family(tiny_models, tmp_path: Path, family: str) -> None:
    import transformers

    (record,) = run_direct(tiny_models[family], tmp_path, "--set", "workers=0")
    assert record.status == "done", record.error
    assert record.spec["mode"] == "direct" and record.spec["method"] == "hf" and record.spec["dataset"] == "Raccoon"
    overrides = dict(record.spec["overrides"])
    ref = resolve(str(tiny_models[family]))
    assert overrides["hf_model"] == ref.name and overrides["hf_revision"] == ref.revision
    model = record.config["model"]
    assert model["family"] == family and model["revision"] == ref.revision
    assert model["transformers"] == transformers.__version__ and model["class"].endswith("ForObjectDetection")
    assert record.config["work"]["texts"] == ["raccoon"] and record.config["work"]["prompts"] == "names"
    assert record.config["scoring"]["Raccoon"]["detections_per_image"] == 100
    assert record.text_encoder == f"hf:{ref.label}"
    assert 0.0 <= record.metrics["AP"] <= 1.0 and set(record.per_class_ap) == {"raccoon"}
    assert record.config["world_size"] == 1
    assert model["training_data"] is None  # a local folder: no declared training data


def test_a_known_checkpoint_from_the_cache_records_its_revision_and_declared_training_data(
        tiny_models, tmp_path: Path, monkeypatch) -> None:
    """The tiny Grounding DINO placed in a Hugging Face cache as IDEA-Research/grounding-dino-base: the cell reads the
    cache offline, records the repo and commit, and the family's declaration (trained on ODinW-35) marks the
    leaderboard."""
    from harness.reporting.cells import load_cells
    from harness.reporting.leaderboard import leaderboard_table
    from harness.reporting.model import Marked
    from harness.reporting.published import load_published
    from harness.reporting.tables import ReportInput

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = "IDEA-Research/grounding-dino-base"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    cache_as(tiny_models["grounding-dino"], tmp_path / "hub", repo, commit)
    code = main(["run", "--suite", "demo", "--datasets", "Raccoon", "--model", f"hf:{repo}", "--results-root",
                 str(tmp_path / "results"), "--runs-root", str(tmp_path / "runs"), "--no-report", "--set", "workers=0"])
    assert code == 0
    (record,) = iter_records(tmp_path / "results")
    assert dict(record.spec["overrides"])["hf_revision"] == commit
    assert record.config["model"]["id"] == repo and record.config["model"]["revision"] == commit
    assert "ODinW-35" in record.config["model"]["training_data"]["data"]
    cells = load_cells(tmp_path / "results", "demo")
    table = leaderboard_table(ReportInput("demo", ("Raccoon",), cells, load_published("demo")))
    row = next(r for r in table.rows if r.label == f"{repo}@0123456 (transformers)")
    assert isinstance(row.cells[0], Marked) and row.cells[0].mark == "†"


def test_the_record_scores_exactly_the_adapters_detections(tiny_models, tmp_path: Path) -> None:
    """Two datasets, GLIP's prompts, loader workers and batches of 2: the record's metrics are coco_eval of what the
    adapter finds on the evaluation split, called directly."""
    folder = tiny_models["grounding-dino"]
    code = main(["run", "--suite", "demo", "--datasets", "NorthAmericaMushrooms,Raccoon", "--model", f"hf:{folder}",
                 "--results-root", str(tmp_path / "results"), "--runs-root", str(tmp_path / "runs"), "--no-report",
                 "--set", "workers=2", "--set", "batch_size=2", "--set", "prompts=glip"])
    assert code == 0
    records = {r.spec["dataset"]: r for r in iter_records(tmp_path / "results")}
    assert set(records) == {"NorthAmericaMushrooms", "Raccoon"}
    family = family_of(folder)
    loaded = family.load(folder, torch.device("cpu"))
    for name, record in records.items():
        spec = get_dataset(name, "demo")
        texts = record.config["work"]["texts"]
        assert texts == list(spec.prompt_overrides or spec.class_names)
        records_eval = load_split(spec, spec.eval_split("test"))
        detections = predict_external(family, loaded, records_eval, texts, detections_per_image=100,
                                      threshold=work.SCORE_THRESH, batch_size=1)
        assert len(detections) > 0
        expected = coco_eval(records_eval.source, detections)
        assert record.metrics["AP"] == pytest.approx(expected["AP"], abs=1e-6), name
        assert record.per_class_ap == pytest.approx(expected["per_class"], abs=1e-6)


def test_each_revision_of_a_model_is_its_own_cell(tiny_models, tmp_path: Path) -> None:
    copy = tmp_path / "owl"
    shutil.copytree(tiny_models["owlvit"], copy)
    (first,) = run_direct(copy, tmp_path / "a", "--set", "workers=0")
    again = run_direct(copy, tmp_path / "a", "--set", "workers=0")
    assert [r.job_id for r in again] == [first.job_id] and again[0].finished_at == first.finished_at  # reused
    config = json.loads((copy / "config.json").read_text())
    config["text_config"]["layer_norm_eps"] = 1e-6  # a changed file: a new revision
    (copy / "config.json").write_text(json.dumps(config))
    records = run_direct(copy, tmp_path / "a", "--set", "workers=0")
    assert len({r.job_id for r in records}) == 2
    assert len({dict(r.spec["overrides"])["hf_revision"] for r in records}) == 2


def test_external_models_run_zero_shot_only_and_a_missing_model_stops_the_plan(tiny_models, tmp_path: Path,
                                                                             capsys) -> None:
    code = main(["run", "--suite", "demo", "--datasets", "Raccoon", "--model", f"hf:{tiny_models['owlv2']}",
                 "--mode", "finetune", "--results-root", str(tmp_path), "--no-report"])
    err = capsys.readouterr().err
    assert code != 0 and "unknown mode of workload 'hf' 'finetune'; valid: direct" in err
    code = main(["run", "--suite", "demo", "--model", "hf:nobody/no-such-model", "--results-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and "nobody/no-such-model" in err and "hf download nobody/no-such-model" in err


def _sharded(rank: int, world: int, port: int, spec_json: str, out: str, tests_dir: str) -> None:
    sys.path.insert(0, tests_dir)
    from engine_fixtures import rank_environment

    rank_environment(rank, world, port)
    import torch.distributed as dist

    dist.init_process_group("gloo")
    found = work.direct(JobSpec.from_dict(json.loads(spec_json)), Path(out) / f"run{rank}")
    Path(out, f"rank{rank}.json").write_text(json.dumps(found))
    dist.destroy_process_group()


def test_two_ranks_score_what_one_rank_scores(tiny_models, tmp_path: Path) -> None:
    """Each rank predicts every other image, rank 0 gathers them by image id and scores once."""
    ref = resolve(str(tiny_models["mm-grounding-dino"]))
    spec = JobSpec("demo", "Raccoon", "direct", "hf", 3, split_policy="test", overrides=(
        ("hf_model", ref.name), ("hf_revision", ref.revision), ("workers", 0), ("batch_size", 2)))
    one = work.direct(spec, tmp_path / "one")
    mp.spawn(_sharded, args=(2, free_port(), spec.canonical_json(), str(tmp_path), str(Path(__file__).parent)),
             nprocs=2, join=True)
    two = json.loads((tmp_path / "rank0.json").read_text())
    assert json.loads((tmp_path / "rank1.json").read_text()) == {"metrics": {}}
    assert two["config"]["world_size"] == 2 and one["config"]["world_size"] == 1
    assert two["metrics"] == pytest.approx(one["metrics"], abs=1e-6)
    assert two["per_class_ap"] == pytest.approx(one["per_class_ap"], abs=1e-6)
    assert one["metrics"]["AP"] >= 0.0


def test_images_of_different_sizes_in_one_batch_get_their_own_detections(tiny_models) -> None:
    """Grounding DINO's processor pads a batch to its largest image: the adapter runs each size alone, so an
    image's detections never depend on the images it shares a batch with."""
    from PIL import Image

    root = Path(__file__).parents[1] / "harness" / "data" / "demo" / "odinw" / "Raccoon" / "Raccoon.v2-raw.coco"
    images = [Image.open(root / "test" / "raccoon-105.jpg").convert("RGB"),
              Image.open(next(root.glob("*/raccoon-106.jpg"))).convert("RGB")]
    assert images[0].size != images[1].size
    folder = tiny_models["grounding-dino"]
    family = family_of(folder)
    loaded = family.load(folder, torch.device("cpu"))
    texts = ["raccoon", "cow"]
    together = family.detect(loaded, images, texts)
    for image, found in zip(images, together, strict=True):
        (alone,) = family.detect(loaded, [image], texts)
        assert torch.equal(found.boxes, alone.boxes) and torch.equal(found.scores, alone.scores)
        assert torch.equal(found.labels, alone.labels)


def test_forward_passes_autocast_to_fp16_on_cuda_only(tiny_models) -> None:
    """``amp`` (on by default) means fp16 autocast on a CUDA device and nothing elsewhere (checked without a GPU:
    the context each device gets)."""
    import contextlib
    import warnings

    from harness.workloads.hf.families.base import Loaded

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": the context is what is under test
        cuda = Loaded(None, None, torch.device("cuda:1"), amp=True).autocast()
    assert isinstance(cuda, torch.autocast) and cuda.device == "cuda" and cuda.fast_dtype == torch.float16
    assert isinstance(Loaded(None, None, torch.device("cuda:1"), amp=False).autocast(), contextlib.nullcontext)
    family = family_of(tiny_models["owlvit"])
    loaded = family.load(tiny_models["owlvit"], torch.device("cpu"), amp=True)
    assert loaded.amp is False and isinstance(loaded.autocast(), contextlib.nullcontext)
