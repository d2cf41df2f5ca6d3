"""The local SLURM cluster for tests marked `slurm` (started by `scripts/slurm-local.sh start`, as in CI)."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def _probe() -> str | None:
    """None when the cluster answers with an idle node and accounting on, else the reason it does not."""
    if shutil.which("sinfo") is None:
        return "SLURM client commands not installed (run scripts/slurm-local.sh install && start)"
    try:
        nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=20, check=False)
        sacct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return f"SLURM not answering ({error}); run scripts/slurm-local.sh start"
    if nodes.returncode != 0 or not {"idle", "mix", "alloc"} & set(nodes.stdout.split()):
        return f"no usable SLURM node (sinfo: {(nodes.stdout + nodes.stderr).strip()[:200]}); run scripts/slurm-local.sh start"
    if sacct.returncode != 0 or "accounting storage is disabled" in sacct.stdout + sacct.stderr:
        return f"SLURM accounting unavailable ({sacct.stderr.strip()[:200]}); run scripts/slurm-local.sh start"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    reason = _probe()
    if reason:
        pytest.skip(f"local SLURM cluster not up: {reason}")


def sacct_field(job_id: str, field: str) -> list[str]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-D", "-o", field, "-j", job_id], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]
