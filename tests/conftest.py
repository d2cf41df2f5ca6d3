"""Test-wide settings. Tests run offline: hub clients must fail fast instead of retrying a network. Under
``CI=true`` a skipped test is a failure (the ``ci_skips`` plugin)."""

import os
import tempfile

import pytest
import torch

pytest_plugins = ["ci_skips"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# keep caches written by tests out of the user's cache directory
os.environ.setdefault("SCALEDET_CACHE", tempfile.mkdtemp(prefix="scaledet-test-cache-"))

# the README's main command, run once per session (or CI's own run of it: SCALEDET_DEMO_DIR)
from demo_fixtures import demo  # noqa: F401

# fixtures shared by the GLIP-mirror download tests (the real Mushrooms zip, a local server per test)
from download_fixtures import mushrooms_zip, server  # noqa: F401

# tiny randomly initialised models of every external (transformers) adapter family, saved once per session
from hf_fixtures import tiny_models  # noqa: F401


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread while a module's tests run (``pytestmark = pytest.mark.usefixtures("one_thread")``): the
    test machine has 2 shared cores, and threads fighting other jobs made small models' passes and training steps
    up to ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
