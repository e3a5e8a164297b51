"""Effect on the output of one neuron (explorer/effect.py) on the pruning engine: zeroed or scaled by a mask in
the forward pass, against the same change made by hand to a copy of the model."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from _app_tiny_model import CLASSES, tiny_target_model

from and_engine.analyses.pruning_engine import PruningEngine
from and_engine.explorer import effect
from and_engine.explorer.live import PruningTarget


def _target(seed: int = 0) -> PruningTarget:
    rng = np.random.default_rng(seed)
    waves = (0.1 * rng.normal(size=(12, 80000))).astype(np.float32)
    waves[:, :4000] *= np.linspace(0, 20, 12, dtype=np.float32)[:, None]  # clips that differ in loudness
    labels = np.arange(12) % len(CLASSES)
    model = tiny_target_model()
    return PruningTarget(model, waves, labels, pd.DataFrame({"clip_id": range(12)}), PruningEngine(model, waves))


def _by_hand(target: PruningTarget, layer: str, neuron: int, scale: float) -> np.ndarray:
    """Logits of a deep copy whose unit ``neuron`` of ``layer`` has its weight row and bias multiplied."""
    model = copy.deepcopy(target.model)
    module = model.module.get_submodule(layer)
    with torch.no_grad():
        module.weight[neuron] *= scale
        module.bias[neuron] *= scale
    return np.asarray(model.logits(target.waveforms), dtype=np.float64)


@pytest.mark.parametrize("layer, neuron, scale", [("block2.fc", 4, 0.0), ("block2.fc", 4, 3.0),
                                                  ("block1.conv", 2, 0.0), ("block1.conv", 2, 2.0)])
def test_zeroed_or_scaled_equals_the_same_change_by_hand(layer, neuron, scale):
    target = _target()
    before = target.baseline_logits.copy()
    eff = effect.neuron_effect(target, layer, neuron, scale)
    after = _by_hand(target, layer, neuron, scale)
    assert np.allclose(eff.per_class["mean_change"], (after - before).mean(axis=0), atol=1e-5)
    own = [(after - before)[target.labels == c, c].mean() for c in range(len(CLASSES))]
    assert np.allclose(eff.per_class["own_change"], own, atol=1e-5)
    assert eff.per_class["n_clips"].tolist() == [2] * len(CLASSES) and eff.n_clips == 12
    assert eff.accuracy_before == pytest.approx(np.mean(before.argmax(1) == target.labels))
    assert eff.accuracy_after == pytest.approx(np.mean(after.argmax(1) == target.labels))
    assert eff.n_flipped == int(np.sum(before.argmax(1) != after.argmax(1)))
    assert np.array_equal(target.model.logits(target.waveforms), before.astype(np.float32))  # shared model untouched
    assert np.abs(eff.per_class["mean_change"]).max() > 0


def test_a_scale_of_one_changes_nothing_and_bad_scales_are_refused():
    target = _target()
    eff = effect.neuron_effect(target, "block2.fc", 1, 1.0)
    assert np.allclose(eff.per_class["mean_change"], 0.0, atol=1e-6) and eff.n_flipped == 0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale"):
            effect.neuron_effect(target, "block2.fc", 1, bad)
