"""The OmDet-Turbo family: ``OmDetTurboForObjectDetection`` and ``OmDetTurboProcessor`` (``"omdet-turbo"``).

Text input: each image gets the list of class texts (``text=[texts] * len(images)``) and no ``task``, so the
processor writes its default task prompt ``"Detect {', '.join(texts)}."`` for each image. The processor
tokenizes the task prompt and every class text separately with the CLIP tokenizer, padded and *truncated* to
``max_length=77`` tokens (``OmDetTurboProcessor.text_kwargs``; the CLIP text model has 77 positions). A class
is embedded from its end-of-text token; the task prompt's tokens all enter the decoder's fusion attention.

Text limit (:meth:`OmDetTurbo.fits`): nothing may be truncated, so each class text, and the task prompt of the
whole chunk, must be at most ``min(processor max_length, text_config.max_position_embeddings)`` tokens, start
and end tokens included. The prompt is what limits the number of classes per pass: nothing else does (the
decoder scores each of ``num_queries`` queries against every class; the class/prompt embedding caches of
``config.cache_size`` entries only evict older entries and never change a pass's result).

Post-processing: the processor's ``post_process_grounded_object_detection`` scores every (query, class) pair
by sigmoid, keeps the top ``max_num_det`` pairs (by default only ``num_queries``; here all ``num_queries x
classes`` pairs), drops those not above ``threshold``, runs class-wise NMS at its default ``nms_threshold``
(0.5), scales the normalised ``cx, cy, w, h`` boxes to each image's ``(height, width)`` and clips them. Its
``labels`` are the indices of the classes in the chunk's list (text labels are not asked for: no lookup by
name).

The model caches class and prompt embeddings by token ids (an LRU of ``config.cache_size`` entries per model
instance): a text's embedding is computed once, the first time it is seen, and reused by later passes. The
decoder's anchors are also cached (``functools.lru_cache`` on ``generate_anchors``, keyed by the module and
the feature shapes). Cached tensors made under ``torch.inference_mode`` raise in a later pass that autograd
tracks, so every forward pass here runs under ``torch.inference_mode`` (also when
:meth:`OmDetTurbo.detect_chunk` is called alone).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

from PIL import Image

from harness.catalog.leakage import Declared
from harness.workloads.hf.families.base import Family, ImageDetections, Loaded

log = logging.getLogger(__name__)

CLIP_TEXT_POSITIONS = 77  # the processor's own default max_length


class OmDetTurbo(Family):
    """OmDet-Turbo: class texts with the processor's default ``"Detect ..."`` task prompt."""

    name: ClassVar[str] = "omdet-turbo"
    model_types: ClassVar[tuple[str, ...]] = ("omdet-turbo",)
    model_class: ClassVar[str] = "OmDetTurboForObjectDetection"
    processor_class: ClassVar[str] = "OmDetTurboProcessor"
    checkpoints: ClassVar[dict[str, Declared]] = {"omlab/omdet-turbo-swin-tiny-hf": Declared(
        ("Objects365", "GoldG"), "OmDet-Turbo paper (arXiv 2403.06892): detection, grounding, VQA and HOI "
        "pretraining; only the detection and grounding sets are named here", complete=False)}

    @staticmethod
    def task_prompt(texts: Sequence[str]) -> str:
        """The task prompt the processor writes for ``texts`` when given no ``task``."""
        return f"Detect {', '.join(texts)}."

    @staticmethod
    def max_tokens(loaded: Loaded) -> int:
        """Most tokens (start, end included) of a text: not truncated, within the text model's positions."""
        max_length = getattr(loaded.processor, "text_kwargs", {}).get("max_length", CLIP_TEXT_POSITIONS)
        return min(max_length, loaded.model.config.text_config.max_position_embeddings)

    @staticmethod
    def n_tokens(loaded: Loaded, text: str) -> int:
        return len(loaded.processor.tokenizer(text, truncation=False, verbose=False)["input_ids"])

    def fits(self, loaded: Loaded, texts: Sequence[str]) -> bool:
        """Every class text, and the chunk's task prompt, fit untruncated (see the module's doc)."""
        limit = self.max_tokens(loaded)
        return (all(self.n_tokens(loaded, text) <= limit for text in texts)
                and self.n_tokens(loaded, self.task_prompt(texts)) <= limit)

    def detect_chunk(self, loaded: Loaded, images: Sequence[Image.Image], texts: Sequence[str],
                     threshold: float) -> list[ImageDetections]:
        images = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        inputs = loaded.processor(images=images, text=[list(texts)] * len(images), return_tensors="pt")
        outputs = loaded.forward(inputs)  # under inference_mode: see the module's doc, never under autograd
        num_queries, num_classes = outputs.decoder_class_logits.shape[1:]
        results = loaded.processor.post_process_grounded_object_detection(
            outputs, threshold=threshold, target_sizes=[(im.height, im.width) for im in images],
            max_num_det=num_queries * num_classes)
        log.debug("omdet-turbo: %d images, %d classes, %d queries", len(images), num_classes, num_queries)
        return [ImageDetections.on_cpu(r["boxes"], r["scores"], r["labels"]) for r in results]

