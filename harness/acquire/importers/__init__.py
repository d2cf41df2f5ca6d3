"""Import local dataset exports (Roboflow COCO json, YOLO txt, Pascal VOC XML) into GLIP's ODinW layout.

``import_dataset(spec, source, fmt, root, seed)`` writes ``<root>/odinw/<Name>/<variant>/<split file>`` with
each split's images beside its json, category ids from the registry (matched by name), boxes clipped to the
image (zero-area ones dropped), every image decoded first (a broken one refused, or dropped with
``drop_broken_images``), splits the source lacks drawn from ``train`` with a recorded seed, and an
``import.json`` record. Modules: ``coco``, ``yolo``, ``voc`` (readers), ``formats`` (auto-detection),
``splits``, ``writer``, ``summary``, ``core``.
"""

from harness.acquire.importers.core import import_dataset, match_categories
from harness.acquire.importers.formats import FORMATS, detect_format
from harness.acquire.importers.summary import RECORD_FILE, ImportSummary, MadeSplit, SplitCounts

__all__ = ["FORMATS", "RECORD_FILE", "ImportSummary", "MadeSplit", "SplitCounts", "detect_format",
           "import_dataset", "match_categories"]
