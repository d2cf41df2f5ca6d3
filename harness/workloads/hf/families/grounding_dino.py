"""Grounding DINO and MM-Grounding-DINO (and the LLMDet checkpoints, which load as MM-Grounding-DINO) through
``transformers``' ``GroundingDinoProcessor``.

Text: the chunk's class texts stripped, lower-cased and merged as the processor merges a list of candidate labels
(``"a cat. a dog."``), the same text for every image of the batch; a chunk fits when the merged text's token count
(``[CLS]`` and ``[SEP]`` included) is at most ``config.max_text_len``.

Boxes: the processor's own ``post_process_grounded_object_detection`` at a threshold that keeps every query, with
each image's ``(h, w)`` as target size. Scores: that post-processing gives one score per query (the max over every
token, separators and special tokens included) and decoded phrases, which do not map back to classes; so a class's
score for a query is the MEAN of ``sigmoid(logits)`` over the class's own token positions, the rule of GLIP
(``convert_grounding_to_od_logits``, ``score_agg="MEAN"``) and mmdetection (``convert_grounding_to_cls_scores``).
A class's token positions are the tokens whose character offsets (the tokenizer's ``return_offsets_mapping``) lie
inside the class's span of the merged text: never ``[CLS]``, ``[SEP]`` or the ``.`` separators. Every
(query, class) pair scoring at least the threshold is a detection, labelled with the class's index in the chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import torch
from PIL import Image

from harness.catalog.leakage import GROUNDING_DINO_B, GROUNDING_DINO_T, Declared
from harness.workloads.hf.families.base import Family, ImageDetections, Loaded
from scaledet.errors import ConfigError

log = logging.getLogger(__name__)

KEEP_EVERY_QUERY = -1.0  # the post-processing keeps queries scoring strictly above this; sigmoid scores are >= 0


def merged_text(texts: Sequence[str]) -> str:
    """The class texts merged as ``GroundingDinoProcessor`` merges a list of candidate labels."""
    from transformers.models.grounding_dino.processing_grounding_dino import _merge_candidate_labels_text

    return _merge_candidate_labels_text(list(texts))


def class_spans(texts: Sequence[str]) -> list[tuple[int, int]]:
    """Each class's character span ``[start, end)`` in :func:`merged_text` of ``texts``."""
    labels = [text.strip().lower() for text in texts]
    if ". ".join(labels) + "." != merged_text(texts):
        raise RuntimeError("GroundingDinoProcessor merges candidate labels differently than expected")
    spans, start = [], 0
    for label in labels:
        spans.append((start, start + len(label)))
        start += len(label) + len(". ")
    return spans


_MMG = "openmmlab-community/mm_grounding_dino_"
_MMG_DATA = {"o365v1": "Objects365", "o365v2": "Objects365", "goldg": "GoldG", "grit": "GRIT", "v3det": "V3Det",
             "oiv6": "OpenImages"}  # fmt: skip
_MMGDINO = "MM-Grounding-DINO (mmdetection configs/mm_grounding_dino): pretraining data named in the checkpoint"
_LLMDET = ("LLMDet paper (Fu et al., CVPR 2025): GroundingCap-1M, fine-tuned from an MM-Grounding-DINO checkpoint "
           "whose own data is not restated")


class _GroundingDinoFamily(Family):
    """What Grounding DINO and MM-Grounding-DINO share: the processor, the text and the reading of outputs."""

    processor_class: ClassVar[str] = "GroundingDinoProcessor"

    def _tokens(self, loaded: Loaded, texts: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """The merged text's token ids and each class's token positions."""
        encoding = loaded.processor.tokenizer(merged_text(texts), return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        positions = []
        for text, (start, end) in zip(texts, class_spans(texts), strict=True):
            inside = [i for i, (s, e) in enumerate(offsets) if start <= s < e <= end]
            if not inside:
                raise ConfigError(f"class text {text!r} has no tokens for {self.name}")
            positions.append(inside)
        return list(encoding["input_ids"]), positions

    def fits(self, loaded: Loaded, texts: Sequence[str]) -> bool:
        ids, _ = self._tokens(loaded, texts)
        return len(ids) <= loaded.model.config.max_text_len

    def detect_chunk(self, loaded: Loaded, images: Sequence[Image.Image], texts: Sequence[str],
                     threshold: float) -> list[ImageDetections]:
        ids, positions = self._tokens(loaded, texts)
        if len(ids) > loaded.model.config.max_text_len:
            raise ConfigError(f"{len(texts)} class texts take {len(ids)} tokens, more than the text limit "
                              f"{loaded.model.config.max_text_len} of {self.name}")
        rgb = [image.convert("RGB") for image in images]
        inputs = loaded.processor(images=rgb, text=[merged_text(texts)] * len(rgb), return_tensors="pt")
        if inputs["input_ids"][0].tolist() != ids:
            raise RuntimeError("the processor tokenised the merged class texts differently")
        outputs = loaded.forward(inputs)
        results = loaded.processor.post_process_grounded_object_detection(
            outputs, input_ids=inputs["input_ids"], threshold=KEEP_EVERY_QUERY, text_threshold=1.0,
            target_sizes=[(image.height, image.width) for image in rgb])
        probs = outputs.logits.sigmoid()
        scores = torch.stack([probs[..., p].mean(-1) for p in positions], dim=-1)  # (batch, queries, classes)
        found = []
        for result, image_scores in zip(results, scores, strict=True):
            boxes = result["boxes"]
            if len(boxes) != len(image_scores):
                raise RuntimeError(f"post-processing kept {len(boxes)} of {len(image_scores)} queries")
            query, label = torch.nonzero(image_scores >= threshold, as_tuple=True)
            found.append(ImageDetections.on_cpu(boxes[query], image_scores[query, label], label))
        log.debug("%s: %d images, %d classes, %d tokens", self.name, len(rgb), len(texts), len(ids))
        return found


class GroundingDino(_GroundingDinoFamily):
    """Grounding DINO (``IDEA-Research/grounding-dino-*``)."""

    name = "grounding-dino"
    model_types = ("grounding-dino",)
    model_class = "GroundingDinoForObjectDetection"
    checkpoints: ClassVar[dict[str, Declared]] = {
        "IDEA-Research/grounding-dino-tiny": GROUNDING_DINO_T, "IDEA-Research/grounding-dino-base": GROUNDING_DINO_B}


class MMGroundingDino(_GroundingDinoFamily):
    """MM-Grounding-DINO and LLMDet (``model_type`` ``mm-grounding-dino``; ``GroundingDinoProcessor``)."""

    name = "mm-grounding-dino"
    model_types = ("mm-grounding-dino",)
    model_class = "MMGroundingDinoForObjectDetection"
    # the checkpoint names state their pretraining data; the '_all' checkpoints are not listed (not declared here)
    checkpoints: ClassVar[dict[str, Declared]] = {
        **{f"{_MMG}{size}_{data}": Declared(tuple(_MMG_DATA[d] for d in data.split("_")), _MMGDINO)
           for size, data in (("tiny", "o365v1_goldg"), ("tiny", "o365v1_goldg_grit"), ("tiny", "o365v1_goldg_v3det"),
                              ("tiny", "o365v1_goldg_grit_v3det"), ("base", "o365v1_goldg_v3det"),
                              ("large", "o365v2_oiv6_goldg"))},
        **{f"iSEE-Laboratory/llmdet_{size}": Declared(("GroundingCap-1M", "COCO", "Flickr30k", "GQA", "V3Det"),
                                                      _LLMDET, complete=False) for size in ("tiny", "base", "large")}}
