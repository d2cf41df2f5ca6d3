"""What a format reader hands to the writer: images with boxes in source class indices, per split."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from scaledet.errors import DataError

# folder / list names of splits in exports -> the registry's split names
SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "valid": "valid", "val": "valid", "validation": "valid",
    "test": "test", "mini_val": "mini_val", "minival": "mini_val",
}
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# fix kind -> how the summary line describes it
FIXES: dict[str, str] = {
    "clipped": "boxes clipped to the image",
    "zero_area": "zero-area boxes dropped",
    "size_from_image": "VOC files without <size> (size read from the image)",
    "no_label_file": "images without a label file (kept as images with no objects)",
    "orphan_label": "label files without an image (skipped)",
    "root_category": "Roboflow id-0 root categories without boxes dropped",
    "unlisted_image": "images in no split list (skipped)",
}


@dataclass(frozen=True)
class SourceBox:
    """One box as the source gives it: corners in pixels, or in fractions of the image when ``normalized``."""

    label: int  # index into SourceDataset.class_names
    x0: float
    y0: float
    x1: float
    y1: float
    normalized: bool = False
    iscrowd: int = 0


@dataclass(frozen=True)
class SourceImage:
    """One image file, its boxes, and its size when the source states it."""

    path: Path
    file_name: str  # posix path relative to the output split folder
    boxes: tuple[SourceBox, ...]
    width: int | None = None
    height: int | None = None
    size_missing: bool = False  # the source should have stated the size (VOC <size>) and did not


@dataclass
class SourceDataset:
    """A whole export: its class names (source order), images per split, and fixes counted while reading."""

    fmt: str
    class_names: tuple[str, ...]
    classes_from: str  # where the class names were read, for messages
    splits: dict[str, list[SourceImage]]
    fixes: dict[str, Counter[str]] = field(default_factory=dict)  # split -> fix kind -> count


def split_name(name: str) -> str | None:
    """The registry split a folder or list called ``name`` holds, or ``None``."""
    return SPLIT_ALIASES.get(name.lower())


def safe_relative(file_name: str, where: str) -> str:
    """``file_name`` as a relative posix path inside its folder; absolute paths and ``..`` are refused."""
    path = PurePosixPath(file_name.replace("\\", "/"))
    if not file_name or path.is_absolute() or ".." in path.parts or "\x00" in file_name:
        raise DataError(f"{where}: file_name {file_name!r} must be a relative path inside the export "
                        "(no absolute path, no '..', no NUL)")
    return str(path)


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
