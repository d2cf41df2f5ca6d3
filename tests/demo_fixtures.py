"""One run of the README's main command, `harness run --suite demo`, shared by every test that needs the real
workload's results (the workload, report and SLURM tests).

CI runs that command before pytest, as a newcomer does, and passes its folder as ``SCALEDET_DEMO_DIR``: the
tests read its records, checkpoints and report instead of training again. Without the variable the first test
that asks runs the command itself (about 3.5 min on 2 CPU cores), once per session.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest

from harness.cli import main
from harness.run.results import ResultRecord, iter_records, result_path

DEMO_DIR_ENV = "SCALEDET_DEMO_DIR"
DEMO_COMMAND = ["run", "--suite", "demo"]  # the README's main command, run in the demo's folder
DEMO_CELLS = 5  # pretrain on the three upstream datasets, then direct + finetune on Mushrooms and Raccoon


@dataclass(frozen=True)
class DemoRun:
    """The folder of a finished `harness run --suite demo` (its default roots) and what it wrote."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def report_dir(self) -> Path:
        return self.root / "reports" / "demo"

    @cached_property
    def records(self) -> list[ResultRecord]:
        return list(iter_records(self.results))

    @property
    def sweep(self) -> str:
        return self.pretrain.sweep

    @property
    def pretrain(self) -> ResultRecord:
        (record,) = [r for r in self.records if r.spec["mode"] == "pretrain"]
        return record

    @property
    def checkpoint(self) -> Path:
        return self.runs / self.pretrain.job_id / "checkpoints" / "last.pt"

    def cell(self, mode: str, dataset: str) -> ResultRecord:
        (record,) = [r for r in self.records if r.spec["mode"] == mode and r.spec["dataset"] == dataset]
        return record

    def fork(self, dest: Path, share_runs: bool = False) -> tuple[Path, Path]:
        """(results root, runs root) under ``dest`` holding the demo's pretrain cell (its record and last
        checkpoint) and nothing else, so that `harness run --sweep <the demo's>` there finds the pretrain cell
        done and computes the transfer cells afresh. ``share_runs`` keeps the demo's own runs root (the new cells'
        run folders land beside the demo's: only for cells the demo did not run)."""
        results = dest / "results"
        record = result_path(self.results, self.sweep, self.pretrain.job_id)
        (results / self.sweep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(record, results / self.sweep / record.name)
        if share_runs:
            return results, self.runs
        runs = dest / "runs"
        (runs / self.pretrain.job_id / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.checkpoint.resolve(), runs / self.pretrain.job_id / "checkpoints" / "last.pt")
        return results, runs


def _run_demo(root: Path) -> None:
    here = Path.cwd()
    os.chdir(root)
    try:
        code = main(DEMO_COMMAND)
    finally:
        os.chdir(here)
    assert code == 0, f"`harness {' '.join(DEMO_COMMAND)}` in {root} exited {code}"


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> DemoRun:
    """The demo's results: CI's own run (``SCALEDET_DEMO_DIR``) or one run here."""
    given = os.environ.get(DEMO_DIR_ENV)
    if given:
        run = DemoRun(Path(given))
        if len(run.records) != DEMO_CELLS:
            pytest.fail(f"{DEMO_DIR_ENV}={given}: expected the {DEMO_CELLS} records of `harness "
                        f"{' '.join(DEMO_COMMAND)}` under {run.results}, found {len(run.records)}")
        return run
    root = tmp_path_factory.mktemp("demo")
    _run_demo(root)
    return DemoRun(root)
