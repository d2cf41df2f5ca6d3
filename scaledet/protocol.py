"""Scoring (test) settings per kind of dataset: how many detections an image keeps and the score below which a
(region, label) pair is dropped when a dataset is scored. One table, used wherever the harness scores a dataset
and recorded with the result.

=============  ====================  ===============  ==================================================
kind           detections per image  score threshold  where the numbers come from
=============  ====================  ===============  ==================================================
``coco``       100                   0.05             COCO AP counts 100 detections per image; 0.05 is
                                                      detectron2's (hence CenterNet2's) test threshold.
                                                      ODinW datasets are scored this way (GLIP's protocol).
``lvis``       300                   0.0001           The LVIS protocol counts 300 detections per image;
                                                      detectron2's LVIS configs test at 0.0001.
``openimages`` 300                   0.0001           The challenge metric (AP50, hierarchy expanded) sets
                                                      no per-image limit; we keep LVIS's: extra detections
                                                      below every kept score never lower AP.
=============  ====================  ===============  ==================================================

More detections at lower scores only extend a precision-recall curve past its last point, so none of these AP
metrics can go down when the limit rises or the threshold falls; the limits are the protocols' own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scaledet.names import check_name


@dataclass(frozen=True)
class ScoringSettings:
    """How a dataset of one kind is scored (see the module docstring)."""

    kind: str
    detections_per_image: int
    score_thresh: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SCORING_SETTINGS: dict[str, ScoringSettings] = {
    "coco": ScoringSettings("coco", 100, 0.05),
    "lvis": ScoringSettings("lvis", 300, 0.0001),
    "openimages": ScoringSettings("openimages", 300, 0.0001),
}


def scoring_settings(kind: str) -> ScoringSettings:
    """The settings of datasets scored with metric ``kind`` (``coco``, ``lvis``, ``openimages``)."""
    return SCORING_SETTINGS[check_name("dataset kind (metric)", kind, SCORING_SETTINGS)]
