"""Trained variants and the models step group on a tiny configuration (real demo clips, 2 s each)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _models_fixtures import tiny_ast

from and_engine.config import config_from_dict
from and_engine.models import training
from and_engine.models.base import ModelError
from and_engine.models.registry import load_target_model
from and_engine.models.yamnet import YamnetNet, make_yamnet_target
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.store.results import ResultsStore


def _config(tmp_path, **models):
    return config_from_dict({
        "run": {"name": "models-test", "database": str(tmp_path / "m.duckdb"), "cache_dir": str(tmp_path / "cache")},
        "probing_set": {"kind": "demo", "path": "data/demo", "max_clips": 108, "clip_seconds": 2.0},
        "models": [{"name": "yamnet-frozen", "kind": "yamnet-frozen", "layers": ["block13.pointwise", "classifier"],
                    **models}],
        "activations": {"top_k": 3},
    })


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models_build")
    config = _config(tmp)
    first = build(config, Progress(quiet=True), until="models")
    second = build(config, Progress(quiet=True), until="models")
    return config, first, second


def test_output_neurons_topk_are_mostly_their_class(built):
    config, first, _ = built
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        models = store.read("models")
        clips = store.read("clips", ["clip_id", "label"], order_by=["clip_id"])
        ext = store.read("extremes", model="yamnet-frozen", layer="classifier", order_by=["neuron"])
        u = store.read_activations("yamnet-frozen", "classifier")
        maps = store.read("activation_maps", ["layer", "n_freq", "n_time"], model="yamnet-frozen")
        layers = store.read("layers", ["layer", "layer_index", "n_neurons"], order_by=["layer_index"])
    row = models.iloc[0]
    classes = list(row["class_names"])
    assert classes == sorted(clips["label"].unique()) and row["heldout_fold"] == 1
    assert row["n_heldout"] > 0 and 0.0 <= row["heldout_accuracy"] <= 1.0 and row["checkpoint"]
    labels = clips["label"].to_numpy()
    own = [np.mean(labels[list(ids)] == classes[n]) for n, ids in zip(ext["neuron"], ext["topk_clip_ids"], strict=True)]
    assert np.mean(own) >= 0.6, own  # top-3 clips of output neuron c: mostly clips of class c
    assert u.shape == (len(clips), len(classes))
    assert layers["layer"].tolist() == ["block13.pointwise", "classifier"]  # only the dissected layers
    assert layers["n_neurons"].tolist() == [1024, len(classes)] and layers["layer_index"].is_monotonic_increasing
    assert set(maps["layer"]) == {"block13.pointwise"} and (maps["n_freq"] == 2).all() and (maps["n_time"] == 9).all()
    assert ("extremes", (("layer", "classifier"), ("model", "yamnet-frozen"))) in first.fingerprints


def test_second_build_skips_and_loads_the_checkpoint(built, tmp_path):
    config, first, second = built
    assert not [s for s in second.executed if not s.startswith("clips")]
    assert second.fingerprints == first.fingerprints

    class NoDecode:  # a cached checkpoint must load without decoding or training anything
        def __call__(self, sr):
            raise AssertionError("checkpoint was not reused")

    from and_engine.probing import open_probing_set

    ps = open_probing_set(config.probing_set, config.resolve(config.probing_set.path))
    target, info = load_target_model(config.models[0], config, ps, NoDecode())
    assert info["checkpoint"] and target.class_names == ps.class_names


def test_unknown_kind_and_layer_are_errors(tmp_path):
    config = _config(tmp_path)  # a config file with kind "resnet" is refused when loaded; the registry also is
    resnet = dataclasses.replace(config.models[0], kind="resnet")
    with pytest.raises(ModelError, match="unknown kind"):
        load_target_model(resnet, config, None, lambda sr: None)
    from and_engine.pipeline.steps_models import selected_layers

    target = make_yamnet_target(YamnetNet(2), "r", "yamnet-frozen", ["a", "b"])
    with pytest.raises(ModelError, match="no layer"):
        selected_layers(target, ["block99.pointwise"])


def test_finetune_and_ast_training_are_deterministic():
    rng = np.random.default_rng(0)
    waves = rng.normal(0, 0.1, (6, 16000)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1])

    def finetune():
        torch.manual_seed(1)
        return training.train_yamnet_full(YamnetNet(2), waves, labels, epochs=1, lr=1e-3, seed=0, batch_size=3)

    a, b = finetune(), finetune()
    torch.manual_seed(1)
    untrained = YamnetNet(2)
    assert torch.equal(a.block14.pointwise.weight, b.block14.pointwise.weight)
    assert not torch.equal(a.block14.pointwise.weight, untrained.block14.pointwise.weight)

    def ast():
        model, fe = tiny_ast(n_labels=2, seed=3)
        return training.train_ast(model, fe, waves, labels, epochs=2, lr=1e-3, seed=0, batch_size=3)

    assert torch.equal(ast().classifier.dense.weight, ast().classifier.dense.weight)
    with pytest.raises(training.TrainingError, match="class indices"):
        training.train_linear_head(YamnetNet(2), waves, labels + 1, epochs=1, lr=0.1, seed=0)


def test_ast_scratch_checkpoint_round_trip(tmp_path):
    from and_engine.probing import open_probing_set

    tiny = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
            "num_mel_bins": 32, "max_length": 96, "patch_size": 16, "frequency_stride": 16, "time_stride": 16}
    config = config_from_dict({
        "run": {"cache_dir": str(tmp_path / "cache")},
        "probing_set": {"kind": "demo", "path": "data/demo", "max_clips": 30, "clip_seconds": 1.0},
        "models": [{"name": "ast-scratch", "kind": "ast-scratch", "train_epochs": 1, "options": tiny}],
    })
    ps = open_probing_set(config.probing_set, config.resolve(config.probing_set.path))
    waves = ps.load_waveforms(16000, 1.0)
    trained, info = load_target_model(config.models[0], config, ps, lambda sr: waves)
    assert [s.name for s in trained.layers()] == ["block0.attn.out", "block0.mlp.fc1", "block0.mlp.fc2", "classifier"]
    assert (trained.layer("block0.mlp.fc1").map_freq, trained.layer("block0.mlp.fc1").map_time) == (2, 6)
    assert info["n_heldout"] == int((ps.clips["fold"] == 1).sum()) and info["heldout_accuracy"] is not None

    def no_decode(sr):
        raise AssertionError("checkpoint was not reused")

    loaded, info2 = load_target_model(config.models[0], config, ps, no_decode)
    assert loaded.kind == "ast-scratch" and loaded.class_names == ps.class_names
    assert info2["heldout_accuracy"] == info["heldout_accuracy"]
    np.testing.assert_allclose(loaded.logits(waves[:4]), trained.logits(waves[:4]), atol=1e-5)
    bad = config_from_dict({"models": [{"name": "y", "kind": "yamnet-frozen", "options": {"hidden_size": 8}}]})
    with pytest.raises(ModelError, match="unknown option"):
        load_target_model(bad.models[0], bad, ps, no_decode)


@pytest.mark.parametrize("kind, trainer", [("yamnet-frozen", "train_linear_head"),
                                           ("yamnet-finetuned", "train_yamnet_full"), ("ast-scratch", "train_ast")])
def test_training_runs_on_the_configured_device(tmp_path, monkeypatch, kind, trainer):
    """Issue 11 item 13: training ran on the CPU whatever ``activations.device`` said."""
    from and_engine.probing import open_probing_set

    config = config_from_dict({
        "run": {"cache_dir": str(tmp_path / "cache")}, "activations": {"device": "cpu:0"},
        "probing_set": {"kind": "demo", "path": "data/demo", "max_clips": 30, "clip_seconds": 1.0},
        "models": [{"name": "m", "kind": kind, "train_epochs": 1,
                    "options": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                "intermediate_size": 32} if kind == "ast-scratch" else {}}],
    })
    seen = []
    real = getattr(training, trainer)

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device", args[-1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(training, trainer, spy)
    ps = open_probing_set(config.probing_set, config.resolve(config.probing_set.path))
    target, _ = load_target_model(config.models[0], config, ps, lambda sr: ps.load_waveforms(16000, 1.0))
    assert seen == ["cpu:0"] and target.device == torch.device("cpu:0")
