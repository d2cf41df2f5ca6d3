"""Images per second of each external-detector adapter family on CPU, at one fixed input size.

    python benchmarks/bench_external.py [--size 640] [--images 8] [--batches 1 4] [--families owlvit …]

Each family's real architecture at its released base/tiny size (OWL-ViT B/32, OWLv2 B/16, Grounding DINO and
MM-Grounding-DINO Swin-T + BERT-base, OmDet-Turbo Swin-T + CLIP text), **randomly initialised** (this machine has
no internet, so no released weights; speed does not depend on the weights' values), saved with its processor and
run through the harness's adapter (`Family.detect`: processor, forward pass, the model's own post-processing) on
real demo images squashed to ``--size`` square, with Aquarium's 7 class names. Tokenizers are built from a small
local vocabulary (tests/hf_tiny_tokenizers.py), so text lengths are close to, not exactly, the real ones.
Prints a table and writes JSON to benchmarks/results/bench_external.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from hf_tiny_tokenizers import save_bert_tokenizer, save_clip_tokenizer

from harness.workloads.hf.families import family_of

CLASSES = ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]  # Aquarium
IMAGES = Path(__file__).parents[1] / "harness" / "data" / "demo" / "odinw" / "Raccoon"


def _swin_tiny(out_indices: tuple[int, ...]):
    from transformers import SwinConfig

    return SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                      out_indices=list(out_indices))


def save_model(family: str, folder: Path, size: int) -> Path:
    """The family's released architecture with random weights and its processor, saved in ``folder``."""
    import transformers as t

    torch.manual_seed(0)
    if family in ("owlvit", "owlv2"):
        tokenizer = t.CLIPTokenizer.from_pretrained(str(save_clip_tokenizer(folder / "_tok", CLASSES)))
        tokenizer.model_max_length = 16  # the released OWL checkpoints' text limit
        prefix = "OwlViT" if family == "owlvit" else "Owlv2"
        config = getattr(t, f"{prefix}Config")(
            text_config={"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                         "eos_token_id": tokenizer.eos_token_id, "pad_token_id": 0, "max_position_embeddings": 16},
            vision_config={"image_size": size, "patch_size": 32 if family == "owlvit" else 16})
        model = getattr(t, f"{prefix}ForObjectDetection")(config)
        square = {"height": size, "width": size}
        images = (t.Owlv2ImageProcessor(size=square) if family == "owlv2"
                  else t.OwlViTImageProcessor(size=square, crop_size=square))
        processor = getattr(t, f"{prefix}Processor")(image_processor=images, tokenizer=tokenizer)
    elif family in ("grounding-dino", "mm-grounding-dino"):
        save_bert_tokenizer(folder / "_tok", CLASSES)
        tokenizer = t.BertTokenizer.from_pretrained(str(folder / "_tok"))
        prefix = "GroundingDino" if family == "grounding-dino" else "MMGroundingDino"
        config = getattr(t, f"{prefix}Config")(backbone_config=_swin_tiny((2, 3, 4)),
                                               text_config=t.BertConfig(vocab_size=len(tokenizer)))
        model = getattr(t, f"{prefix}ForObjectDetection")(config)
        images = t.GroundingDinoImageProcessor(size={"shortest_edge": size, "longest_edge": size})
        processor = t.GroundingDinoProcessor(image_processor=images, tokenizer=tokenizer)
    elif family == "omdet-turbo":
        tokenizer = t.CLIPTokenizer.from_pretrained(str(save_clip_tokenizer(folder / "_tok", [*CLASSES, "detect"])))
        config = t.OmDetTurboConfig(
            text_config={"model_type": "clip_text_model", "vocab_size": len(tokenizer),
                         "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                         "pad_token_id": tokenizer.pad_token_id},
            backbone_config=_swin_tiny((2, 3, 4)).to_dict(), use_timm_backbone=False, use_pretrained_backbone=False,
            apply_layernorm_after_vision_backbone=False, image_size=size)
        model = t.OmDetTurboForObjectDetection(config)
        images = t.DetrImageProcessor(size={"height": size, "width": size}, do_pad=False)
        processor = t.OmDetTurboProcessor(image_processor=images, tokenizer=tokenizer)
    else:
        raise SystemExit(f"unknown family {family!r}")
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def bench(family: str, size: int, count: int, batches: list[int]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(family, Path(tmp) / family, size)
        adapter = family_of(folder)
        loaded = adapter.load(folder, torch.device("cpu"), amp=False)
        params = sum(p.numel() for p in loaded.model.parameters())
        files = sorted(IMAGES.rglob("*.jpg"))[:count]
        images = [Image.open(f).convert("RGB").resize((size, size)) for f in files]
        rows = []
        for batch in batches:
            adapter.detect(loaded, images[:batch], CLASSES, 1e-4)  # warm-up
            times = []
            for start in range(0, len(images), batch):
                began = time.perf_counter()
                adapter.detect(loaded, images[start:start + batch], CLASSES, 1e-4)
                times.append((time.perf_counter() - began) / len(images[start:start + batch]))
            rows.append({"family": family, "params_m": params / 1e6, "size": size, "batch": batch,
                         "images": len(images), "s_per_image": statistics.median(times),
                         "images_per_s": 1.0 / statistics.median(times)})
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--families", nargs="+",
                        default=["owlvit", "owlv2", "grounding-dino", "mm-grounding-dino", "omdet-turbo"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_external.json")
    args = parser.parse_args()
    rows = [row for family in args.families for row in bench(family, args.size, args.images, args.batches)]
    print(f"{'family':<18} {'params (M)':>10} {'size':>5} {'batch':>5} {'s/image':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r['family']:<18} {r['params_m']:>10.1f} {r['size']:>5} {r['batch']:>5} {r['s_per_image']:>8.2f} "
              f"{r['images_per_s']:>9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                    "threads": torch.get_num_threads(), "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
