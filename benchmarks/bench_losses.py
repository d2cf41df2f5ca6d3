"""Time of the cosine head + ScaleDet losses (forward + backward) on CPU, for growing label spaces.

    python benchmarks/bench_losses.py [--regions 512] [--labels 80 1283 2249 20000] [--repeats 10]

Prints a table and writes JSON to benchmarks/results/bench_losses.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from scaledet.heads import CosineClassifier
from scaledet.labels import similarity_matrix
from scaledet.losses import scaledet_classification_loss

FEATURES = 1024  # torchvision's TwoMLPHead representation size
EMBED_DIM = 512  # CLIP ViT-B/32 text embedding size


def time_step(head: CosineClassifier, features, embeddings, labels, similarity, soft_weight: float) -> float:
    start = time.perf_counter()
    cos = head(features, embeddings)
    loss = scaledet_classification_loss(cos, labels, similarity, tau=head.tau, soft_weight=soft_weight, bias=head.bias)
    loss.total.backward()
    return time.perf_counter() - start


def bench(n: int, regions: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(n)
    embeddings = torch.nn.functional.normalize(torch.randn(n, EMBED_DIM, generator=g), dim=1)
    start = time.perf_counter()
    similarity = similarity_matrix(embeddings)
    sim_seconds = time.perf_counter() - start
    head = CosineClassifier(FEATURES, EMBED_DIM)
    features = torch.randn(regions, FEATURES, generator=g)
    labels = torch.randint(0, n, (regions,), generator=g)
    labels[regions // 4 :] = -1  # a quarter foreground, as with torchvision's positive fraction 0.25
    row = {"labels": n, "regions": regions, "similarity_matrix_s": sim_seconds}
    for name, weight in (("hard_only", 0.0), ("hard_plus_soft", 10.0)):
        time_step(head, features, embeddings, labels, similarity, weight)  # warm-up
        times = [time_step(head, features, embeddings, labels, similarity, weight) for _ in range(repeats)]
        row[f"{name}_ms"] = 1000 * statistics.median(times)
    row["soft_overhead"] = row["hard_plus_soft_ms"] / row["hard_only_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=512)
    parser.add_argument("--labels", type=int, nargs="+", default=[80, 1283, 2249, 20000])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_losses.json")
    args = parser.parse_args()
    rows = [bench(n, args.regions, args.repeats) for n in args.labels]
    header = f"{'labels':>7} {'regions':>7} {'hard only ms':>13} {'hard+soft ms':>13} {'ratio':>6} {'sim matrix s':>13}"
    print(f"head + losses, forward + backward, CPU ({torch.get_num_threads()} threads), median of {args.repeats}")
    print(header)
    for r in rows:
        print(
            f"{r['labels']:>7} {r['regions']:>7} {r['hard_only_ms']:>13.2f} {r['hard_plus_soft_ms']:>13.2f} "
            f"{r['soft_overhead']:>6.2f} {r['similarity_matrix_s']:>13.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine()}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
