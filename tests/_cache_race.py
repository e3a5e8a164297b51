"""One of two builds racing for the same trained-variant checkpoint in a shared ``run.cache_dir``.

Usage: python tests/_cache_race.py PROBING_FOLDER CACHE_DIR GO_FILE — says it is ready (``ready-<pid>``
beside GO_FILE), waits until GO_FILE exists (so both processes start together), then asks
``load_target_model`` for a ``yamnet-frozen`` variant whose training is replaced by a slow stand-in that
writes its own process id into each file it saves and into the meta (with a pause between two files, where
the old fixed ``<key>.tmp`` folder let the other build interfere). Prints one JSON line: {"trained": bool,
"weights", "extra", "meta": the pid each holds, "checkpoint": path}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from and_engine.config import Config, ModelConfig, ProbingSetConfig, RunConfig
from and_engine.models import registry, training
from and_engine.probing import open_probing_set

folder, cache, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
trained = False


def slow_train(model_cfg, params, waves, labels, classes, seconds, device="cpu"):
    global trained
    trained = True

    def save(path: Path) -> None:
        (path / "weights.pt").write_text(str(os.getpid()))
        time.sleep(1.0)  # the other build's moment to interfere
        (path / "extra.bin").write_text(str(os.getpid()))
    return SimpleNamespace(description=f"trained by {os.getpid()}"), save


def load_cached(model_cfg, path, meta, seconds):
    return SimpleNamespace(weights=(path / "weights.pt").read_text(), description=meta["description"])


registry._train = slow_train
registry._load_cached = load_cached
training.heldout_accuracy = lambda target, waves, labels: 0.5
config = Config(run=RunConfig(cache_dir=cache), probing_set=ProbingSetConfig(kind="folder", path=str(folder)))
ps = open_probing_set(config.probing_set, folder)
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
target, info = registry.load_target_model(ModelConfig(name="m", kind="yamnet-frozen"), config, ps,
                                          lambda sr: np.zeros((len(ps.clips), 16000), np.float32))
path = Path(info["checkpoint"])
print(json.dumps({"trained": trained, "weights": (path / "weights.pt").read_text(),
                  "extra": (path / "extra.bin").read_text(), "meta": info["description"].split()[-1],
                  "checkpoint": str(path)}))
