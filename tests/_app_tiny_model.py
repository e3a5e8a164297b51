"""``tinynet``: the app fixture's target model, a tiny randomly initialised TargetModel over six demo classes.

Layers: ``block1.conv`` (Conv2d, 8 channels, 4 x 10 maps), ``block2.fc`` (Linear, 12), ``classifier``
(Linear, one per class). Input: 5 s at 16 kHz -> (n, 1, 16 bands, 50 frames) log energies. The fixture
database's Table 4 / Figure 4 prune it; ``patch_model_loader(monkeypatch)`` makes
``models.registry.load_target_model`` return it, so live pruning runs for real in well under a second.
"""

from __future__ import annotations

import numpy as np
import torch

from and_engine.models.base import LayerSpec, TargetModel

MODEL = "tinynet"
CLASSES = ["chirping_birds", "church_bells", "cow", "crackling_fire", "door", "engine"]
SAMPLE_RATE = 16000


def _features(waveforms: np.ndarray) -> torch.Tensor:
    """(n, 80000) -> (n, 1, 16, 50): log energy of 16 FFT bands in 50 frames."""
    w = np.asarray(waveforms, dtype=np.float32)
    frames = w[:, : 50 * 1600].reshape(len(w), 50, 1600)
    spec = np.abs(np.fft.rfft(frames, axis=2))[:, :, :800].reshape(len(w), 50, 16, 50).mean(axis=3)
    return torch.from_numpy(np.log1p(spec).transpose(0, 2, 1)[:, None].astype(np.float32))


def tiny_target_model(seed: int = 0) -> TargetModel:
    """-> the fixture's ``tinynet`` as a real (random) TargetModel."""
    torch.manual_seed(seed)
    module = torch.nn.Sequential()
    module.add_module("block1", torch.nn.Sequential())
    module.block1.add_module("conv", torch.nn.Conv2d(1, 8, 3, padding=1))
    module.add_module("act1", torch.nn.ReLU())
    module.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    module.add_module("flat", torch.nn.Flatten())
    module.add_module("block2", torch.nn.Sequential())
    module.block2.add_module("fc", torch.nn.Linear(8, 12))
    module.add_module("act2", torch.nn.ReLU())
    module.add_module("classifier", torch.nn.Linear(12, len(CLASSES)))
    specs = [LayerSpec("block1.conv", "block1.conv", "conv", 0, 8, 4, 10),
             LayerSpec("block2.fc", "block2.fc", "linear", 1, 12),
             LayerSpec("classifier", "classifier", "classifier", 2, len(CLASSES))]
    return TargetModel(MODEL, "tiny-test", SAMPLE_RATE, list(CLASSES), module.eval(), specs, _features,
                       description="tiny random test network")


def patch_model_loader(monkeypatch) -> list:
    """Make the registry load the tiny model; -> list collecting the names it was asked for."""
    import and_engine.models.registry as registry

    calls: list = []

    def load(model_cfg, config, probing_set, waveforms_fn, progress=None):
        calls.append(model_cfg.name)
        return tiny_target_model(), {"checkpoint": "", "description": "tiny"}

    monkeypatch.setattr(registry, "load_target_model", load)
    return calls
