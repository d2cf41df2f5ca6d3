"""Issue 13's sweep bugs, end to end and fast: a paper-style pair of sweep files on the embedded demo (a pretrain
file naming its text encoder; a transfer file starting from its ``pretrain_job``, with no encoder of its own, as
benchmarks/scaledet_sweeps/ are written) run through the real ``scaledet`` work at a tiny scale.

- Text encoder in sweeps: the pretrain job embeds its labels with the sweep's ``text_encoder`` (not MiniLM, the
  default), saves that setting in its checkpoint, and the transfer job builds the same encoder from it. The
  tests on the sweep files check the override is written; this one checks a job uses it (before, only the slow
  rehearsal of Table 1 did).
- Transfer checkpoint path: the transfer job starts from the checkpoint its pretrain job actually wrote under the
  same runs root (the other tests assume the layout ``<runs root>/<job id>/checkpoints/last.pt``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.catalog import datasets as registry
from harness.plan.sweepfile import load_sweep_file
from harness.workloads.scaledet import work as workload
from scaledet import checkpoints as ckpt
from scaledet.errors import ScaleDetError

# the tiny detector of engine_fixtures.tiny_config, as sweep-file overrides (the demo's CPU settings are larger)
TINY = ("data.batch_size: 2, data.train_size: 128, model.backbone: tiny, model.weights: null, "
        "model.fpn_channels: 16, model.representation_size: 32, model.min_size_test: 128, "
        "model.max_size_test: 160, model.rpn_batch_size_per_image: 64, model.box_batch_size_per_image: 64, "
        "train.max_steps: 1, train.checkpoint_every: 1, train.warmup_steps: 0, train.lr_steps: [1]")
PRETRAIN = f"""\
sweep: fixed-bugs-pretrain
suite: demo
datasets: [Packages]
modes: [pretrain]
methods: [scaledet]
seeds: [3]
split_policy: test
overrides: {{text_encoder: clip, {TINY}}}
"""
TRANSFER = """\
sweep: fixed-bugs-transfer
suite: demo
datasets: [NorthAmericaMushrooms]
modes: [direct]
methods: [scaledet]
seeds: [3]
split_policy: test
overrides: {{pretrain_job: {job}, upstream: Packages}}
"""


class StandIn:
    """Stands in for text encoder setting (name, weights), whose real weights (CLIP's) are not to be had offline:
    a distinct id per setting, fixed random embeddings."""

    def __init__(self, name: str, weights: str | None) -> None:
        self.id = f"standin:{name}:{weights}"

    def encode(self, texts: list[str]) -> torch.Tensor:
        return torch.randn(len(texts), 8, generator=torch.Generator().manual_seed(len(texts)))


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict:
    """Both sweep files run, pretrain then transfer, each cell in its own run folder under one runs root (a failed
    transfer job's error is kept: the tests that need its result fail with it)."""
    root = tmp_path_factory.mktemp("fixed-bugs")
    built: list[tuple[str, str | None]] = []

    def build(name: str, weights: str | None = None, device: str = "cpu") -> StandIn:
        built.append((name, weights))
        return StandIn(name, weights)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workload, "build_text_encoder", build)
        # the demo suite with one upstream dataset: the pretrain job is scored on Packages only (3 test images)
        demo = replace(registry.SUITES["demo"], datasets=("NorthAmericaMushrooms",), upstream=("Packages",))
        patch.setitem(registry.SUITES, "demo", demo)
        (root / "pretrain.yaml").write_text(PRETRAIN)
        (pretrain,) = load_sweep_file(root / "pretrain.yaml").plan()
        result = workload.pretrain(pretrain, root / "runs" / pretrain.job_id)
        out = {"root": root, "pretrain": pretrain, "pretrain_result": result, "pretrain_built": list(built),
               "built": built}
        (root / "transfer.yaml").write_text(TRANSFER.format(job=pretrain.job_id))
        (transfer,) = load_sweep_file(root / "transfer.yaml").plan()
        out["transfer"] = transfer
        try:
            out["transfer_result"] = workload.direct(transfer, root / "runs" / transfer.job_id)
        except ScaleDetError as error:
            out["transfer_error"] = error
    return out


def _transfer_result(sweeps: dict) -> dict:
    if "transfer_error" in sweeps:
        error = sweeps["transfer_error"]
        pytest.fail(f"the transfer job failed: {type(error).__name__}: {error}")
    return sweeps["transfer_result"]


def test_a_sweeps_text_encoder_embeds_the_pretrain_labels_and_the_transfer_reuses_it(sweeps) -> None:
    assert sweeps["pretrain"].override("text_encoder") == "clip"
    assert sweeps["transfer"].override("text_encoder") is None
    assert set(sweeps["pretrain_built"]) == {("clip", None)}  # the pretrain job built the sweep's encoder only
    result = sweeps["pretrain_result"]
    assert result["text_encoder"] == "standin:clip:None"
    assert (result["config"]["work"]["text_encoder"], result["config"]["work"]["text_weights"]) == ("clip", None)
    saved = ckpt.load_checkpoint(sweeps["root"] / "runs" / sweeps["pretrain"].job_id / "checkpoints")
    assert saved["label_space"]["encoder_id"] == "standin:clip:None"
    assert saved["label_space"]["encoder_setting"] == {"name": "clip", "weights": None}
    transfer = _transfer_result(sweeps)  # no text_encoder in the transfer file: the checkpoint's
    assert set(sweeps["built"]) == {("clip", None)}
    assert transfer["text_encoder"] == "standin:clip:None"
    assert transfer["config"]["work"]["text_encoder_from"] == "checkpoint"


def test_the_transfer_starts_from_the_checkpoint_its_pretrain_job_wrote(sweeps) -> None:
    run = sweeps["root"] / "runs" / sweeps["pretrain"].job_id
    written = sorted(p.resolve() for p in run.rglob("*.pt"))
    assert written  # the pretrain job wrote its checkpoint(s) under its own run folder
    transfer = _transfer_result(sweeps)
    start = Path(transfer["config"]["work"]["start_checkpoint"]).resolve()
    assert start in written
    assert ckpt.load_checkpoint(start)["step"] == 1  # the pretrain job's newest: after its one step
    assert 0.0 <= transfer["metrics"]["AP"] <= 1.0
