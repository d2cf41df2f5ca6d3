"""A JPEG cut short in a real Roboflow YOLO export (NorthAmericaMushrooms) is found before any job starts:
`harness data import` refuses it or drops it when asked, `harness doctor`, a download's verification and a
job's start-up check fail naming it; good files are decoded once (cached)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from coco_fixtures import ODINW
from test_cli_ls_doctor import found, row, status

import scaledet.images
from harness.acquire import images
from harness.acquire.download import verify
from harness.acquire.importers import RECORD_FILE, import_dataset
from harness.catalog import datasets as registry
from harness.cli import main
from harness.workloads.scaledet.work import load_source
from scaledet.errors import DataError

SPEC = registry.get_dataset("NorthAmericaMushrooms")
BROKEN = "chicken09_jpg.rf.fed6d1fa87a05eb3b728b5b17e762e24.jpg"  # a valid image of the real export


def cut_short(path: Path) -> None:
    """Keep the first half of the file: the header (size) still reads, the pixels do not decode."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A copy of the real YOLO export with one valid-split JPEG cut short (its label file has 2 boxes)."""
    source = shutil.copytree(ODINW / "NorthAmericaMushrooms", tmp_path / "export")
    cut_short(source / "valid" / "images" / BROKEN)
    return source


@pytest.fixture
def mushrooms_suite(monkeypatch) -> str:
    monkeypatch.setitem(registry.SUITES, "mushrooms", registry.Suite("mushrooms", ("NorthAmericaMushrooms",),
                                                                     description="test"))  # fmt: skip
    return "mushrooms"


def test_import_refuses_a_truncated_jpeg_naming_it(export: Path, tmp_path: Path, capsys) -> None:
    args = ["data", "import", SPEC.name, "--from", str(export), "--root", str(tmp_path / "root")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    err = err.splitlines()[-1]  # the error line, after the progress bar's
    assert err.startswith(f"harness data: error: {export}: ")
    assert f"1 image file does not decode: cannot decode image {export / 'valid' / 'images' / BROKEN}: " \
           "image file is truncated" in err  # fmt: skip
    assert "--drop-broken-images" in err
    assert not SPEC.folder(tmp_path / "root").exists()


def test_import_drops_a_truncated_jpeg_when_asked_and_counts_it(export: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "root"
    args = ["data", "import", SPEC.name, "--from", str(export), "--root", str(root), "--drop-broken-images"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "valid 4 images / 12 boxes" in row(out, f"{SPEC.name}: imported yolo export")  # 5 / 14 without it
    assert row(out, f"{SPEC.name}: dropped") == (f"{SPEC.name}: dropped 1 broken image(s) that do not decode and "
                                                 f"their 2 box(es) (--drop-broken-images): valid/{BROKEN}")  # fmt: skip
    record = json.loads((SPEC.folder(root) / RECORD_FILE).read_text())
    assert [(d["split"], d["file"], d["boxes"]) for d in record["dropped_broken_images"]] == [("valid", BROKEN, 2)]
    assert BROKEN not in {i["file_name"] for i in registry.load_split(SPEC, "valid", root).images}


def test_doctor_fails_on_a_data_root_holding_a_truncated_jpeg(tmp_path: Path, mushrooms_suite: str,
                                                              capsys) -> None:
    root = tmp_path / "root"
    import_dataset(SPEC, ODINW / SPEC.name, root=root)
    assert main(["doctor", "--suite", mushrooms_suite, "--root", str(root)]) == 0
    assert status(capsys.readouterr().out, f"data {SPEC.name}") == "ok"
    written = SPEC.annotation_path("valid", root).parent / BROKEN
    cut_short(written)  # the cache holds the good file: its new size makes it decode again
    assert main(["doctor", "--suite", mushrooms_suite, "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert status(out, f"data {SPEC.name}") == "fail"
    expected = f"valid: 1 image file does not decode: cannot decode image {written}: image file is truncated"
    assert "".join(found(out, f"data {SPEC.name}").split()).startswith("".join(expected.split()))  # wrapped


def test_job_start_up_check_and_download_verification_name_the_file(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "root"
    import_dataset(SPEC, ODINW / SPEC.name, root=root)
    monkeypatch.setenv(registry.DATA_ENV, str(root))
    assert load_source("odinw13", SPEC.name, "glip", with_train=True).eval.name == SPEC.name
    written = SPEC.annotation_path("valid", root).parent / BROKEN
    cut_short(written)
    with pytest.raises(DataError, match=rf"{SPEC.name} \(.*\): 1 image file does not decode: cannot decode "
                                        rf"image {written}: image file is truncated"):  # fmt: skip
        load_source("odinw13", SPEC.name, "glip", with_train=True)  # a job's start-up: eval split is valid
    with pytest.raises(DataError, match=rf"split valid: 1 image file does not decode: cannot decode image {written}"):
        verify(SPEC, root)


def test_good_images_are_decoded_once_then_read_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "root"
    import_dataset(SPEC, ODINW / SPEC.name, root=root)  # decodes the export, caches the written copies
    decoded: list[Path] = []

    def counting(path: Path) -> str | None:
        decoded.append(path)
        return scaledet.images.decode_problem(path)

    monkeypatch.setattr(images, "decode_problem", counting)
    train = registry.load_split(SPEC, "train", root)
    images.check_dataset_images(train)
    assert decoded == []  # the import's cache covers every written file
    cache = train.image_root / images.CACHE_NAME
    cache.unlink()
    images.check_dataset_images(train)
    assert len(decoded) == len(train.images) == 41
    assert len(json.loads(cache.read_text())["files"]) == 41
    images.check_dataset_images(train)
    assert len(decoded) == 41  # warm: nothing decoded again
    cache.write_text("{not json")
    images.check_dataset_images(train)  # a corrupt cache only costs the decoding
    assert len(decoded) == 82


def test_nothing_imported_by_the_harness_sets_load_truncated_images() -> None:
    code = ("import harness.cli, harness.workloads.scaledet, harness.acquire.importers, scaledet.data, torchvision;"
            "from PIL import ImageFile; print(ImageFile.LOAD_TRUNCATED_IMAGES)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "False"
