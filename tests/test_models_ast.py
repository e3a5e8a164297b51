"""AST targets: layers found by structure (transformers 5.x and a 4.x-style layout), offline checkpoint
loading of a tiny random AST, and the patch index -> (frequency, time) mapping checked against the model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers as tr
from _models_fixtures import tiny_ast
from torch import nn

from and_engine.models.ast import (
    NORMALIZATIONS,
    ast_layer_specs,
    ast_patch_grid,
    load_ast_checkpoint,
    make_ast_target,
    patch_position,
)
from and_engine.models.ast_frontend import ASTFrontEnd
from and_engine.models.base import ModelError, pruned
from and_engine.stages.activations import position_maps, record_activations


def test_full_size_geometry_and_neuron_count():
    config = tr.ASTConfig(num_labels=50)
    assert ast_patch_grid(config) == (12, 101)
    with torch.device("meta"):
        model = tr.ASTForAudioClassification(config)
    specs = ast_layer_specs(model)
    assert sum(s.n_neurons for s in specs) == 12 * (768 + 3072 + 768) + 50 == 55346
    assert specs[0].name == "block0.attn.out" and specs[-1].name == "classifier"
    assert (specs[1].map_freq, specs[1].map_time) == (12, 101)
    # patch p sits at sequence index 2 + p with f = p // 101, t = p % 101
    assert patch_position(0, 101) == (0, 0)
    assert patch_position(100, 101) == (0, 100)
    assert patch_position(101, 101) == (1, 0)
    assert patch_position(12 * 101 - 1, 101) == (11, 100)


class _Mod(nn.Module):
    def __init__(self, **children):
        super().__init__()
        for k, v in children.items():
            setattr(self, k, v)


def _layer_4x(h: int, i: int) -> nn.Module:
    self_attn = _Mod(query=nn.Linear(h, h), key=nn.Linear(h, h), value=nn.Linear(h, h))
    return _Mod(attention=_Mod(attention=self_attn, output=_Mod(dense=nn.Linear(h, h))),
                intermediate=_Mod(dense=nn.Linear(h, i)), output=_Mod(dense=nn.Linear(i, h)))


def test_transformers_4x_layout_resolved_by_structure():
    h, i = 8, 16
    layers = nn.ModuleList([_layer_4x(h, i) for _ in range(2)])
    model = _Mod(audio_spectrogram_transformer=_Mod(encoder=_Mod(layer=layers)),
                 classifier=_Mod(layernorm=nn.LayerNorm(h), dense=nn.Linear(h, 5)))
    model.config = SimpleNamespace(hidden_size=h, intermediate_size=i, num_hidden_layers=2, num_labels=5,
                                   num_mel_bins=128, max_length=1024, patch_size=16, frequency_stride=10,
                                   time_stride=10)
    paths = {s.name: s.module_path for s in ast_layer_specs(model)}
    base = "hf.audio_spectrogram_transformer.encoder.layer.1"
    assert paths["block1.attn.out"] == f"{base}.attention.output.dense"
    assert paths["block1.mlp.fc1"] == f"{base}.intermediate.dense"
    assert paths["block1.mlp.fc2"] == f"{base}.output.dense"
    assert paths["classifier"] == "hf.classifier.dense"


def test_transformers_5x_module_paths():
    model, fe = tiny_ast()
    paths = {s.name: s.module_path for s in ast_layer_specs(model)}
    assert paths["block0.attn.out"].endswith("layers.0.attention.o_proj")
    assert paths["block1.mlp.fc1"].endswith("layers.1.mlp.fc1")
    assert paths["block1.mlp.fc2"].endswith("layers.1.mlp.fc2")


def test_checkpoint_loads_offline_and_matches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, fe = tiny_ast(n_labels=3)
    model.config.id2label = {0: "dog", 1: "rain", 2: "bell"}
    model.save_pretrained(tmp_path / "ckpt")
    fe.save_pretrained(tmp_path / "ckpt")
    target = load_ast_checkpoint(str(tmp_path / "ckpt"), "tiny-ast")
    assert target.class_names == ["dog", "rain", "bell"] and target.token_prefix == 2
    assert [s.name for s in target.layers()] == [
        f"block{b}.{n}" for b in range(2) for n in ("attn.out", "mlp.fc1", "mlp.fc2")] + ["classifier"]
    waves = np.random.default_rng(0).normal(0, 0.1, (3, 8000)).astype(np.float32)
    direct = make_ast_target(model, fe, "x", "ast").logits(waves)
    np.testing.assert_allclose(target.logits(waves, batch_size=2), direct, atol=1e-5)
    with pytest.raises(ModelError, match="not found locally"):
        load_ast_checkpoint(str(tmp_path / "missing"))


def test_checkpoint_without_preprocessor_config_needs_its_normalisation(tmp_path):
    """No preprocessor_config.json: never a silent AudioSet default; the ESC-50 recipe by name, or mean/std."""
    model, _ = tiny_ast(n_labels=3)
    model.save_pretrained(tmp_path / "bare")
    with pytest.raises(ModelError, match="no preprocessor_config.json.*options.normalization.*esc50"):
        load_ast_checkpoint(str(tmp_path / "bare"))
    esc = load_ast_checkpoint(str(tmp_path / "bare"), normalization="esc50")
    assert NORMALIZATIONS["esc50"] == (-6.6268077, 5.358466) and "mean -6.627, std 5.358" in esc.description
    silence = np.zeros((1, 8000), np.float32)
    floor = np.log(np.finfo(np.float32).eps)  # log-mel of silence
    np.testing.assert_allclose(esc.inputs(silence)[0, 0, 0].item(), (floor + 6.6268077) / (2 * 5.358466), rtol=1e-5)
    own = load_ast_checkpoint(str(tmp_path / "bare"), normalization={"mean": -5.0, "std": 2.0})
    np.testing.assert_allclose(own.inputs(silence)[0, 0, 0].item(), (floor + 5.0) / 4.0, rtol=1e-5)
    for bad in ("esc-50", {"mean": 1.0}, {"mean": 0.0, "std": 0.0}):
        with pytest.raises(ModelError, match="must be one of"):
            load_ast_checkpoint(str(tmp_path / "bare"), normalization=bad)


def test_front_end_on_the_device_equals_the_feature_extractor():
    """AST features computed in torch for a whole batch (where the model runs) = ASTFeatureExtractor's, per clip."""
    fe = tr.ASTFeatureExtractor(num_mel_bins=128, max_length=512, mean=-6.6268077, std=5.358466)
    rng = np.random.default_rng(0)
    t = np.arange(5 * 16000) / 16000
    waves = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(len(t)),
                      np.r_[0.5 * rng.standard_normal(8000), np.zeros(len(t) - 8000)]]).astype(np.float32)
    ref = fe(list(waves), sampling_rate=16000, return_tensors="np")["input_values"]
    got = ASTFrontEnd(fe)(torch.from_numpy(waves)).numpy()
    assert got.shape == ref.shape == (3, 512, 128)
    np.testing.assert_allclose(got, ref, atol=2e-4)
    short = ASTFrontEnd(tr.ASTFeatureExtractor(num_mel_bins=32, max_length=64))(torch.from_numpy(waves[:, :8000]))
    assert short.shape == (3, 64, 32)  # 48 frames padded to 64
    model, small = tiny_ast()
    target = make_ast_target(model, small, "tiny", "ast")
    calls = []
    target.preprocess = (lambda f: lambda w, device=None: calls.append(str(device)) or f(w, device))(target.preprocess)
    target.inputs(waves[:, :8000])
    assert calls == ["cpu"]  # the model's device goes to the front end


