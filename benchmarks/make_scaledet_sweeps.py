"""Write the sweep files that reproduce the paper's Tables 1, 2, 3, 7 and 8 (``benchmarks/scaledet_sweeps/``);
Tables 4 and A are read from the same runs (Table 4: Table 1's R50 ScaleDet runs; Table A: Table 2's Swin-B ones).

The sweep format (``harness.plan.sweepfile``) holds one grid with one set of overrides per file, so every
training schedule of Table C is its own file; cells shared between tables (Table 8's L_hl+L_sl rows are
Table 1's ScaleDet runs) have the same job id and run once. ``benchmarks/scaledet_table1.yaml`` holds the paper's
upstream tables whole as one multi-document file (the seven Table 1 files and Table 8a's two L_hl files, ``---``
separated): one rehearsal or run of it yields the report's Table 1 and Table 8a sections. Each file's header states
its GPU budget, computed by ``harness.workloads.scaledet.budget`` (as ``harness sweep FILE --dry-run`` does):

    GPU-hours = train.max_steps x data.batch_size / (images per second per GPU) / 3600

``data.batch_size`` is Table C's batch and is GLOBAL (all ranks together, detectron2's IMS_PER_BATCH): each of
the 8 tasks of a pretrain job (one per GPU) loads batch / 8 images per step, e.g. 64 -> 8 per GPU.

Images per second per GPU are NOT measured here (no GPU on the development machine); they come from
Detic's model zoo (docs/MODEL_ZOO.md, 8 x V100, the CenterNet2 recipe ScaleDet builds on):

- ResNet-50 at 640: ``BoxSup-C2_L_CLIP_R5021k_640b64_4x`` = 90,000 iterations x 64 images in 17 h
  -> 5,760,000 / (17 x 3600 x 8) = 11.76 images/s/GPU;
- Swin-B at 896: ``BoxSup-C2_L_CLIP_SwinB_896b32_4x`` = 180,000 x 32 images in 43 h -> 4.65 images/s/GPU;
- Swin-T at 896: no published figure; Swin-B's rate is used (an upper bound on time).

Replace them with a measured rate of our detector when one exists (``harness.workloads.scaledet.budget.RATES``) and re-run:
``python benchmarks/make_scaledet_sweeps.py``. ``tests/test_upstream_sweeps.py`` checks the files are
this script's output and load with ``harness.plan.sweepfile.load_sweep_file(s)``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from harness.catalog.datasets import get_suite
from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.plan.stages import start_overrides
from harness.plan.suite_settings import (
    PAPER_R50,
    SUITE_SETTINGS,
    TRAIN_SIZE,
    UNIDET_MIN_SIZES,
    UNIDET_MULTIPLE,
    UNIDET_SINGLE,
    PretrainSchedule,
)
from harness.plan.sweepfile import SweepFile
from harness.workloads.scaledet import budget
from harness.workloads.scaledet.budget import RATES
from harness.workloads.schedule import FINETUNE_EPOCHS
from scaledet.engine import per_rank_batch

log = logging.getLogger("make_scaledet_sweeps")
OUT = Path(__file__).parent / "scaledet_sweeps"
TABLE1_FILE = Path(__file__).parent / "scaledet_table1.yaml"
SEED = 3
GPUS = 8  # the paper trains on 8 V100
TRANSFER_RESOURCES = Resources(nodes=1, gpus_per_node=1, ntasks_per_node=1, cpus_per_task=8, time=240)
SHORT = {"lvis": "L", "coco": "C", "objects365": "O365", "openimages": "OID"}
# ODinW-13 image counts (the registry's, GLIP paper Table 9): train, and the images scored under the glip
# split policy (valid; EgoHands/Vehicles mini_val counted as their full valid).
ODINW13 = get_suite("odinw13").datasets  # the paper's Table D order
ODINW_TRAIN_IMAGES = sum(budget.split_images("odinw13", name, "train") for name in ODINW13)
ODINW_EVAL_IMAGES = sum(budget.eval_images("odinw13", name, "glip") for name in ODINW13)


@dataclass(frozen=True)
class Pretrain:
    """One row of Table C: datasets, method, and its schedule (steps, global batch, backbone, text encoder)."""

    datasets: tuple[str, ...]
    method: str
    schedule: PretrainSchedule
    start: Pretrain | None = None  # Table 2's '*': trained further from this run's checkpoint

    @property
    def name(self) -> str:
        return "+".join(SHORT[d] for d in self.datasets)

    @property
    def steps(self) -> int:
        return self.schedule.steps

    @property
    def batch(self) -> int:  # global, over the GPUS ranks of the job
        return self.schedule.batch

    @property
    def backbone(self) -> str:
        return self.schedule.backbone

    def overrides(self) -> dict[str, object]:
        """The schedule's overrides; a run that starts from another's checkpoint names it (``pretrain_job``) and
        loads no backbone weights (``model.weights: null``: the checkpoint's replace them)."""
        if not self.start:
            return self.schedule.overrides()
        return {**self.schedule.overrides(), "model.weights": None, "pretrain_job": self.start.spec().job_id}

    def spec(self) -> JobSpec:
        """The cell its sweep file plans: the upstream suite's pretrain settings under the run's own overrides."""
        dataset = "+".join(sorted(self.datasets))
        overrides = {**SUITE_SETTINGS["upstream"]["pretrain"], **self.overrides()}
        return JobSpec("upstream", dataset, "pretrain", self.method, SEED, None, "glip",
                       tuple(sorted(overrides.items())))

    def gpu_hours(self) -> float:
        return budget.pretrain_hours(self.steps, self.batch, self.backbone)


L, LC, LCO, LCOO = ("lvis",), ("lvis", "coco"), ("lvis", "coco", "objects365"), ("lvis", "coco", "objects365", "openimages")
SHORT_RUN = PretrainSchedule(90_000, 64)
TABLE1 = {  # file stem -> run (paper Table C); CLIP ViT-B/32 label embeddings throughout (paper §4.2)
    "table1_baseline_L": Pretrain(L, "baseline", SHORT_RUN),
    "table1_baseline_C": Pretrain(("coco",), "baseline", SHORT_RUN),
    "table1_baseline_O365": Pretrain(("objects365",), "baseline", PretrainSchedule(540_000, 64)),
    "table1_baseline_OID": Pretrain(("openimages",), "baseline", PretrainSchedule(540_000, 64)),
    "table1_scaledet_L+C": Pretrain(LC, "scaledet", SHORT_RUN),
    "table1_scaledet_L+C+O365": Pretrain(LCO, "scaledet", PretrainSchedule(400_000, 128)),
    # ScaleDet-R: also the pretraining `harness run --suite odinw13` plans (harness.plan.suite_settings)
    "table1_scaledet_L+C+O365+OID": Pretrain(LCOO, "scaledet", PAPER_R50),
}
TABLE8 = {  # the L_hl rows; the L_hl + L_sl rows are Table 1's scaledet runs (same job ids)
    "table8_hard_L+C": Pretrain(LC, "scaledet-hard", SHORT_RUN),
    "table8_hard_L+C+O365+OID": Pretrain(LCOO, "scaledet-hard", PAPER_R50),
}
# ScaleDet-T/B pretraining (ScaleDet-R is Table 1's L+C+O365+OID run). The paper does not say which text
# encoder Table 7 used; its Table 2 trains T and B with both CLIP and OpenCLIP ViT-H/14 (not a sweep here):
# CLIP, the paper's default (§4.2), is kept.
TABLE7 = {
    "table7_pretrain_swin-t": Pretrain(LCOO, "scaledet", replace(PAPER_R50, backbone="swin-t")),
    "table7_pretrain_swin-b": Pretrain(LCOO, "scaledet", replace(PAPER_R50, backbone="swin-b")),
}
# Table 2: R50/T/B x CLIP/OpenCLIP ViT-H/14 on L+C+O365+OID. The CLIP rows are Table 1's R50 run and Table 7's
# T and B runs (same job ids); the OpenCLIP rows are these two. Its B* row ("further fine-tune the model on each
# dataset after multi-dataset training") is four runs from ScaleDet-B OpenCLIP's checkpoint, one per upstream dataset,
# each on that dataset's Table C schedule (supplementary: "the learning schedules are the same as the ones trained on
# the same datasets in Table C"), at Swin's 896 px.
TABLE2 = {
    "table2_pretrain_swin-t_openclip": Pretrain(LCOO, "scaledet", replace(PAPER_R50, backbone="swin-t",
                                                                           text_encoder="openclip")),
    "table2_pretrain_swin-b_openclip": Pretrain(LCOO, "scaledet", replace(PAPER_R50, backbone="swin-b",
                                                                           text_encoder="openclip")),
}
TABLE2_STAR = {  # one document per upstream dataset, in one file
    name: Pretrain((name,), "scaledet", replace(single.schedule, backbone="swin-b", text_encoder="openclip"),
                   start=TABLE2["table2_pretrain_swin-b_openclip"])
    for name, single in (("lvis", TABLE1["table1_baseline_L"]), ("coco", TABLE1["table1_baseline_C"]),
                         ("objects365", TABLE1["table1_baseline_O365"]), ("openimages", TABLE1["table1_baseline_OID"]))
}
STAR_FILE = "table2_star_swin-b_openclip"
COO = ("coco", "objects365", "openimages")
# Table 3: UniDet's setting (harness.plan.suite_settings.RECIPES["unidet"]): ImageNet-1k R50, SGD, standard
# augmentation; "single" trains on each of C, O365, OID alone, "multiple" on the three together. CLIP text as elsewhere.
TABLE3 = {
    "table3_single_C": Pretrain(("coco",), "baseline", UNIDET_SINGLE),
    "table3_single_O365": Pretrain(("objects365",), "baseline", UNIDET_SINGLE),
    "table3_single_OID": Pretrain(("openimages",), "baseline", UNIDET_SINGLE),
    "table3_multiple_C+O365+OID": Pretrain(COO, "scaledet", UNIDET_MULTIPLE),
}
WEIGHT_NOTES = {"in21k": " (ImageNet-21k, paper §4.1; scaledet.pretrained names the files and their caches).",
                "default": " (ImageNet-1k, torchvision's)."}
DETECTOR_NOTES = {"centernet2": " (CenterNet2: CenterNet proposals, a 3-stage cascade; the paper's, §4.1)."}
ENCODER_NOTES = {"clip": " is CLIP ViT-B/32 (paper §4.2).", "openclip": " is OpenCLIP ViT-H/14 (paper Table 2)."}


def pretrain_file(stem: str, run: Pretrain, table: str) -> str:
    rate, source = RATES[run.backbone].images_per_second, RATES[run.backbone].source
    hours = run.gpu_hours()
    wall = hours / GPUS
    per_gpu = per_rank_batch(run.batch, GPUS)  # fails here for a batch the GPUs do not divide
    unidet = run.schedule.recipe == "unidet"
    inputs = (f"shorter side {min(UNIDET_MIN_SIZES)}-{max(UNIDET_MIN_SIZES)} px, SGD: UniDet's schedule and recipe"
              if unidet else f"{TRAIN_SIZE[run.backbone]} px), Table C schedule")
    lines = [
        f"# {table}: {run.method} on {run.name} ({run.backbone}, {inputs}{')' if unidet else ''}.",
        "# Written by benchmarks/make_scaledet_sweeps.py; edit that script, not this file.",
        (f"# GPU budget: {run.steps:,} iterations x {run.batch} images / {rate:.2f} images/s/GPU "
         f"= {hours:,.1f} GPU-hours ({wall:,.1f} h on {GPUS} GPUs)"),
        (f"#   data.batch_size {run.batch} is the global batch: {per_gpu} images per GPU per step on the "
         f"{GPUS} tasks below"),
        f"#   rate: {source}" + (" (at 640 px: larger inputs run slower, so approximate)" if unidet else ""),
        f"# pretrain job id: {run.spec().job_id} (checkpoints in <runs root>/{run.spec().job_id}/checkpoints/)",
        "# Evaluation on the four upstream val sets (COCO AP for C and O365, LVIS federated AP, OpenImages",
        (f"# AP50 over the expanded hierarchy) is the pretrain work's; text_encoder {run.schedule.text_encoder}"
         + ENCODER_NOTES.get(run.schedule.text_encoder, ".")),
        (f"# Backbone weights: {run.schedule.weights}" + WEIGHT_NOTES.get(run.schedule.weights, ".") if not run.start
         else "# Backbone weights: the starting checkpoint's (below)."),
        f"# Detector: {run.schedule.detector}" + DETECTOR_NOTES.get(run.schedule.detector, "."),
        *(["# Recipe: UniDet's (harness.plan.suite_settings.RECIPES['unidet']), paper Table 3: SGD, detectron2's",
           "# standard augmentation, ImageNet-1k backbone."] if unidet else []),
        *([f"# Starts from pretrain job {run.start.spec().job_id} (its sweep file is {_stem_of(run.start)}.yaml): its",
           "# checkpoint <runs root>/<pretrain_job>/checkpoints/last.pt, trained further on this dataset alone."]
          if run.start else []),
        f"sweep: {_sweep_name(stem)}",
        f"title: {_yaml(_title(stem, table, f'{run.method} on {run.name} ({run.backbone}, {run.schedule.text_encoder})'))}",
        "suite: upstream",
        f"datasets: [{', '.join(run.datasets)}]",
        "modes: [pretrain]",
        f"methods: [{run.method}]",
        f"seeds: [{SEED}]",
        "overrides:",
        *[f"  {key}: {_yaml(value)}" for key, value in sorted(run.overrides().items())],
        "executor: slurm",
        "workload: scaledet",
        f"resources: {{nodes: 1, gpus_per_node: {GPUS}, ntasks_per_node: {GPUS}, cpus_per_task: 8, time: 1440}}",
        "# time is 24 h per allocation: longer runs are requeued and resume from their last checkpoint.",
    ]
    return "\n".join(lines) + "\n"


def transfer_sweep(stem: str, source: Pretrain, modes: tuple[str, ...]) -> SweepFile:
    """The transfer sweep from ``source``'s checkpoint, named by its pretrain job id (``pretrain_job``: found
    under whatever runs root the sweep runs with) and upstream label, as a staged sweep's transfer cells are."""
    overrides = {**start_overrides(source.datasets, source.spec().job_id), "model.backbone": source.backbone}
    return SweepFile(suite="odinw13", datasets=ODINW13, modes=modes, methods=("scaledet",), seeds=(SEED,),
                     split_policy="glip", overrides=tuple(sorted(overrides.items())), executor="slurm",
                     workload="scaledet", resources=TRANSFER_RESOURCES, sweep=_sweep_name(stem))


def transfer_file(stem: str, source: Pretrain, modes: tuple[str, ...], table: str) -> str:
    sweep = transfer_sweep(stem, source, modes)
    specs = sweep.plan()
    estimates = budget.estimate_cells(specs)
    rate = RATES[source.backbone].images_per_second
    hours = sum(estimates[s.job_id].hours for s in specs)
    finetune = [s for s in specs if s.mode == "finetune"]
    batch = {s.override("data.batch_size") for s in finetune}
    steps = sum(estimates[s.job_id].steps for s in finetune)
    job = source.spec().job_id
    resources = TRANSFER_RESOURCES
    what = f"{' and '.join(modes)} transfer from {source.method} {source.name} ({source.backbone})"
    lines = [
        f"# {table}: {' and '.join(modes)} transfer to ODinW-13 from {source.method} {source.name} ({source.backbone}).",
        "# Written by benchmarks/make_scaledet_sweeps.py; edit that script, not this file.",
        f"# GPU budget: evaluation {ODINW_EVAL_IMAGES:,} images x {len(modes)} mode(s) / {rate:.2f} images/s/GPU"
        + (f" + finetune {FINETUNE_EPOCHS} epochs of {ODINW_TRAIN_IMAGES:,} train images at batch {batch.pop()} "
           f"({steps:,} steps over the 13 datasets)" if finetune else "")
        + f" = {hours:,.1f} GPU-hours (training rate used for evaluation too: approximate)",
        f"# Starts from the pretrain job {job} (its sweep file is {_stem_of(source)}.yaml): its checkpoint",
        "# <runs root>/<pretrain_job>/checkpoints/last.pt, its detector and text encoder (recorded in the checkpoint).",
        f"sweep: {sweep.sweep}",
        f"title: {_yaml(_title(stem, table, what))}",
        "suite: odinw13",
        f"datasets: [{', '.join(ODINW13)}]",
        f"modes: [{', '.join(modes)}]",
        "methods: [scaledet]",
        f"seeds: [{SEED}]",
        "split_policy: glip",
        "overrides:",
        *[f"  {key}: {_yaml(value)}" for key, value in sweep.overrides],
        "executor: slurm",
        "workload: scaledet",
        (f"resources: {{nodes: {resources.nodes}, gpus_per_node: {resources.gpus_per_node}, ntasks_per_node: "
         f"{resources.ntasks_per_node}, cpus_per_task: {resources.cpus_per_task}, time: {resources.time}}}"),
    ]
    return "\n".join(lines) + "\n"


# The other tables a run serves (its cells have the same job ids there): the sweep's title says so.
ALSO = {
    "table1_scaledet_L+C": "Table 4, Table 8a (L_hl+L_sl)",
    "table1_scaledet_L+C+O365": "Table 4",
    "table1_scaledet_L+C+O365+OID": "Table 2 (R, CLIP), Table 4, Table 7 (ScaleDet-R), Table 8a (L_hl+L_sl)",
    "table7_pretrain_swin-t": "Table 2 (T, CLIP)",
    "table7_pretrain_swin-b": "Table 2 (B, CLIP)",
    "table2_pretrain_swin-b_openclip": "Table A (ScaleDet-B)",
    **{f"{STAR_FILE}_{name}": "Table A (ScaleDet-B*)" for name in TABLE2_STAR},
}


def _title(stem: str, table: str, what: str) -> str:
    return f"{table}" + (f"; also {ALSO[stem]}" if stem in ALSO else "") + f": {what}"


def _sweep_name(stem: str) -> str:
    return stem.replace("_", "-").replace("+", "-").lower()


def _stem_of(run: Pretrain) -> str:
    return next(stem for table in (TABLE1, TABLE8, TABLE7, TABLE2) for stem, r in table.items() if r == run)


def _yaml(value: object) -> str:
    """``value`` as YAML that reads back as the same value (a job id of digits stays a string)."""
    if isinstance(value, tuple):
        return f"[{', '.join(_yaml(v) for v in value)}]"
    if value is None:
        return "null"
    return json.dumps(value) if isinstance(value, str) and yaml.safe_load(value) != value else str(value)


def all_files() -> dict[str, str]:
    """File name -> content of every sweep file."""
    files = {f"{stem}.yaml": pretrain_file(stem, run, "Table 1") for stem, run in TABLE1.items()}
    files.update({f"{stem}.yaml": pretrain_file(stem, run, "Table 8a") for stem, run in TABLE8.items()})
    files.update({f"{stem}.yaml": pretrain_file(stem, run, "Table 7") for stem, run in TABLE7.items()})
    for stem, run in (("table8b_direct_hard_L+C", TABLE8["table8_hard_L+C"]),
                      ("table8b_direct_L+C", TABLE1["table1_scaledet_L+C"]),
                      ("table8b_direct_hard_L+C+O365+OID", TABLE8["table8_hard_L+C+O365+OID"])):
        files[f"{stem}.yaml"] = transfer_file(stem, run, ("direct",), "Table 8b")
    for stem, run in (("table7_transfer_r50", TABLE1["table1_scaledet_L+C+O365+OID"]),
                      ("table7_transfer_swin-t", TABLE7["table7_pretrain_swin-t"]),
                      ("table7_transfer_swin-b", TABLE7["table7_pretrain_swin-b"])):
        files[f"{stem}.yaml"] = transfer_file(stem, run, ("direct", "finetune"), "Table 7 (and Table 8b, L_hl+L_sl)")
    files.update({f"{stem}.yaml": pretrain_file(stem, run, "Table 2") for stem, run in TABLE2.items()})
    files[f"{STAR_FILE}.yaml"] = star_file()
    files.update({f"{stem}.yaml": pretrain_file(stem, run, f"Table 3 ({'single' if len(run.datasets) == 1 else 'multiple'}, "
                                                              "UniDet's setting)") for stem, run in TABLE3.items()})
    return files


def star_file() -> str:
    """Table 2's B* row: ScaleDet-B OpenCLIP trained further on each upstream dataset, one document each."""
    hours = sum(run.gpu_hours() for run in TABLE2_STAR.values())
    head = [
        "# Table 2, row B*: ScaleDet-B (OpenCLIP) further fine-tuned on each upstream dataset after multi-dataset",
        "# training, one YAML document per dataset on its Table C schedule; each is scored on all four (its own",
        "# dataset's AP is the row's cell). Runs after table2_pretrain_swin-b_openclip.yaml, whose checkpoint it reads.",
        "# Written by benchmarks/make_scaledet_sweeps.py; edit that script, not this file.",
        f"# GPU budget: {hours:,.1f} GPU-hours in all (each document's header gives its own)",
    ]
    docs = [pretrain_file(f"{STAR_FILE}_{name}", run, "Table 2 (B*)") for name, run in TABLE2_STAR.items()]
    return "\n".join(head) + "\n" + "".join(f"---\n{doc}" for doc in docs)


def table1_file() -> str:
    """``benchmarks/scaledet_table1.yaml``: Table 1's seven files and Table 8a's two L_hl files as the documents of
    one sweep file (Table 8a's L_hl+L_sl rows are Table 1's ScaleDet runs)."""
    runs = [*((stem, run, "Table 1") for stem, run in TABLE1.items()),
            *((stem, run, "Table 8a") for stem, run in TABLE8.items())]
    hours = sum(run.gpu_hours() for _, run, _ in runs)
    head = [
        "# The paper's upstream tables, whole: Table 1 (baselines on L, C, O365, OID; ScaleDet on L+C, L+C+O365,",
        "# L+C+O365+OID) and Table 8a's L_hl runs on L+C and L+C+O365+OID (its L_hl+L_sl rows are Table 1's ScaleDet",
        "# runs), R50, Table C schedules; one YAML document per schedule: benchmarks/scaledet_sweeps/table1_*.yaml and",
        "# table8_hard_*.yaml joined. Every model is scored on all four upstream datasets (Table 1's grid).",
        "# Written by benchmarks/make_scaledet_sweeps.py; edit that script, not this file.",
        f"# GPU budget: {hours:,.1f} GPU-hours in all (each document's header gives its own; rates: harness/workloads/scaledet/budget.py)",
        "#   harness sweep benchmarks/scaledet_table1.yaml --dry-run   # the grid and GPU-hour estimate; runs nothing",
        "#   harness sweep benchmarks/scaledet_table1.yaml --rehearse  # every cell at toy scale on CPU, report included",
        f"#   harness sweep benchmarks/scaledet_table1.yaml             # runs the {len(runs)} sweeps in this order",
    ]
    docs = [pretrain_file(stem, run, table) for stem, run, table in runs]
    return "\n".join(head) + "\n" + "".join(f"---\n{doc}" for doc in docs)


def budget_summary() -> list[tuple[str, float]]:
    """(table, GPU-hours of its pretraining runs, each counted once across tables)."""
    seen: set[str] = set()
    rows = []
    for table, runs in (("Table 1", TABLE1), ("Table 8a (L_hl runs)", TABLE8), ("Table 7 (Swin-T/B)", TABLE7),
                        ("Table 2 (OpenCLIP)", TABLE2), ("Table 2 (B*)", TABLE2_STAR), ("Table 3 (UniDet's setting)", TABLE3)):
        new = [r for r in runs.values() if r.spec().job_id not in seen]
        seen.update(r.spec().job_id for r in new)
        rows.append((table, sum(r.gpu_hours() for r in new)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table1", type=Path, default=TABLE1_FILE, help="where the whole-Table-1 file goes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in all_files().items():
        (args.out / name).write_text(text)
    args.table1.write_text(table1_file())
    for table, hours in budget_summary():
        log.info("%s: %.0f GPU-hours", table, hours)
    log.info("wrote %d files to %s, and %s", len(all_files()), args.out, args.table1)


if __name__ == "__main__":
    main()
