"""Build the embedded demo suite (``harness/data/demo``) from the real ODinW copies in ``../shared/data/odinw``.

Each dataset is imported with ``harness data import``'s code (GLIP layout, registry category ids; Raccoon's
missing valid split made with seed 0), then downscaled so that the shorter side is at most 320 px (the demo's
train and test size) and re-encoded as JPEG quality 80; boxes are scaled with their images. Aquarium keeps a
seeded random subset (160 train / 30 valid / 30 test images) so that the whole demo stays near 10 MB.

    python scripts/make_demo_data.py [--source ../shared/data/odinw] [--out harness/data/demo]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from harness.acquire.importers import import_dataset
from harness.catalog.datasets import DEMO_DOWNSTREAM, DEMO_UPSTREAM, get_dataset

SHORT_SIDE = 320
QUALITY = 80
SUBSET = {"Aquarium": {"train": 160, "valid": 30, "test": 30}}
ATTRIBUTION_FILES = ("README.dataset.txt", "README.roboflow.txt", "LICENSE", "README.md")


def downscale_split(folder: Path, annotation: Path, keep: int | None, seed: int) -> dict[str, int]:
    data = json.loads(annotation.read_text())
    images = data["images"]
    if keep is not None and keep < len(images):
        images = sorted(random.Random(seed).sample(images, keep), key=lambda img: img["id"])
    kept = {img["id"] for img in images}
    annotations = [a for a in data["annotations"] if a["image_id"] in kept]
    factor_of = {}
    for img in images:
        path = folder / img["file_name"]
        with Image.open(path) as opened:
            rgb = opened.convert("RGB")
        factor = min(1.0, SHORT_SIDE / min(rgb.size))
        size = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
        resized = rgb.resize(size, Image.Resampling.LANCZOS) if factor < 1.0 else rgb
        path.unlink()
        img["file_name"] = str(Path(img["file_name"]).with_suffix(".jpg"))
        resized.save(folder / img["file_name"], quality=QUALITY)
        factor_of[img["id"]] = (size[0] / rgb.width, size[1] / rgb.height)
        img["width"], img["height"] = size
    for stale in folder.iterdir():
        if stale.is_file() and stale.suffix.lower() in (".jpg", ".jpeg", ".png") and \
                stale.name not in {img["file_name"] for img in images}:
            stale.unlink()
    for ann in annotations:
        fx, fy = factor_of[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        ann["bbox"] = [round(x * fx, 2), round(y * fy, 2), round(w * fx, 2), round(h * fy, 2)]
        ann["area"] = round(ann["bbox"][2] * ann["bbox"][3], 2)
    annotation.write_text(json.dumps({**data, "images": images, "annotations": annotations}, indent=None))
    return {"images": len(images), "boxes": len(annotations)}


def build(source: Path, out: Path) -> dict[str, dict[str, dict[str, int]]]:
    stats: dict[str, dict[str, dict[str, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in dict.fromkeys(DEMO_UPSTREAM + DEMO_DOWNSTREAM):
            spec = get_dataset(name)
            import_dataset(spec, source / name, root=Path(tmp), seed=0)
            stats[name] = {}
            for split in spec.splits:
                path = spec.annotation_path(split, Path(tmp))
                stats[name][split] = downscale_split(path.parent, path, SUBSET.get(name, {}).get(split), seed=0)
            target = spec.folder(out)
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(spec.folder(Path(tmp)), target)
            for extra in ATTRIBUTION_FILES:
                if (source / name / extra).is_file():
                    shutil.copy2(source / name / extra, target.parent / extra)
    (out / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/odinw")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "harness/data/demo")
    args = parser.parse_args()
    for name, splits in build(args.source, args.out).items():
        print(name, ", ".join(f"{s} {c['images']} images / {c['boxes']} boxes" for s, c in splits.items()))


if __name__ == "__main__":
    main()
