"""Test fixtures: real ODinW images (Roboflow YOLO exports) converted to small COCO json datasets.

YOLO: ``data.yaml`` (``names``), ``<split>/images/*.jpg`` and ``<split>/labels/*.txt`` with rows
``class cx cy w h`` normalised to [0, 1]; an empty label file is an image without objects. Category ids are
written as ``1..n`` after a Roboflow-style empty id-0 root category, so readers must drop it.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image

# the shared data: beside the checkout (../shared), else where the work area keeps it (a fresh clone elsewhere)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED_DATA.is_dir():
    SHARED_DATA = Path("/work/shared/data")
ODINW = SHARED_DATA / "odinw"


def yolo_to_coco(root: Path, splits: list[str], out_json: Path, limit: int | None = None,
                 id_step: int = 1) -> Path:
    """Convert ``root``'s YOLO ``splits`` into one COCO json (absolute ``file_name``s; ids ``id_step`` apart)."""
    names = yaml.safe_load((root / "data.yaml").read_text())["names"]
    categories = [{"id": 0, "name": root.name.lower(), "supercategory": "none"}]
    categories += [{"id": (i + 1) * id_step, "name": n, "supercategory": root.name.lower()} for i, n in enumerate(names)]
    images, annotations = [], []
    files = [p for split in splits for p in sorted((root / split / "images").iterdir())]
    for image_path in files[:limit]:
        width, height = Image.open(image_path).size
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": str(image_path), "width": width, "height": height})
        label_file = image_path.parent.parent / "labels" / (image_path.stem + ".txt")
        for line in label_file.read_text().splitlines() if label_file.exists() else []:
            if not line.strip():
                continue
            cls, cx, cy, w, h = line.split()[:5]
            bw, bh = float(w) * width, float(h) * height
            x, y = float(cx) * width - bw / 2, float(cy) * height - bh / 2
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": (int(cls) + 1) * id_step, "bbox": [x, y, bw, bh],
                                "area": bw * bh, "iscrowd": 0})
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return out_json


def odinw_coco(tmp: Path, name: str, splits: list[str], limit: int | None = None, id_step: int = 1) -> Path:
    """COCO json of ODinW dataset ``name`` (e.g. "NorthAmericaMushrooms") ``splits`` under ``tmp``."""
    return yolo_to_coco(ODINW / name, splits, tmp / f"{name}-{'+'.join(splits)}.json", limit, id_step)
