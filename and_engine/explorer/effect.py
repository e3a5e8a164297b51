"""Effect on the output of one neuron: zero it (or scale it) in the forward pass and measure, on the held-out
clips, every class's mean logit change and the accuracy: the output-side explanation next to the input-side one.

It runs on the live pruning target (``live.load_pruning_target``: the build's model, its held-out clips, and the
pruning engine with their front-end features and unpruned logits computed once): zeroing is the engine's
pruning (``engine.logits``), scaling an edit of the layer's output (``engine.edited_logits``), both in this
call's forward pass only, never in the shared model's weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class NeuronEffect:
    """One neuron zeroed (``scale`` 0) or scaled, on ``n_clips`` held-out clips."""

    scale: float
    per_class: pd.DataFrame  # class_name, mean_change, own_change, n_clips (see neuron_effect)
    accuracy_before: float
    accuracy_after: float
    n_flipped: int  # held-out clips whose predicted class changes
    n_clips: int
    why_unchanged: str = ""  # when every logit changes by exactly 0 and the model can show why: that reason


def scaled_unit(spec, neuron: int, scale: float):
    """An edit for ``engine.edited_logits``: the layer's output with unit ``neuron`` multiplied by ``scale`` (a pure
    function: the engine's worker threads may call it at once)."""
    from and_engine.models.base import ModelError, unit_axis

    if not 0 <= neuron < spec.n_neurons:
        raise ModelError(f"layer {spec.name!r}: neuron {neuron} out of range (0..{spec.n_neurons - 1})")
    axis = unit_axis(spec)

    def fn(y):
        factor = y.new_ones(spec.n_neurons)
        factor[neuron] = scale
        shape = [1] * y.ndim
        shape[axis] = spec.n_neurons
        return y * factor.view(shape)

    return fn


def neuron_effect(target, layer: str, neuron: int, scale: float = 0.0) -> NeuronEffect:
    """A ``live.PruningTarget`` + one neuron -> its NeuronEffect when its output is multiplied by ``scale`` (0 =
    zeroed, as pruning does; 2 = doubled). Per class of the model: ``mean_change``, the mean change of that class's
    logit over every held-out clip; ``own_change``, over the class's own held-out clips only (the true-class logit
    change of Figure 10, NaN for a class without one); ``n_clips``, the class's held-out clips. When no logit
    changes at all, ``why_unchanged`` says why where the model can show it (``TargetModel.why_unchanged``)."""
    from and_engine.analyses.pruning import pruning_result  # lazy: the engine imports torch

    scale = float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {scale}")
    before = np.asarray(target.baseline_logits, dtype=np.float64)
    if scale == 0.0:
        after = target.engine.logits([{layer: [int(neuron)]}])[0]
    else:
        after = target.engine.edited_logits([{layer: scaled_unit(target.model.layer(layer), int(neuron), scale)}])[0]
    after = np.asarray(after, dtype=np.float64)
    res = pruning_result(before, after, target.labels, 1)
    names = list(target.model.class_names)
    per_class = pd.DataFrame({"class_name": names, "mean_change": (after - before).mean(axis=0),
                              "own_change": res.per_class_delta,
                              "n_clips": np.bincount(target.labels, minlength=len(names))})
    why = ""
    if np.array_equal(after, before) and target.model.why_unchanged is not None:
        reason = target.model.why_unchanged(layer, int(neuron), target.engine.features)
        why = f"Every logit changes by exactly 0 on the held-out clips: {reason}" if reason else ""
    return NeuronEffect(scale, per_class, res.accuracy_before, res.accuracy_after,
                        int(np.sum(before.argmax(1) != after.argmax(1))), len(before), why)
