"""`harness ls` and `harness doctor` through harness.cli.main, on empty and tiny fake data roots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harness.catalog import datasets as registry
from harness.cli import main


def make_glip_dataset(spec: registry.DatasetSpec, root: Path, images: dict[str, int] | None = None) -> None:
    """A tiny copy of ``spec`` in GLIP's layout (``spec.annotation_path``), images beside each json."""
    for split in spec.splits:
        path = spec.annotation_path(split, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        count = (images or {}).get(split, spec.images[split] or 2)
        records, boxes = [], []
        for i in range(count):
            file_name = f"{split}_{i}.jpg"
            Image.new("RGB", (8, 8), (i * 9 % 255, 80, 160)).save(path.parent / file_name)
            records.append({"id": i + 1, "file_name": file_name, "width": 8, "height": 8})
            boxes.append({"id": i + 1, "image_id": i + 1, "category_id": spec.categories[0][0],
                          "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0})
        categories = [{"id": cid, "name": name, "supercategory": "none"} for cid, name in spec.categories]
        path.write_text(json.dumps({"images": records, "annotations": boxes, "categories": categories}))


def row(text: str, start: str) -> str:
    """The first output line that starts with ``start``."""
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert lines, f"no line starts with {start!r} in:\n{text}"
    return lines[0]


def status(text: str, check: str) -> str:
    """The status column (ok / warn / fail) of doctor's row for ``check``."""
    return row(text, check + " ")[len(check):].split()[0]


def found(text: str, check: str) -> str:
    """Doctor's "found" cell for ``check``, its wrapped continuation lines joined."""
    lines = text.splitlines()
    start = lines.index(row(text, check + " "))
    parts = [lines[start][len(check):].split(None, 1)[1]]
    for line in lines[start + 1:]:
        if not line.startswith(" ") or not line.strip():
            break
        parts.append(line.strip())
    return " ".join(parts)


@pytest.fixture
def tiny_suite(monkeypatch) -> str:
    """A suite of one ODinW-13 dataset (Packages), so a doctor run can be all ok."""
    monkeypatch.setitem(registry.SUITES, "tiny", registry.Suite("tiny", ("Packages",), description="test"))
    return "tiny"


# -- ls ---------------------------------------------------------------------------------------------------


def test_ls_lists_suites_datasets_and_classes(tmp_path: Path, capsys) -> None:
    assert main(["ls", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path} (from --root)" in out
    for suite in ("odinw13", "demo", "upstream"):
        assert row(out, suite)
    aquarium = row(out, "Aquarium ")
    assert "fish, jellyfish, penguin, puffin, shark, starfish, stingray" in aquarium
    assert "missing" in aquarium and "odinw13, odinw35, demo" in aquarium
    assert "Cottontail-Rabbit" in out and "lvis (1203 classes)" in out


def test_ls_suite_shows_present_and_missing_splits(tmp_path: Path, capsys) -> None:
    make_glip_dataset(registry.DATASETS["Packages"], tmp_path)
    assert main(["ls", "--suite", "odinw13", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert row(out, "Packages ").split()[-3:] == ["present", "present", "present"]
    assert row(out, "Aquarium ").split()[-3:] == ["missing", "missing", "missing"]
    assert row(out, "EgoHands ").split()[-4:] == ["missing"] * 4  # train, valid, test, mini_val
    assert "1 of 13 datasets present" in out and "harness download --suite odinw13 --only NAME" in out


def test_ls_suite_with_a_partial_dataset(tmp_path: Path, capsys) -> None:
    spec = registry.DATASETS["Packages"]
    make_glip_dataset(spec, tmp_path)
    spec.annotation_path("test", tmp_path).unlink()
    assert main(["ls", "--root", str(tmp_path)]) == 0
    assert "partial (2/3 splits)" in row(capsys.readouterr().out, "Packages ")


def test_ls_dataset_shows_classes_splits_counts_and_provenance(tmp_path: Path, capsys) -> None:
    assert main(["ls", "--dataset", "Aquarium", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert row(out, "licence").split(None, 1)[1] == "CC BY 4.0"
    assert "Grounded Language-Image Pre-training" in row(out, "citation")
    assert row(out, "   1  fish") and row(out, "   7  stingray")
    assert row(out, "train ").split()[2:] == ["448", "3324", "missing"]
    assert main(["ls", "--dataset", "Packages", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "joseph-nelson/packages-g0ton/6" in row(out, "roboflow")
    assert main(["ls", "--dataset", "NorthAmericaMushrooms"]) == 0
    assert "flat mushroom" in row(capsys.readouterr().out, "   1  CoW")


def test_ls_unseen_names_the_rule_and_lists_the_classes(capsys) -> None:
    assert main(["ls", "--unseen", "--upstream", "coco"]) == 0
    out = capsys.readouterr().out
    assert "suite odinw13, upstream coco" in out and row(out, "rule names:")
    assert row(out, "sofa ").split() == ["sofa", "PascalVOC"]
    assert "27 of 46 classes unseen (rule names)" in out
    assert main(["ls", "--unseen", "--rule", "paper", "--suite", "odinw13"]) == 0  # default: the four
    out = capsys.readouterr().out
    assert "upstream lvis+coco+objects365+openimages" in out and row(out, "rule paper:")
    assert row(out, "CoW ").split() == ["CoW", "NorthAmericaMushrooms"]
    assert "12 of 46 classes unseen (rule paper)" in out
    assert main(["ls", "--unseen", "--suite", "demo"]) == 0  # default: the suite's own upstream
    out = capsys.readouterr().out
    assert "upstream Aquarium+Packages+Raccoon" in out and "2 of 3 classes unseen" in out
    assert main(["ls", "--unseen", "--upstream", "lvis,coco", "--upstream", "O365+OID", "--lvis-synonyms"]) == 0
    assert "13 of 46 classes unseen (rule names)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["ls", "--dataset", "Aquarim"], "unknown dataset 'Aquarim' (did you mean 'Aquarium'?)"),
    (["ls", "--suite", "odinw_13"], "unknown suite 'odinw_13' (did you mean 'odinw13'?)"),
    (["ls", "--unseen", "--rule", "nams"], "unknown unseen rule 'nams' (did you mean 'names'?)"),
    (["ls", "--unseen", "--upstream", "cocoa"], "unknown upstream dataset 'cocoa' (did you mean 'coco'?)"),
    (["ls", "--unseen", "--upstream", "coco", "--rule", "paper"], "upstream coco has no curated list"),
    (["ls", "--unseen", "--threshold", "0.5"], "--threshold applies to --rule text only"),
    (["ls", "--upstream", "coco"], "go with --unseen"),
    (["doctor", "--suite", "odinw_13"], "unknown suite 'odinw_13' (did you mean 'odinw13'?)"),
])  # fmt: skip
def test_unknown_names_are_one_line_errors(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err
    assert captured.err.startswith(f"harness {argv[0]}: error: ")


# -- doctor -----------------------------------------------------------------------------------------------


def test_doctor_on_an_empty_root_fails_on_the_missing_data(tmp_path: Path, capsys) -> None:
    assert main(["doctor", "--root", str(tmp_path / "nothing")]) == 1
    out = capsys.readouterr().out
    assert status(out, "data Aquarium") == "fail"
    assert found(out, "data Aquarium").startswith("missing train, valid, test annotations under")
    root = tmp_path / "nothing"
    assert (f"- [fail] data Aquarium: harness download --only Aquarium --root {root} (or harness data import "
            f"Aquarium --from PATH --root {root})") in out.splitlines()
    assert status(out, "data root") == "warn"
    for check in ("python ", "torch ", "torchvision ", "scaledet-harness ", "dependencies ", "GPU (torch.cuda)",
                  "SLURM commands", "SLURM controller (sinfo)", "weights: MiniLM text", "weights: OpenCLIP text",
                  "weights: effnet-lite0"):
        assert row(out, check)
    assert "13 fail" in row(out, "doctor: ")


def test_doctor_reports_present_data_ok_and_exits_0(tmp_path: Path, tiny_suite: str, capsys) -> None:
    make_glip_dataset(registry.DATASETS["Packages"], tmp_path)
    code = main(["doctor", "--suite", tiny_suite, "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert status(out, "data Packages") == "ok"
    assert found(out, "data Packages").startswith("images train 19, valid 4, test 3")
    assert status(out, "weights: MiniLM text") == "ok"
    assert status(out, "weights: effnet-lite0") == "ok"
    assert "[fail]" not in out and "0 fail" in row(out, "doctor: ") and code == 0


def test_doctor_warns_on_counts_and_fails_on_missing_images(tmp_path: Path, tiny_suite: str, capsys) -> None:
    spec = registry.DATASETS["Packages"]
    make_glip_dataset(spec, tmp_path, images={"valid": 3})
    assert main(["doctor", "--suite", tiny_suite, "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert status(out, "data Packages") == "warn"
    assert found(out, "data Packages") == "valid has 3 images, the registry says 4"
    assert row(out, "- [warn] data Packages: not the benchmark's copy? harness download --only Packages")
    (spec.annotation_path("test", tmp_path).parent / "test_0.jpg").unlink()
    assert main(["doctor", "--suite", tiny_suite, "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert status(out, "data Packages") == "fail"
    assert found(out, "data Packages").startswith("test: 1 of 3 image files missing under")
    assert row(out, "- [fail] data Packages: re-get the data: harness download --only Packages")


def test_doctor_notes_the_lock_file(tmp_path: Path, tiny_suite: str, capsys) -> None:
    make_glip_dataset(registry.DATASETS["Packages"], tmp_path)
    lock = {"format": "scaledet-odinw-lock/1", "datasets": {"Packages": {"complete": True, "source": "glip"}}}
    (tmp_path / "odinw" / "odinw.lock.json").write_text(json.dumps(lock))
    assert main(["doctor", "--suite", tiny_suite, "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert status(out, "download lock file") == "ok"
    assert found(out, "download lock file").endswith("1 datasets recorded, complete: Packages")
    assert found(out, "data Packages").endswith("; lock file: complete")


def test_ls_unseen_text_rule_shows_nearest_labels(capsys) -> None:
    assert main(["ls", "--unseen", "--suite", "demo", "--rule", "text"]) == 0  # real MiniLM, 12 labels
    out = capsys.readouterr().out
    assert row(out, "rule text:").endswith("; threshold 0.8")
    assert "nearest upstream label" in out and "2 of 3 classes unseen (rule text)" in out
    cow = row(out, "CoW ").split()
    assert cow[:2] == ["CoW", "NorthAmericaMushrooms"] and float(cow[-1]) < 0.8


def test_doctor_warns_on_an_unreadable_lock_file(tmp_path: Path, tiny_suite: str, capsys) -> None:
    make_glip_dataset(registry.DATASETS["Packages"], tmp_path)
    (tmp_path / "odinw" / "odinw.lock.json").write_text("{not json")
    assert main(["doctor", "--suite", tiny_suite, "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert status(out, "download lock file") == "warn" and status(out, "data Packages") == "ok"
    assert row(out, "- [warn] download lock file: repair it or move it away")
