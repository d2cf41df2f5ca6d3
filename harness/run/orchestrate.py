"""Running sweeps: their stages in waves (every pretrain stage of every sweep first, then the stages that start
from them, so a transfer file may name a pretrain job of another file), one job array a stage, waiting between
waves; cells with results are left alone, and a job id that several sweeps plan runs once."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.plan.sweepfile import SweepFile
from harness.run.launch import Submission, submit
from harness.run.results import cells_to_run, read_record, result_path, write_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchOptions:
    """Where results and runs go, how jobs are submitted, and what is re-run."""

    results_root: Path = Path("results")
    runs_root: Path = Path("runs")
    executor: str | None = None  # None: the sweep file's
    resources: Resources = field(default_factory=Resources)
    overwrite: bool = False
    retry_failed: bool = False
    no_wait: bool = False
    rehearsal: bool = False  # run each job's rehearsal work (the workload's toy-scale variant)


@dataclass
class Entry:
    """One sweep of a launch: its file (for messages), its resources, and what happened to its stages."""

    sweep: SweepFile
    where: str
    resources: Resources
    stages: list[list[JobSpec]] = field(default_factory=list)
    sweep_id: str = ""
    failed: list[str] = field(default_factory=list)
    pending: bool = False

    def __post_init__(self) -> None:
        self.stages = self.stages or self.sweep.stages()
        specs = [spec for stage in self.stages for spec in stage]
        self.sweep_id = self.sweep_id or self.sweep.sweep or default_sweep_id(self.sweep.suite, specs)

    @property
    def specs(self) -> list[JobSpec]:
        return [spec for stage in self.stages for spec in stage]


def default_sweep_id(suite: str, specs: list[JobSpec]) -> str:
    digest = hashlib.sha256(",".join(sorted(s.job_id for s in specs)).encode()).hexdigest()[:8]
    return f"{suite}-{digest}"


def stage_name(stage: list[JobSpec]) -> str:
    return "+".join(dict.fromkeys(spec.mode for spec in stage)) or "nothing"


def sweep_batches(sweep: SweepFile, resources: Resources, executor: str | None = None,
                  ) -> tuple[int, dict[str, tuple[int, int] | None]]:
    """(ranks per job, job id -> (global batch, images per rank)) of the sweep's training cells as launched with
    ``resources`` (``Workload.batches``); ``ConfigError`` naming a cell whose batch the ranks do not divide."""
    executor = executor or sweep.executor
    ranks = resources.ranks(executor)
    return ranks, sweep.work.batches(sweep.plan(), ranks, resources.ranks_source(executor))


def wave_of(stage: list[JobSpec], index: int) -> int:
    """Wave 0 holds the stages that only pretrain; every other stage runs after them."""
    return 0 if all(spec.mode == "pretrain" for spec in stage) else max(1, index)


def launch_all(entries: list[Entry], options: LaunchOptions) -> list[Entry]:
    """Submit every entry's missing cells wave by wave (see the module docstring), waiting between waves; print
    progress lines. Batches, and the data the cells to run read (``Workload.check_data``; a rehearsal stands in for
    absent data), are checked for every sweep before anything is submitted."""
    for entry in entries:
        sweep_batches(entry.sweep, entry.resources, options.executor)
        if not options.rehearsal:
            entry.sweep.work.check_data(cells_to_run(options.results_root, entry.sweep_id, entry.specs,
                                                     overwrite=options.overwrite, retry_failed=options.retry_failed))
    for entry in entries:
        print(f"{entry.where}{': ' if entry.where else ''}sweep {entry.sweep_id}: {len(entry.specs)} cells in "
              f"{len(entry.stages)} stage(s) ({' then '.join(stage_name(s) for s in entry.stages) or 'nothing'}), "
              f"executor {options.executor or entry.sweep.executor}")
    waves = sorted({wave_of(stage, i) for e in entries for i, stage in enumerate(e.stages)})
    run_by: dict[str, Entry] = {}  # job id -> the entry that runs it in this launch
    for wave in waves:
        waiting: list[tuple[Entry, Submission]] = []
        copies: list[tuple[Entry, JobSpec]] = []
        for entry in entries:
            for number, stage in enumerate(entry.stages, start=1):
                if wave_of(stage, number - 1) != wave or entry.failed:
                    continue
                fresh = [s for s in stage if run_by.setdefault(s.job_id, entry) is entry]
                copies += [(entry, s) for s in stage if run_by[s.job_id] is not entry]
                executor = options.executor or entry.sweep.executor
                submission = submit(fresh, sweep=entry.sweep_id, results_root=options.results_root,
                                    runs_root=options.runs_root, executor=executor, resources=entry.resources,
                                    workload=entry.sweep.work, overwrite=options.overwrite,
                                    retry_failed=options.retry_failed, rehearsal=options.rehearsal)
                shared = len(stage) - len(fresh)
                print(f"{entry.sweep_id} stage {number}/{len(entry.stages)} ({stage_name(stage)}): {len(stage)} cells, "
                      f"{len(submission.jobs)} submitted, {len(submission.skipped)} already there"
                      + (f", {shared} run by another sweep of this command" if shared else ""))
                waiting.append((entry, submission))
        pending = [(e, s) for e, s in waiting if s.jobs and (options.executor or e.sweep.executor) != "debug"]
        if options.no_wait and pending:
            for entry, _ in pending:
                entry.pending = True
            for entry, submission in waiting:
                if (entry, submission) not in pending:
                    entry.failed += sorted(j for j, state in submission.wait().items() if state == "failed")
            if wave != waves[-1]:
                print("the next stages need these first: run the same command again once they are done")
            return entries
        for entry, submission in waiting:
            states = submission.wait()
            entry.failed += sorted(job for job, state in states.items() if state == "failed")
        for entry, spec in copies:
            _share_record(options.results_root, run_by[spec.job_id], entry, spec)
    for entry in entries:
        done = len(entry.specs) - len(entry.failed)
        print(f"sweep {entry.sweep_id}: {done} done or already there, {len(entry.failed)} failed"
              + (f" ({', '.join(entry.failed)}; see `harness status --sweep {entry.sweep_id}`)"
                 if entry.failed else ""))
    return entries


def _share_record(results_root: Path, source: Entry, target: Entry, spec: JobSpec) -> None:
    """Copy the record of a cell that another sweep of this launch ran into ``target``'s store."""
    path = result_path(results_root, source.sweep_id, spec.job_id)
    if not path.exists():
        target.failed.append(spec.job_id)
        return
    record = read_record(path)
    write_record(results_root, replace(record, sweep=target.sweep_id))
    if record.status != "done":
        target.failed.append(spec.job_id)
