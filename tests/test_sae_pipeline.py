"""The SAE stage on the tiny pipeline: an SAE layer is built like any layer, deterministically for a seed,
skipped when unchanged, resumed after a crash, and every later stage takes its latents like neurons."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _tiny import SMALL_SAE_TOML, write_config

from and_engine.config import load_config
from and_engine.pipeline import steps_models
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.pipeline.status import step_states
from and_engine.store.results import ResultsStore

BODY = """
[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block2.pointwise"]
sae_layers = ["block2.pointwise"]

""" + SMALL_SAE_TOML + """
[summaries.llm]
backend = "rule"

[analyses]
n_clusters = 4
elbow_max_k = 6
"""
SAE = "block2.pointwise.sae"
SAE_STEP = f"sae layer={SAE} model=yamnet"


def _config(folder, cache=None):
    config = load_config(write_config(folder, BODY, max_clips=26, cache=cache))
    return dataclasses.replace(config, probing_set=dataclasses.replace(config.probing_set, clip_seconds=1.0))


def _tables(config):
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        return (store.read("sae_metrics"), store.read("layers", order_by=["layer_index", "layer"]),
                store.read_activations("yamnet", SAE), store.read("activation_maps", model="yamnet", layer=SAE))


def test_an_sae_layer_is_built_deterministically_and_skipped_when_unchanged(tmp_path):
    config = _config(tmp_path / "a")
    first = build(config, Progress(quiet=True), until="models")
    assert SAE_STEP in first.executed and f"activations layer={SAE} model=yamnet" in first.executed
    metrics, layers, acts, maps = _tables(config)
    assert layers[["layer", "kind", "n_neurons"]].values.tolist() == [["block2.pointwise", "conv", 64],
                                                                      [SAE, "sae", 128]]
    row = metrics.iloc[0]
    assert (row["source_layer"], row["n_inputs"], row["n_latents"], row["k"]) == ("block2.pointwise", 64, 128, 8)
    assert 0 < row["fve_typical"] <= 1 and 0 < row["l0"] <= 8 and row["n_vectors"] > 1000
    assert acts.shape == (26, 128) and (acts >= 0).all()
    assert len(maps) == 128 * 5 and set(maps["n_freq"]) == {layers.iloc[0]["map_freq"]}
    assert build(config, Progress(quiet=True), until="models").executed == []  # unchanged: skipped
    other = _config(tmp_path / "b")  # another database and an empty SAE cache: trained again, the same
    again = build(other, Progress(quiet=True), until="models")
    assert SAE_STEP in again.executed
    metrics2, _, acts2, _ = _tables(other)
    same = ["fve", "fve_typical", "fve_heldout", "l0", "n_dead", "n_dense", "n_vectors", "n_outliers"]
    assert metrics2[same].equals(metrics[same]) and metrics2["checkpoint"][0] != row["checkpoint"]
    assert np.array_equal(acts2, acts)


def test_an_interrupted_build_resumes_with_the_cached_sae(tmp_path, monkeypatch):
    config = _config(tmp_path / "a")
    real = steps_models.record_activations

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the first forward pass, after the sae step committed

    monkeypatch.setattr(steps_models, "record_activations", crash)
    with pytest.raises(KeyboardInterrupt):
        build(config, Progress(quiet=True), until="models")
    monkeypatch.setattr(steps_models, "record_activations", real)
    progress = Progress(quiet=True)
    resumed = build(config, progress, until="models")
    assert SAE_STEP not in resumed.executed and f"activations layer={SAE} model=yamnet" in resumed.executed
    assert not any("collecting vectors" in m for m in progress.messages)  # loaded from the cache, not retrained
    assert _tables(config)[2].shape == (26, 128)


def test_every_later_stage_takes_the_sae_latents_like_neurons(tmp_path):
    config = _config(tmp_path / "a")
    build(config, Progress(quiet=True))
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        for table in ("extremes", "summaries", "closed_concepts", "calibrated_summaries", "open_concepts",
                      "pos_counts"):
            rows = store.read(table, model="yamnet", layer=SAE)
            assert not rows.empty, table
            assert set(rows["neuron"]) <= set(range(128)), table
        interp = store.read("interpretability", model="yamnet", tau=3).set_index("layer")["n_neurons"]
        acts = store.read_activations("yamnet", SAE)
        assert interp.to_dict() == {"block2.pointwise": 64, SAE: int((acts.max(0) > acts.min(0)).sum())}
        steps, layers = store.read("steps"), store.read("layers")
    states, _ = step_states(config, steps, layers)
    assert set(states["state"]) == {"up to date"}
    fewer = dataclasses.replace(config, models=(dataclasses.replace(config.models[0], sae_layers=()),))
    states, _ = step_states(fewer, steps, layers)
    removed = states.loc[states["state"] == "removed", "scope"]
    assert set(removed) == {f"layer={SAE}/model=yamnet"}
    raw = states[states["scope"] == "layer=block2.pointwise/model=yamnet"]
    assert set(raw.loc[raw["state"] == "up to date", "stage"]) >= {"activations", "extremes", "summaries", "module_a"}


def test_plan_counts_the_sae_latents_before_a_build(tmp_path):
    from and_engine.pipeline.plan import make_plan

    plan = make_plan(_config(tmp_path / "a"), None)
    assert plan.models[0].layers == {"block2.pointwise": 64, SAE: 128}
    assert {("sae", f"layer={SAE}/model=yamnet"), ("activations", f"layer={SAE}/model=yamnet")} <= set(
        zip(plan.states["stage"], plan.states["scope"]))
