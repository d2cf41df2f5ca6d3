"""`harness data`: manage the data root; `harness data import` turns a local export into GLIP's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.acquire.importers import FORMATS, import_dataset
from harness.catalog.datasets import get_dataset

HELP = "import a local dataset export (COCO / YOLO / VOC) into the data root"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    sub = actions.add_parser(
        "import", help="import a local Roboflow COCO / YOLO / Pascal VOC export as an ODinW dataset",
        description="Write <root>/odinw/<Name>/<variant>/<split>/annotations_without_background.json with "
                    "the split's images beside it; category ids are the registry's (matched by name).")
    sub.add_argument("name", metavar="NAME", help="ODinW dataset name, e.g. Aquarium")
    sub.add_argument("--from", dest="source", type=Path, required=True, metavar="PATH",
                     help="the unpacked export folder")
    sub.add_argument("--format", dest="fmt", choices=FORMATS, default="auto",
                     help="source format (default: auto-detect)")
    sub.add_argument("--root", type=Path, help="data root (default: $SCALEDET_DATA or the user cache)")
    sub.add_argument("--seed", type=int, default=0, help="seed for splits the source lacks (default: 0)")
    sub.add_argument("--overwrite", action="store_true", help="replace the dataset if it is already there")
    sub.add_argument("--drop-broken-images", action="store_true",
                     help="leave out images that do not decode (and their annotations), counted in the summary; "
                          "without it a broken image stops the import, naming the file")


def run(args: argparse.Namespace) -> int:
    spec = get_dataset(args.name)
    summary = import_dataset(spec, args.source, args.fmt, args.root, args.seed, overwrite=args.overwrite,
                             drop_broken_images=args.drop_broken_images)
    for line in summary.lines():
        print(line)
    return 0
