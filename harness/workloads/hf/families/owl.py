"""OWL-ViT (``OwlViTForObjectDetection``, ``model_type`` ``"owlvit"``) and OWLv2 (``Owlv2ForObjectDetection``,
``"owlv2"``) with their own processors.

Text input: every class text is one query of its own (``text=[texts] * len(images)``); the model embeds each query
separately and scores every image patch against each of them, so the number of queries per pass has no limit and a
label list is one chunk.

Text limit: the processor pads each query to the tokenizer's ``model_max_length`` and does not truncate, and the
text model has ``text_config.max_position_embeddings`` positions (16 for every released checkpoint, start and end
tokens included). A longer text would make the processor fail (queries of unequal length) or outrun the position
embeddings. It is not truncated here: a cut class name is another query than the one configured, and results would
silently differ from the protocol's. Instead :meth:`chunks` (and :meth:`detect_chunk`) raise a ``ConfigError``
naming the text, its token count and the limit, before any forward pass.

Post-processing: the processor's ``post_process_grounded_object_detection`` (which calls the image processor's
``post_process_object_detection``): per patch, the query with the highest logit gives the label, its sigmoid the
score, patches with score ``> threshold`` are kept (one detection per patch at most, no NMS, no clipping: boxes may
reach outside the image as the model predicts them).

Boxes: the model predicts ``cx, cy, w, h`` normalised to the image it saw. OWL-ViT resizes (stretches) each image
to the model's square input, so the target size is the image's ``(height, width)``. OWLv2 first pads each image
bottom and right to a square of side ``max(height, width)``, so boxes are normalised to that square: the target
size is ``(side, side)``. (transformers 5.x's OWLv2 ``_scale_boxes`` itself scales by ``max`` of the target size,
so ``(height, width)`` gives the same; ``(side, side)`` is also right for earlier versions, which scaled by
``(height, width)`` as given.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

from PIL import Image

from harness.catalog.leakage import Declared
from harness.workloads.hf.families.base import Family, ImageDetections, Loaded
from scaledet.errors import ConfigError

log = logging.getLogger(__name__)


_OWL = "OWL-ViT paper (Minderer et al., ECCV 2022): LiT image-text pretraining, detection training on O365 + VG"
_OWL2 = "OWLv2 paper (Minderer et al., NeurIPS 2023): self-training on pseudo-annotated WebLI"
_OWL2_FT = _OWL2 + ", then fine-tuned on O365 + VG ('-finetuned'; '-ensemble' averages both weights)"


class _Owl(Family):
    """What OWL-ViT and OWLv2 share: one query per class text, a per-text token limit, the processor's
    post-processing."""

    pads_to_square: ClassVar[bool] = False

    @staticmethod
    def max_tokens(loaded: Loaded) -> int:
        """Tokens (start and end included) a text may have: the text model's positions, or the tokenizer's padded
        length when shorter."""
        positions = loaded.model.config.text_config.max_position_embeddings
        max_length = getattr(loaded.processor.tokenizer, "model_max_length", None) or positions
        return min(positions, max_length)

    @staticmethod
    def token_count(loaded: Loaded, text: str) -> int:
        """``text``'s tokens as the processor makes them, start and end tokens included."""
        return len(loaded.processor.tokenizer(text)["input_ids"])

    def fits(self, loaded: Loaded, texts: Sequence[str]) -> bool:
        """Every text within the token limit (the number of texts is not limited)."""
        limit = self.max_tokens(loaded)
        return all(self.token_count(loaded, text) <= limit for text in texts)

    def check_texts(self, loaded: Loaded, texts: Sequence[str]) -> None:
        """Raise a ``ConfigError`` for the first text longer than the token limit (it can not be split)."""
        limit = self.max_tokens(loaded)
        for text in texts:
            count = self.token_count(loaded, text)
            if count > limit:
                raise ConfigError(f"class text {text!r} has {count} tokens (start and end included); the {self.name} "
                                  f"model {loaded.model.config.name_or_path or ''} takes at most {limit}: shorten it "
                                  f"(it is not truncated)")

    def chunks(self, loaded: Loaded, texts: Sequence[str]) -> list[tuple[int, list[str]]]:
        """All of ``texts`` as one chunk (what the greedy split gives when every text fits), after checking each
        text's length."""
        self.check_texts(loaded, texts)
        return [(0, list(texts))] if texts else []

    def target_size(self, image: Image.Image) -> tuple[int, int]:
        """The ``(height, width)`` the model's normalised boxes are scaled by to give the image's own pixels."""
        if self.pads_to_square:
            side = max(image.height, image.width)
            return side, side
        return image.height, image.width

    def detect_chunk(self, loaded: Loaded, images: Sequence[Image.Image], texts: Sequence[str],
                     threshold: float) -> list[ImageDetections]:
        self.check_texts(loaded, texts)
        if not images:
            return []
        if not texts:
            return [ImageDetections.empty() for _ in images]
        inputs = loaded.processor(images=list(images), text=[list(texts)] * len(images), return_tensors="pt")
        outputs = loaded.forward(inputs)
        results = loaded.processor.post_process_grounded_object_detection(
            outputs, threshold=threshold, target_sizes=[self.target_size(image) for image in images])
        log.debug("%s: %d image(s) x %d queries", self.name, len(images), len(texts))
        return [ImageDetections.on_cpu(r["boxes"], r["scores"], r["labels"]) for r in results]


class OwlViT(_Owl):
    """OWL-ViT: images stretched to the model's square input."""

    name: ClassVar[str] = "owlvit"
    model_types: ClassVar[tuple[str, ...]] = ("owlvit",)
    model_class: ClassVar[str] = "OwlViTForObjectDetection"
    processor_class: ClassVar[str] = "OwlViTProcessor"
    checkpoints: ClassVar[dict[str, Declared]] = {
        f"google/owlvit-{size}": Declared(("Objects365", "Visual Genome"), _OWL)
        for size in ("base-patch32", "base-patch16", "large-patch14")}


class Owlv2(_Owl):
    """OWLv2: images padded bottom and right to a square, then resized."""

    name: ClassVar[str] = "owlv2"
    model_types: ClassVar[tuple[str, ...]] = ("owlv2",)
    model_class: ClassVar[str] = "Owlv2ForObjectDetection"
    processor_class: ClassVar[str] = "Owlv2Processor"
    checkpoints: ClassVar[dict[str, Declared]] = {
        **{f"google/owlv2-{size}": Declared(("WebLI",), _OWL2) for size in ("base-patch16", "large-patch14")},
        **{f"google/owlv2-{size}-{variant}": Declared(("WebLI", "Objects365", "Visual Genome"), _OWL2_FT)
           for size in ("base-patch16", "large-patch14") for variant in ("finetuned", "ensemble")}}
    pads_to_square: ClassVar[bool] = True
