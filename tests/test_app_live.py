"""Live engine functions: calibration at any threshold, model + held-out loading, live pruning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _app_tiny_model import CLASSES, patch_model_loader

from and_engine.explorer import aggregates, live, queries
from and_engine.store.results import ResultsStore

POINTS = pd.DataFrame({"point_index": [1, 0, 2], "point": ["Loud engine noise", "Cows moo.", "Outdoors!"],
                       "best_match": ["x", "y", "z"], "best_cosine": [0.71, 0.2, 0.7]})


def test_recalibrate_removes_points_above_threshold():
    marked, text = live.recalibrate(POINTS, 0.7)
    assert marked["point"].tolist() == ["Cows moo.", "Loud engine noise", "Outdoors!"]
    assert marked["removed"].tolist() == [False, True, False]  # strictly greater than t
    assert text == "Cows moo. Outdoors!"
    assert live.recalibrate(POINTS, 0.0)[1] == ""
    with pytest.raises(live.LiveError, match="threshold"):
        live.recalibrate(POINTS, 1.5)
    with pytest.raises(live.LiveError, match="best_cosine"):
        live.recalibrate(POINTS.drop(columns="best_cosine"), 0.5)


@pytest.fixture(scope="module")
def store(app_db):
    with ResultsStore(app_db, read_only=True) as s:
        yield s


@pytest.fixture
def target(store, monkeypatch):
    patch_model_loader(monkeypatch)
    return live.load_pruning_target(queries.run_config(store), "tinynet", queries.clips(store).reset_index())


def test_load_pruning_target_uses_the_heldout_fold(store, target):
    assert target.waveforms.shape == (len(target.clips), 80000)
    assert set(target.clips["fold"]) == {1} and len(target.clips) >= len(CLASSES)
    assert [CLASSES[i] for i in target.labels] == target.clips["label"].tolist()
    assert target.baseline_logits.shape == (len(target.clips), len(CLASSES))
    with pytest.raises(live.LiveError, match="not in this build"):
        live.load_pruning_target(queries.run_config(store), "nope", queries.clips(store).reset_index())


def test_heldout_clips_match_class_names_as_the_build_does(store, target, monkeypatch):
    patch_model_loader(monkeypatch)
    clips = queries.clips(store).reset_index()
    spelled = clips.assign(label=clips["label"].str.replace("_", " ").str.title())  # "Chirping Birds"
    other = live.load_pruning_target(queries.run_config(store), "tinynet", spelled)
    assert other.clips["clip_id"].tolist() == target.clips["clip_id"].tolist()
    assert other.labels.tolist() == target.labels.tolist() and other.concepts == target.concepts == CLASSES


def test_app_never_trains_a_model(store, monkeypatch):
    import and_engine.models.registry as registry

    def wants_training(model_cfg, config, probing_set, waveforms_fn, progress=None):
        return waveforms_fn(16000)

    monkeypatch.setattr(registry, "load_target_model", wants_training)
    with pytest.raises(live.LiveError, match="no cached checkpoint"):
        live.load_pruning_target(queries.run_config(store), "tinynet", queries.clips(store).reset_index())


def test_live_prune_zeroes_selected_neurons(store, target):
    closed, opened = aggregates.pruning_candidates(store, "tinynet", "cow")
    sizes = live.pruning_layers(target, queries.layers(store, "tinynet"))
    res = live.live_prune(target, "OCP", "cow", closed, opened, sizes, clip_row=1)
    assert res.neurons == {"block1.conv": [2], "block2.fc": [2, 8], "classifier": [2]}  # C_open holds "cow"
    assert res.per_layer["n_pruned"].tolist() == [1, 2, 1]
    target_row = res.per_class.set_index("class_name").loc["cow"]
    assert bool(target_row["is_target"]) and np.isclose(target_row["delta_logit"], res.delta_a)
    assert res.delta_a != 0.0 and res.delta_a_minus_r == pytest.approx(res.delta_r - res.delta_a)
    assert np.isclose(res.clip_probs[["before", "after"]].sum().to_numpy(), 1.0).all()
    off = live.live_prune(target, "OCP", "cow", closed, opened, sizes, enabled=False)
    assert off.neurons == {} and off.delta_a == 0.0 and off.accuracy_after == off.accuracy_before
    rnd = live.live_prune(target, "random", "cow", closed, opened, sizes, seed=3)
    assert sum(map(len, rnd.neurons.values())) == 4  # random prunes as many as OCP
    with pytest.raises(live.LiveError, match="not a class"):
        live.live_prune(target, "OCP", "unicorn", closed, opened, sizes)
    with pytest.raises(live.LiveError, match="clip row"):
        live.live_prune(target, "OCP", "cow", closed, opened, sizes, clip_row=999)


def test_live_pruning_ablates_sae_latents_by_concept(store, monkeypatch):
    from _app_fixture import SAE_LAYER

    patch_model_loader(monkeypatch)
    saes = aggregates.sae_checkpoints(store, "tinynet")
    assert list(saes) == ["block1.conv"]
    target = live.load_pruning_target(queries.run_config(store), "tinynet", queries.clips(store).reset_index(), saes)
    layers = queries.layers(store, "tinynet")
    assert live.pruning_layers(target, layers, sae=True) == {SAE_LAYER: 16}
    assert SAE_LAYER not in live.pruning_layers(target, layers)
    sizes = live.pruning_layers(target, layers, sae=True)
    hits = []
    for concept in target.concepts:
        closed, opened = aggregates.pruning_candidates(store, "tinynet", concept)
        res = live.live_prune(target, "OCP", concept, closed, opened, sizes)
        if res.neurons:
            hits.append(res)
    assert hits, "no concept names any SAE latent of the fixture"
    for res in hits:
        assert set(res.neurons) == {SAE_LAYER}
        assert res.accuracy_after != res.accuracy_before or not np.allclose(res.per_class["delta_logit"], 0.0)
    missing = live.load_pruning_target(queries.run_config(store), "tinynet", queries.clips(store).reset_index(),
                                       {"block1.conv": "/nonexistent/sae"})
    assert live.pruning_layers(missing, layers, sae=True) == {}  # a missing SAE folder is simply not offered


def test_live_prune_off_matches_an_empty_evaluation(store, target):
    from and_engine.analyses.pruning import evaluate_pruning

    closed, opened = aggregates.pruning_candidates(store, "tinynet", "door")
    sizes = live.pruning_layers(target, queries.layers(store, "tinynet"))
    off = live.live_prune(target, "DB", "door", closed, opened, sizes, similarity="cos", enabled=False)
    full = evaluate_pruning(target.model, target.waveforms, target.labels, {})
    assert np.allclose(off.per_class["delta_logit"], 0.0) and np.allclose(full.per_class_delta, 0.0, atol=1e-5)
    assert off.accuracy_before == off.accuracy_after == pytest.approx(full.accuracy_before)
    assert np.allclose(off.clip_probs["before"], off.clip_probs["after"])
    target.labels, saved = np.where(target.labels == CLASSES.index("door"), 0, target.labels), target.labels
    try:
        with pytest.raises(live.LiveError, match="no held-out clip"):
            live.live_prune(target, "OCP", "door", closed, opened, sizes)
    finally:
        target.labels = saved


def test_overlapping_live_sessions_never_see_each_others_units(store, target):
    """Issue 12 item 1: Streamlit sessions are threads sharing one cached model."""
    import threading

    import torch

    sizes = live.pruning_layers(target, queries.layers(store, "tinynet"))
    asks = [(c, *aggregates.pruning_candidates(store, "tinynet", c)) for c in ("cow", "door")]
    alone = {c: live.live_prune(target, "OCP", c, cl, op, sizes) for c, cl, op in asks}
    weights = {k: v.clone() for k, v in target.model.module.state_dict().items()}
    got, errors = [], []

    def session(c, cl, op):
        try:
            for _ in range(4):
                got.append((c, live.live_prune(target, "OCP", c, cl, op, sizes)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=a) for a in asks * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(got) == 16
    for c, res in got:
        assert res.neurons == alone[c].neurons
        np.testing.assert_array_equal(res.per_class["delta_logit"], alone[c].per_class["delta_logit"])
    assert all(torch.equal(v, weights[k]) for k, v in target.model.module.state_dict().items())
