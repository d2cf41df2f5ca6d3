"""A tiny randomly initialised OmDet-Turbo (``transformers``) and its processor, for the external-model tests.

The shapes follow the tiny config of ``transformers``' own OmDet-Turbo tests (a 4-stage Swin backbone of width
8, a CLIP text model of width 16, 20 queries), with one encoder and one decoder layer; the backbone is the
``transformers`` Swin (no timm, nothing pretrained), so nothing is downloaded. The CLIP text model keeps
CLIP's 77 positions, as the processor pads every text to 77 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from hf_tiny_tokenizers import save_clip_tokenizer

IMAGE_SIZE = 64  # the processor resizes every image to IMAGE_SIZE x IMAGE_SIZE (the real one: 640 x 640)
NUM_QUERIES = 20
TEXT_POSITIONS = 77
NOISE = 0.1


def save_tiny_omdet_turbo(dest: Path, words: Sequence[str]) -> Path:
    """A seeded random tiny ``OmDetTurboForObjectDetection`` and its ``OmDetTurboProcessor`` (a CLIP tokenizer
    in which each of ``words``, and the prompt's ``detect``, is one token), saved with ``save_pretrained`` in
    ``dest``; returns ``dest``."""
    import transformers

    dest.mkdir(parents=True, exist_ok=True)
    vocabulary = save_clip_tokenizer(dest / "_tokenizer", [*words, "detect"])
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(vocabulary))
    width = 8
    text_config = {"model_type": "clip_text_model", "vocab_size": len(tokenizer), "hidden_size": 16,
                   "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "max_position_embeddings": TEXT_POSITIONS, "bos_token_id": tokenizer.bos_token_id,
                   "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    backbone_config = {"model_type": "swin", "embed_dim": width, "depths": (1, 1, 1, 1),
                       "num_heads": (1, 1, 1, 1), "window_size": 7, "image_size": IMAGE_SIZE,
                       "out_indices": (2, 3, 4)}
    config = transformers.OmDetTurboConfig(
        text_config=text_config, backbone_config=backbone_config, use_timm_backbone=False,
        use_pretrained_backbone=False, apply_layernorm_after_vision_backbone=False, image_size=IMAGE_SIZE,
        encoder_in_channels=(2 * width, 4 * width, 8 * width), vision_features_channels=(width, width, width),
        encoder_hidden_dim=width, decoder_hidden_dim=width, encoder_layers=1, decoder_num_layers=1,
        encoder_projection_indices=[2], encoder_attention_heads=2, decoder_num_heads=2, decoder_num_points=4,
        num_feature_levels=3, encoder_dim_feedforward=16, task_encoder_hidden_dim=16,
        decoder_dim_feedforward=16, class_embed_dim=16, text_projection_in_dim=16, text_projection_out_dim=16,
        num_queries=NUM_QUERIES)
    torch.manual_seed(0)
    model = transformers.OmDetTurboForObjectDetection(config).eval()
    with torch.no_grad():  # the init zeroes the box heads and makes every query alike: spread the outputs
        for param in model.parameters():
            param.add_(torch.randn_like(param) * NOISE)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    image_processor = transformers.DetrImageProcessor(size=size, do_pad=False)
    processor = transformers.OmDetTurboProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest
