"""What an adapter family is: how one kind of ``transformers`` zero-shot detector is loaded, given text and read.

A :class:`Family` turns (images, class texts) into :class:`ImageDetections` through the model's own processor and
post-processing. Label lists longer than the model's text limit are split into chunks (:meth:`Family.chunks`), each
chunk run alone, and the chunks' detections merged with their labels shifted to the whole list's indices: a class's
detections are the same as when its chunk runs alone.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from harness.catalog.leakage import Declared
from scaledet.errors import ConfigError


@dataclass(frozen=True)
class ImageDetections:
    """One image's detections: ``boxes`` (N, 4) float32 ``x0, y0, x1, y1`` in the image's own pixels, ``scores``
    (N,) float32, ``labels`` (N,) int64 indices into the class texts given."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    @staticmethod
    def on_cpu(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> ImageDetections:
        """Detections from a post-processing's tensors: float32 boxes and scores, int64 labels, on the CPU (so
        chunks and images concatenate whatever device the model ran on)."""
        return ImageDetections(boxes.float().cpu(), scores.float().cpu(), labels.to(torch.int64).cpu())

    @staticmethod
    def empty() -> ImageDetections:
        return ImageDetections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64))

    def shifted(self, offset: int) -> ImageDetections:
        """The same detections with every label ``+ offset`` (a chunk's labels in the whole list)."""
        return ImageDetections(self.boxes, self.scores, self.labels + offset)

    @staticmethod
    def concat(parts: Sequence[ImageDetections]) -> ImageDetections:
        if not parts:
            return ImageDetections.empty()
        return ImageDetections(torch.cat([p.boxes for p in parts]), torch.cat([p.scores for p in parts]),
                               torch.cat([p.labels for p in parts]))

    def top(self, k: int | None, min_score: float = 0.0) -> ImageDetections:
        """The ``k`` highest-scoring detections with a score of at least ``min_score`` (all when ``k`` is None),
        highest first; ties keep their order."""
        keep = self.scores >= min_score
        scores = self.scores[keep]
        order = torch.sort(scores, descending=True, stable=True).indices
        if k is not None:
            order = order[:k]
        return ImageDetections(self.boxes[keep][order], scores[order], self.labels[keep][order])


@dataclass
class Loaded:
    """A family's model and processor, on ``device``; ``amp``: forward passes under fp16 autocast (CUDA only)."""

    model: Any
    processor: Any
    device: torch.device
    amp: bool = False

    def autocast(self):
        """fp16 autocast on CUDA when ``amp`` is set, else nothing."""
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def forward(self, inputs: Any) -> Any:
        """The model's outputs for the processor's ``inputs`` (moved to the device): one pass under
        ``torch.inference_mode`` (OmDet-Turbo caches tensors that must never meet autograd) and :meth:`autocast`,
        its floating-point tensors cast to float32 for the post-processing."""
        with torch.inference_mode(), self.autocast():
            outputs = self.model(**inputs.to(self.device))
        for key, value in list(outputs.items()):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                outputs[key] = value.float()
        return outputs


class Family(ABC):
    """One adapter family; subclasses set the class attributes and implement :meth:`fits` and
    :meth:`detect_chunk`."""

    name: ClassVar[str]  # e.g. "owlvit"
    model_types: ClassVar[tuple[str, ...]]  # the ``config.json`` ``model_type`` values this family reads
    model_class: ClassVar[str]  # transformers class, e.g. "OwlViTForObjectDetection"
    processor_class: ClassVar[str]  # e.g. "OwlViTProcessor"
    # known checkpoints (repo id) -> their training data as the model card or paper states it (leakage marks)
    checkpoints: ClassVar[dict[str, Declared]] = {}

    def load(self, path: Path, device: torch.device, amp: bool = True) -> Loaded:
        """The model and processor saved in ``path`` (a local directory: a snapshot of the Hugging Face cache or a
        ``save_pretrained`` folder), in eval mode on ``device``; never downloads."""
        import transformers

        model = getattr(transformers, self.model_class).from_pretrained(str(path), local_files_only=True)
        processor = getattr(transformers, self.processor_class).from_pretrained(str(path), local_files_only=True)
        model.to(device).eval()
        return Loaded(model, processor, torch.device(device), amp=amp and torch.device(device).type == "cuda")

    @abstractmethod
    def fits(self, loaded: Loaded, texts: Sequence[str]) -> bool:
        """Whether ``texts`` fit the model's text limit in one forward pass."""

    @abstractmethod
    def detect_chunk(self, loaded: Loaded, images: Sequence[Image.Image], texts: Sequence[str],
                     threshold: float) -> list[ImageDetections]:
        """Detections of ``texts`` (labels index ``texts``) in each image, from one forward pass of the batch and
        the model's own post-processing at score ``threshold``; boxes in each image's own pixels."""

    def chunks(self, loaded: Loaded, texts: Sequence[str]) -> list[tuple[int, list[str]]]:
        """``texts`` split greedily into consecutive chunks that each fit: (offset of the chunk, its texts)."""
        out: list[tuple[int, list[str]]] = []
        start = 0
        while start < len(texts):
            end = start + 1
            if not self.fits(loaded, texts[start:end]):
                raise ConfigError(f"class text {texts[start]!r} alone exceeds the text limit of {self.name} model "
                                  f"{loaded.model.config.name_or_path or ''}".rstrip())
            while end < len(texts) and self.fits(loaded, texts[start:end + 1]):
                end += 1
            out.append((start, list(texts[start:end])))
            start = end
        return out

    @torch.inference_mode()
    def detect(self, loaded: Loaded, images: Sequence[Image.Image], texts: Sequence[str],
               threshold: float = 0.0) -> list[ImageDetections]:
        """Detections of every text in each image: each chunk of ``texts`` run alone, their detections merged.

        Images of different sizes go through separate forward passes: a processor that pads a batch to its largest
        image (Grounding DINO's) would otherwise let the padding change an image's detections, so results would
        depend on which images share a batch."""
        per_image: list[list[ImageDetections]] = [[] for _ in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.size, []).append(index)
        for offset, chunk in self.chunks(loaded, texts):
            for indices in by_size.values():
                found = self.detect_chunk(loaded, [images[i] for i in indices], chunk, threshold)
                for index, detections in zip(indices, found, strict=True):
                    per_image[index].append(detections.shifted(offset))
        return [ImageDetections.concat(parts) for parts in per_image]
