"""A Ray build whose worker and driver both die: ``python -m and_engine build`` on a Ray cluster, in which the
first actor to run a target model's second forward pass SIGKILLs itself (``fakes.KillOnce``; Ray retries its
batch), and the driver SIGKILLs itself inside stage STAGE's transaction (after its first table's insert,
before COMMIT, as ``_crash_build.py``). The callable classes handed to ``Dataset.map_batches`` are appended
to CLASSES, one per line.

Usage: python tests/_ray_crash_build.py CONFIG STAGE FLAG CLASSES
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import fakes
import ray.data
from ray import cloudpickle

from and_engine.cli import main
from and_engine.pipeline import steps_models

config_path, crash_stage, flag, classes = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
cloudpickle.register_pickle_by_value(fakes)
loader, map_batches = steps_models.load_target_model, ray.data.Dataset.map_batches


def load_with_a_killer(*args, **kwargs):
    target, info = loader(*args, **kwargs)
    target.preprocess = fakes.KillOnce(target.preprocess, flag, os.getpid(), after=2)
    return target, info


def recording(self, fn, *args, **kwargs):
    with classes.open("a") as f:
        f.write(getattr(fn, "__name__", type(fn).__name__) + "\n")
    return map_batches(self, fn, *args, **kwargs)


steps_models.load_target_model = load_with_a_killer
ray.data.Dataset.map_batches = recording
fakes.kill_inside_commit(crash_stage, "driver")
sys.exit(main(["build", "--config", config_path, "--quiet"]))
