"""ODinW-35: the registry's 35 GLIP configs, `harness ls --suite odinw35`, GLIP's zip shared by two variants of a
dataset (downloaded once from a local mirror), a Roboflow export of a dataset known by GLIP's names only, and
ChessPieces' root class at id 1."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from download_fixtures import LocalServer, zip_folder
from test_cli_ls_doctor import row
from test_import_formats import coco_export

from harness.acquire.download import GlipMirror, download, select
from harness.acquire.standins import MARKER, standin_data, write_odinw_standin
from harness.catalog import datasets as registry
from harness.catalog.leakage import sources_of
from harness.cli import main
from scaledet.errors import DataError

# GLIP's configs/odinw_35 facts (DATASETS.TEST, GENERAL_COPY), as the config files state them
MINIVAL = {"DroneControl", "EgoHands", "EgoHands_specific", "OxfordPets_by-breed", "OxfordPets_by-species", "PKLot",
           "UnoCards", "VehiclesOpenImages", "brackishUnderwater", "openPoetryVision", "websiteScreenshots"}
COPIES = {"AmericanSignLanguageLetters": 4, "ChessPieces": 4, "OxfordPets_by-breed": 4, "PascalVOC": 4,
          "UnoCards": 4, "plantdoc": 4, "DroneControl": 8, "openPoetryVision": 2}


def test_the_suite_is_glips_35_configs_over_32_folders():
    suite = registry.get_suite("odinw35")
    specs = [registry.get_dataset(name) for name in suite.datasets]
    assert len(specs) == 35 == len(set(suite.datasets))
    assert set(registry.get_suite("odinw13").datasets) < set(suite.datasets)
    assert len({spec.archive_name for spec in specs}) == 32
    assert {s.name for s in specs if s.eval_split("glip") == "mini_val"} == MINIVAL
    assert {s.name: s.general_copy for s in specs if s.general_copy != 16} == COPIES
    assert {s.max_epoch for s in specs} == {12}
    pets = registry.get_dataset("OxfordPets_by-breed")
    assert pets.folder(Path("/d")) == Path("/d/odinw/OxfordPets/by-breed") and len(pets.categories) == 37
    boggle = registry.get_dataset("boggleBoards")
    assert boggle.annotation_path("valid", Path("/d")) == Path(
        "/d/odinw/boggleBoards/416x416AutoOrient/export/val_annotations_without_background.json")
    chess = registry.get_dataset("ChessPieces")  # GLIP's id 1 is the root class '  ', not a class
    assert chess.root_ids == (1,) and chess.category_ids == tuple(range(2, 14))
    assert chess.class_names[0] == "black bishop"
    assert sources_of("ChessPieces") == ("ChessPieces", "ODinW-35")  # for the leakage table
    assert sources_of("Raccoon") == ("Raccoon", "ODinW-13", "ODinW-35")


def test_ls_lists_the_35_with_the_split_each_is_scored_on(tmp_path: Path, capsys):
    assert main(["ls", "--suite", "odinw35", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in registry.get_suite("odinw35").datasets:
        assert row(out, name + " ")
    assert row(out, "OxfordPets_by-species ").split()[2:5] == ["cat,", "dog", "mini_val"]
    assert "black bishop" in row(out, "ChessPieces ") and "'  '" not in out
    assert "0 of 35 datasets present" in out and "harness download --suite odinw35 --only NAME" in out
    assert registry.download_command(registry.get_dataset("PKLot")) == "harness download --suite odinw35 --only PKLot"
    with pytest.raises(DataError, match="run `harness download --suite odinw35 --only PKLot`"):
        registry.load_split(registry.get_dataset("PKLot"), "train", tmp_path)
    assert main(["ls", "--dataset", "DroneControl", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 epochs over 8 copies of train" in row(out, "GLIP schedule")
    assert "OVERRIDE_CATEGORY" in row(out, "classes")


PETS = ["OxfordPets_by-breed", "OxfordPets_by-species"]


def test_two_variants_share_one_download_of_glips_zip(tmp_path: Path):
    tree = tmp_path / "tree"
    for name in PETS:
        write_odinw_standin(registry.get_dataset(name), tree, images_per_split=2)
    archive = zip_folder(tree / "odinw" / "OxfordPets", tmp_path / "a.zip", arc_root="OxfordPets")
    assert {n.split("/")[1] for n in zipfile.ZipFile(BytesIO(archive)).namelist()} == {"by-breed", "by-species"}
    root = tmp_path / "root"
    with LocalServer(stop_after=60) as server:
        server.files["/odinw_35/OxfordPets.zip"] = archive
        results = download(select("odinw35", PETS), GlipMirror(f"{server.url}/odinw_35"), root, timeout=10)
        assert [r.status for r in results] == ["downloaded", "downloaded"]
        assert server.paths("GET") == ["/odinw_35/OxfordPets.zip"]  # fetched once for both
        assert not list((root / "odinw").glob(".downloads/*"))  # and removed after the last
        again = download(select("odinw35", PETS[1:]), GlipMirror(f"{server.url}/odinw_35"), root, timeout=10)
        assert again[0].status == "up to date" and len(server.paths("GET")) == 1
    for name in PETS:
        spec = registry.get_dataset(name)
        assert spec.folder(root).is_dir() and not spec.folder(root).is_symlink()
        for split in spec.splits:
            assert registry.load_split(spec, split, root).category_names == spec.class_names


def test_a_roboflow_export_of_a_35_only_dataset_imports_by_glips_names(tmp_path: Path, capsys):
    spec = registry.get_dataset("ChessPieces")
    classes = list(enumerate(spec.class_names, start=1))  # Roboflow: the root at id 0, classes from 1
    source = coco_export(tmp_path / "src", classes, {
        split: [(f"{split}.jpg", [(1, [1, 2, 10, 5]), (12, [5, 5, 20, 20])])] for split in ("train", "valid", "test")},
        root_category="pieces")
    root = tmp_path / "root"
    assert main(["data", "import", "ChessPieces", "--from", str(source), "--root", str(root)]) == 0
    train = registry.load_split(spec, "train", root)
    assert train.category_ids == tuple(range(2, 14))  # the registry's ids: GLIP's, after its root class
    assert [(a["category_id"]) for a in train.source["annotations"]] == [2, 13]  # black bishop, white rook


def test_chess_pieces_root_class_at_id_1_is_dropped_unless_it_has_boxes(tmp_path: Path):
    spec = registry.get_dataset("ChessPieces")
    write_odinw_standin(spec, tmp_path, images_per_split=2)
    path = spec.annotation_path("train", tmp_path)
    data = json.loads(path.read_text())
    assert [c["id"] for c in data["categories"]][:2] == [1, 2]  # written as GLIP's files list it
    assert registry.load_split(spec, "train", tmp_path).category_ids == spec.category_ids
    data["annotations"][0]["category_id"] = 1  # a box on the root: it is a class after all, and not ours
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"do not match the registry's .* \(ids checked; the names are GLIP's"):
        registry.load_split(spec, "train", tmp_path)


def test_a_rehearsal_links_a_present_variant_and_stands_in_for_the_other(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    real, rehearsal = tmp_path / "real", tmp_path / "rehearsal"
    breed, species = (registry.get_dataset(name) for name in PETS)
    write_odinw_standin(breed, real, images_per_split=2)
    (breed.folder(real) / MARKER).unlink()  # stands for the real by-breed data
    real_files = sorted(p.relative_to(real) for p in real.rglob("*"))
    (rehearsal / "odinw").mkdir(parents=True)
    (rehearsal / "odinw" / "OxfordPets").symlink_to(real / "odinw" / "OxfordPets")  # a link of the older layout
    monkeypatch.setenv(registry.DATA_ENV, str(real))
    assert standin_data(rehearsal, "odinw35", PETS) == {registry.DATA_ENV: str(rehearsal.absolute())}
    assert not (rehearsal / "odinw" / "OxfordPets").is_symlink()
    assert breed.folder(rehearsal).is_symlink() and (species.folder(rehearsal) / MARKER).is_file()
    assert sorted(p.relative_to(real) for p in real.rglob("*")) == real_files  # nothing written through a link
    for spec in (breed, species):
        assert registry.load_split(spec, "mini_val", rehearsal).category_ids == spec.category_ids