def test_patch_mapping_matches_the_model():
    """Perturb one input (time, mel) cell: only the patch covering it changes, and the map puts it at (f, t)."""
    model, fe = tiny_ast()  # 32 mel x 64 frames, patch 16, stride 8 -> grid 3 x 7
    target = make_ast_target(model, fe, "tiny", "ast")
    n_freq, n_time = ast_patch_grid(model.config)
    assert (n_freq, n_time) == (3, 7)
    seen = {}
    emb = model.audio_spectrogram_transformer.embeddings
    hook = emb.register_forward_hook(lambda _m, _i, out: seen.__setitem__("x", out.detach().clone()))
    x = torch.zeros(1, 64, 32)  # (batch, time frames, mel bins)
    with torch.no_grad():
        model(input_values=x)
        base = seen["x"]
        x[0, 60, 2] = 5.0  # frame 60 -> only time patch 6 (48..63); mel bin 2 -> only freq patch 0 (0..15)
        model(input_values=x)
    hook.remove()
    changed = (seen["x"] - base).abs().sum(-1)[0]
    assert torch.nonzero(changed).ravel().tolist() == [2 + 0 * n_time + 6]
    spec = target.layer("block0.mlp.fc1")
    grid = position_maps((seen["x"] - base).abs()[..., :1].expand(1, -1, spec.n_neurons), spec, 1, 2)[0, 0]
    assert torch.nonzero(grid).tolist() == [[0, 6]]


def test_pruned_linear_unit_outputs_zero_and_cls_pooling():
    model, fe = tiny_ast()
    target = make_ast_target(model, fe, "tiny", "ast")
    waves = np.random.default_rng(1).normal(0, 0.1, (2, 8000)).astype(np.float32)
    spec = target.layer("block1.mlp.fc1")
    with pruned(target, {"block1.mlp.fc1": [5]}):
        acts = record_activations(target, waves, [spec], pool="max")[spec.name]
    assert (acts[:, 5] == 0).all() and (acts[:, 4] != 0).all()
    with pytest.raises(ModelError, match="neuron ids"):
        with pruned(target, {"block1.mlp.fc1": [64]}):
            pass
