"""`harness download`: fetch ODinW datasets from GLIP's mirror or Roboflow into the data root, verified."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tabulate import tabulate

from harness.acquire.download import GLIP_URL, GLIP_URL_ENV, GlipMirror, Source, download, select
from harness.acquire.lock import lock_path
from harness.acquire.roboflow import API_KEY_ENV, RoboflowExport
from harness.catalog.datasets import DATA_ENV, data_root
from scaledet.errors import ConfigError

HELP = "download ODinW datasets (GLIP mirror or Roboflow), resumable and checksummed"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="odinw13", help="suite whose datasets to download (default: odinw13)")
    parser.add_argument("--source", choices=("glip", "roboflow"), default="glip",
                        help=f"GLIP's Hugging Face mirror (default) or Roboflow (needs ${API_KEY_ENV})")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=[], help="only these datasets of the suite")
    parser.add_argument("--root", type=Path, help=f"data root (default: ${DATA_ENV} or the user cache)")
    parser.add_argument("--glip-url", metavar="URL",
                        help=f"base URL of the GLIP mirror (default: ${GLIP_URL_ENV} or {GLIP_URL})")
    parser.add_argument("--roboflow", action="append", default=[], metavar="NAME=WORKSPACE/PROJECT/VERSION",
                        help="Roboflow version of a dataset (repeatable; overrides the config file and registry)")
    parser.add_argument("--roboflow-config", type=Path, metavar="FILE",
                        help="YAML file: 'roboflow:' mapping dataset names to WORKSPACE/PROJECT/VERSION")
    parser.add_argument("--attempts", type=int, default=3, help="tries per download before giving up (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a try fails")


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    specs = select(args.suite, args.only)
    if not specs:
        print(f"suite {args.suite}: nothing to download")
        return 0
    root = args.root or data_root()
    source: Source
    if args.source == "roboflow":
        source = RoboflowExport.from_options(specs, args.roboflow, args.roboflow_config)
    else:
        source = GlipMirror(args.glip_url or os.environ.get(GLIP_URL_ENV) or GLIP_URL)
    results = download(specs, source, root, attempts=args.attempts, timeout=args.timeout)
    rows = [[r.name, r.status, (r.sha256 or "")[:16], sum(r.images.values()) if r.images else "",
             sum(r.boxes.values()) if r.boxes else "", r.folder] for r in results]
    print(tabulate(rows, headers=["dataset", "status", "sha256", "images", "boxes", "folder"]))
    print(f"lock file: {lock_path(root)}")
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Options of one source given with the other are refused rather than ignored."""
    if args.source == "glip" and (args.roboflow or args.roboflow_config):
        raise ConfigError("--roboflow/--roboflow-config apply to --source roboflow (the source is glip)")
    if args.source == "roboflow" and args.glip_url:
        raise ConfigError("--glip-url applies to --source glip (the source is roboflow)")
    if args.attempts < 1:
        raise ConfigError(f"--attempts must be at least 1, got {args.attempts}")
