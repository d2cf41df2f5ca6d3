"""Under CI=true a skip is a failure naming its reason; elsewhere a skip stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SKIPPING = '''
import pytest

def test_needs_something():
    pytest.skip("the thing is not here")

def test_fine():
    assert True
'''


@pytest.mark.parametrize(("ci", "code", "expected"), [
    ("true", 1, "skipped under CI=true (a check that did not run): Skipped: the thing is not here"),
    ("", 0, "1 passed, 1 skipped"),
])
def test_a_skip_fails_only_under_ci(tmp_path, ci, code, expected):
    (tmp_path / "test_inner.py").write_text(SKIPPING)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(Path(__file__).parent)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider", "-q",
                          "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_inner.py")],
                         check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == code, run.stdout + run.stderr
    assert expected in run.stdout, run.stdout
