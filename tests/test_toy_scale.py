"""What a rehearsal job's toy scale sets (harness.workloads.scaledet.scale.ToyScale.config): one checkpoint, at the
last step; predictions without workers in the batches a GPU job's ``auto`` gives, or the sweep's own."""

from __future__ import annotations

from harness.workloads.scaledet.scale import ToyScale
from scaledet.config import preset, with_overrides
from scaledet.inference import AUTO_SETTINGS


def test_toy_jobs_checkpoint_once_and_predict_in_the_real_jobs_batches():
    scale = ToyScale()
    toy = scale.config(preset("scaledet"))
    assert (toy.train.max_steps, toy.train.checkpoint_every) == (scale.steps, scale.steps)
    assert (toy.data.test_batch_size, toy.data.test_workers) == (AUTO_SETTINGS["cuda"][0], 0)
    own = scale.config(with_overrides(preset("scaledet"), ["data.test_batch_size=2", "data.test_workers=3"]))
    assert (own.data.test_batch_size, own.data.test_workers) == (2, 0)
