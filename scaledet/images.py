"""Does an image file decode completely? The one decoding check behind import, download, doctor and job checks.

A header read (``Image.open``, the size) passes a JPEG cut short; only decoding every pixel finds it. PIL
refuses a truncated file on ``load()`` unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set (then it pads
the missing rows with grey, silently); nothing in scaledet or harness sets it, and :func:`decode_problem`
warns when something else has.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

log = logging.getLogger(__name__)

# PIL's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS) still applies: twice it is an error on open.
# Above MAX_PIXELS a JPEG is decoded at a reduced scale (``draft``: every byte is still decoded, so a
# truncated file still fails), as the loaders read it with ``max_side``; other formats decode in full.
MAX_PIXELS = 100_000_000  # scaledet.data.read_image without max_side refuses larger images
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_warned = False


def decode_problem(path: Path) -> str | None:
    """None when ``path`` is an image that decodes to the last pixel; else why not, naming the file."""
    global _warned
    path = Path(path)
    if ImageFile.LOAD_TRUNCATED_IMAGES and not _warned:
        _warned = True
        log.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set by some other code: truncated images "
                    "decode without an error and cannot be detected")
    try:
        if not path.is_file():
            return f"file {path} not found"
        if path.stat().st_size == 0:
            return f"file {path} is empty (0 bytes)"
        with Image.open(path) as image:
            width, height = image.size
            if image.format == "JPEG" and width * height > MAX_PIXELS:
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except DECODE_ERRORS as error:
        return f"cannot decode image {path}: {error}"
    return None
