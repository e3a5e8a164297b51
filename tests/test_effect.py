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


# ---------- why every logit can change by exactly 0 (YAMNet: a ReLU downstream that never opens) ----------
def _yamnet_target(edit) -> PruningTarget:
    """A randomly initialised YAMNet (3 classes, 1.5 s clips) after ``edit(net)``, on 6 noise clips."""
    from and_engine.models.yamnet import YamnetNet, make_yamnet_target

    torch.manual_seed(0)
    net = YamnetNet(3)
    with torch.no_grad():
        _open_six(net)
        edit(net)
    model = make_yamnet_target(net, "rand", "yamnet-frozen", ["a", "b", "c"], clip_seconds=1.5)
    waves = (0.1 * np.random.default_rng(0).normal(size=(6, 24000))).astype(np.float32)
    return PruningTarget(model, waves, np.arange(6) % 3, pd.DataFrame({"clip_id": range(6)}),
                         PruningEngine(model, waves))


def _open_six(net) -> None:
    """Unit 6 of block9.depthwise, block13.pointwise and block14.pointwise fires, and so does channel 6 of
    block14.depthwise, the only one that reads unit 6 of block13.pointwise: unit 6 reaches the logits."""
    for layer in ("block9.depthwise", "block13.pointwise", "block14.pointwise", "block14.depthwise"):
        net.get_submodule(layer).bias[6] = 1.0
    net.block14.depthwise.weight[6] = net.block14.depthwise.weight[6].abs() + 1.0


def _shut_gate(net, n: int = 5) -> None:
    """Channel ``n`` of block14.depthwise reads only unit ``n`` of block13.pointwise (a ReLU output, >= 0):
    weights < 0 and bias < 0 keep the ReLU after it shut whatever the unit does, which fires."""
    dw = net.block14.depthwise
    dw.weight[n] = -dw.weight[n].abs() - 1e-3
    dw.bias[n] = -0.01
    net.block13.pointwise.bias[n] = 1.0


def test_a_unit_behind_a_shut_relu_changes_nothing_and_the_effect_says_why():
    target = _yamnet_target(_shut_gate)
    layer = "block13.pointwise"
    seen = []  # the unit's own pre-ReLU output in the model's forward pass: it does fire
    hook = target.model.submodule(target.model.layer(layer)).register_forward_hook(
        lambda _m, _i, o: seen.append(o.detach()[:, 5].max()))
    target.model.logits(target.waveforms)
    hook.remove()
    assert max(seen) > 0
    eff = effect.neuron_effect(target, layer, 5, 0.0)
    assert np.array_equal(eff.per_class["mean_change"], np.zeros(3)) and eff.n_flipped == 0
    assert "block14.depthwise" in eff.why_unchanged and "never opens" in eff.why_unchanged
    assert eff.why_unchanged.startswith("Every logit changes by exactly 0")
    open_unit = effect.neuron_effect(target, layer, 6, 0.0)  # the same layer, its gate open: it matters
    assert np.abs(open_unit.per_class["mean_change"]).max() > 0 and open_unit.why_unchanged == ""


def test_relu_maxima_match_the_forward_pass():
    from and_engine.models.yamnet import relu_maxima

    target = _yamnet_target(_shut_gate)
    net, got = target.model.module, {}
    paths = [p for p, _ in net.convs()]

    def keep_max(p, o):
        top = o.detach().amax((0, 2, 3))
        got[p] = torch.maximum(got[p], top) if p in got else top

    hooks = [net.get_submodule(p).register_forward_hook(lambda _m, _i, o, p=p: keep_max(p, o)) for p in paths]
    target.model.logits(target.waveforms, batch_size=4)  # other chunks than the engine's features
    for h in hooks:
        h.remove()
    for layer, after in (("block1.conv", "block2.depthwise"), ("block4.depthwise", None),
                         ("block13.pointwise", "block14.depthwise"), ("block14.pointwise", None)):
        own, nxt = relu_maxima(net, layer, target.engine.features)
        assert torch.allclose(own, got[layer], atol=1e-5)
        assert (nxt is None) if after is None else torch.allclose(nxt, got[after], atol=1e-5)
    assert relu_maxima(net, "block13.pointwise", target.engine.features)[1][[5, 6]].sign().tolist() == [-1, 1]


@pytest.mark.parametrize("edit, layer, words", [
    (lambda net: net.block13.pointwise.bias.__setitem__(5, -1e4), "block13.pointwise", "the ReLU after it never"),
    (lambda net: net.classifier.weight[:, 5].zero_(), "block14.pointwise", "every weight of classifier"),
    (lambda net: net.block9.pointwise.weight[:, 5].zero_(), "block9.depthwise", "every weight of block9.pointwise"),
])
def test_a_dead_unit_or_an_unread_one_is_explained(edit, layer, words):
    from and_engine.models.yamnet import yamnet_why_unchanged

    target = _yamnet_target(edit)
    assert words in yamnet_why_unchanged(target.model.module, layer, 5, target.engine.features)
    assert yamnet_why_unchanged(target.model.module, layer, 6, target.engine.features) == ""
    assert yamnet_why_unchanged(target.model.module, "classifier", 0, target.engine.features) == ""
