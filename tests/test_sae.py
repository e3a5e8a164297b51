"""The SAE stage's functions: metrics, seeded training, vectors per frame / patch, the cache, and SAE layers
attached to a target model (recorded like neurons; the source layer untouched unless latents are ablated)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _app_tiny_model import tiny_target_model
from _models_fixtures import demo_clips, tiny_ast

from and_engine.models.ast import make_ast_target
from and_engine.models.base import ModelError
from and_engine.models.sae import Sae, attach_sae, load_or_train_sae, new_sparse_coder, sae_layer_spec
from and_engine.stages import sae as stage
from and_engine.stages.activations import record_activations


def identity_sae(d: int, n_latents: int, k: int) -> Sae:
    """An SAE whose first d latents are the coordinate axes (the rest never fire): reconstructs x >= 0 exactly."""
    coder = new_sparse_coder(d, n_latents, k)
    with torch.no_grad():
        w = torch.zeros(n_latents, d)
        w[:d] = torch.eye(d)
        coder.encoder.weight.copy_(w)
        coder.encoder.bias.zero_()
        coder.W_dec.copy_(w)
        coder.b_dec.zero_()
    return Sae(coder.eval(), 1.0, "layer")


def test_metrics_count_fve_l0_dead_and_dense_latents():
    sae = identity_sae(3, 5, 2)
    x = np.array([[2, 0, 0], [0, 3, 0], [1, 1, 0]], dtype=np.float32)
    m = stage.sae_metrics(sae, x)
    assert m["fve"] == pytest.approx(1.0)
    assert m["l0"] == pytest.approx(4 / 3)  # one, one and two positive latents
    assert m["n_dead"] == 3  # the z axis and the two latents with no weights never fire
    assert m["n_dense"] == 2  # x and y fire on 2 of 3 vectors (> 10 %)
    half = stage.sae_metrics(identity_sae(3, 5, 1), x)  # k = 1 keeps one of (1, 1): half of its norm is lost
    assert half["fve"] < 1.0 and half["l0"] == pytest.approx(1.0)


def _sparse_data(n: int = 2048, d: int = 16, atoms: int = 24, seed: int = 0) -> np.ndarray:
    """Vectors that are sums of two of ``atoms`` random directions with positive weights, plus an offset."""
    rng = np.random.default_rng(seed)
    dictionary = rng.normal(size=(atoms, d))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    pick = np.stack([rng.choice(atoms, 2, replace=False) for _ in range(n)])
    codes = np.zeros((n, atoms))
    np.put_along_axis(codes, pick, rng.uniform(1, 3, size=(n, 2)), axis=1)
    return (codes @ dictionary + 5.0).astype(np.float32)


def _weights(sae: Sae) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in sae.coder.state_dict().items()}


def test_training_is_seeded_and_learns_a_sparse_dictionary():
    x = _sparse_data()
    before = stage.sae_metrics(Sae(new_sparse_coder(16, 48, 4).eval(), 1.0, "l"), x)["fve"]
    a = stage.train_sae(x, 48, 4, epochs=15, lr=0.0, batch_size=128, seed=3, source="l")
    b = stage.train_sae(x, 48, 4, epochs=15, lr=0.0, batch_size=128, seed=3, source="l")
    c = stage.train_sae(x, 48, 4, epochs=15, lr=0.0, batch_size=128, seed=4, source="l")
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["encoder.weight"], wc["encoder.weight"])
    fve = stage.sae_metrics(a, x)["fve"]
    assert fve > 0.9 > before
    assert stage.sae_metrics(a, _sparse_data(seed=0)[:256])["fve"] == pytest.approx(
        stage.sae_metrics(a, x[:256])["fve"])


def test_fit_refuses_k_beyond_the_latents_and_reports_heldout_fve():
    x = _sparse_data(n=256)
    with pytest.raises(stage.SaeError, match="k = 9"):
        stage.fit_sae(x, x[:10], 8, 9, 1, 0.0, 64, 0, "l")
    sae, meta = stage.fit_sae(x[:200], x[200:], 32, 4, 2, 0.0, 64, 0, "l")
    assert meta["n_vectors"] == 200 and meta["n_heldout_vectors"] == 56 and meta["k"] == 4
    assert meta["fve_heldout"] == pytest.approx(stage.sae_metrics(sae, x[200:])["fve"])
    _, none_held = stage.fit_sae(x, x[:0], 32, 4, 1, 0.0, 64, 0, "l")
    assert np.isnan(none_held["fve_heldout"])


def test_outliers_far_from_the_median_are_left_out_of_training():
    x = _sparse_data(n=400)
    x[:5] = 500.0  # five vectors ~100x farther from the median than the rest (like windows of digital silence)
    assert stage.typical(x).tolist() == [False] * 5 + [True] * 395
    assert stage.typical(np.zeros((4, 3), np.float32)).all()  # no spread: nothing is an outlier
    sae, meta = stage.fit_sae(x, x[:0], 32, 4, 2, 0.0, 64, 0, "l")
    assert meta["n_outliers"] == 5 and meta["n_vectors"] == 400
    assert meta["fve_typical"] == pytest.approx(stage.sae_metrics(sae, x[5:])["fve"])
    assert meta["fve"] == pytest.approx(stage.sae_metrics(sae, x)["fve"])


def test_sae_clips_train_outside_the_heldout_fold():
    clips = pd.DataFrame({"clip_id": [0, 1, 2, 3], "fold": [1, 2, 1, 3]})
    train, held = stage.sae_clips(clips, 1)
    assert train.tolist() == [1, 3] and held.tolist() == [0, 2]
    train, held = stage.sae_clips(clips.assign(fold=1), 1)  # nothing outside the held-out fold: train on all
    assert train.tolist() == [0, 1, 2, 3] and held.tolist() == []


@pytest.fixture(scope="module")
def waves():
    return demo_clips(per_class=1)[0][:6]


def test_layer_vectors_are_every_position_of_every_clip_or_a_seeded_sample(waves):
    model = tiny_target_model()
    spec = model.layer("block1.conv")
    vectors, owner = stage.layer_vectors(model, waves, spec, [0, 2, 5], max_vectors=10**6, seed=0, batch_size=2)
    assert vectors.shape == (3 * 16 * 50, 8) and owner.tolist() == [0] * 800 + [2] * 800 + [5] * 800
    out = model.module.block1.conv(model.inputs(waves[2:3])).detach()  # (1, 8, 16, 50)
    assert np.allclose(vectors[800:1600], out[0].permute(1, 2, 0).reshape(-1, 8).numpy(), atol=1e-6)
    a, _ = stage.layer_vectors(model, waves, spec, [0, 2, 5], max_vectors=240, seed=1, batch_size=2)
    b, _ = stage.layer_vectors(model, waves, spec, [0, 2, 5], max_vectors=240, seed=1, batch_size=3)
    assert 150 < len(a) < 350 and np.array_equal(a, b)


def _trained(model, spec, waves, n_latents=16, k=3) -> Sae:
    vectors, _ = stage.layer_vectors(model, waves, spec, range(len(waves)), 10**6, 0)
    return stage.train_sae(vectors, n_latents, k, epochs=2, lr=0.0, batch_size=256, seed=0, source=spec.name)


def test_an_attached_sae_layer_records_pooled_codes_and_leaves_the_model_unchanged(waves):
    model = tiny_target_model()
    source = model.layer("block1.conv")
    plain = record_activations(model, waves, [source])[source.name]
    logits = model.logits(waves)
    sae = _trained(model, source, waves)
    spec = attach_sae(model, source.name, sae)
    assert (spec.name, spec.kind, spec.n_neurons, spec.block) == ("block1.conv.sae", "sae", 16, source.block)
    assert model.layer("block1.conv.sae") == spec
    got = record_activations(model, waves, [source, spec], batch_size=4)
    assert np.array_equal(got[source.name], plain)  # recording latents does not change the source layer
    assert np.array_equal(model.logits(waves), logits)
    vectors, owner = stage.layer_vectors(model, waves, source, range(len(waves)), 10**6, 0)
    with torch.no_grad():
        codes = sae.dense(torch.from_numpy(vectors)).numpy()
    expected = np.stack([codes[owner == i].mean(axis=0) for i in range(len(waves))])
    assert got[spec.name].shape == (len(waves), 16)
    assert np.allclose(got[spec.name], expected, atol=1e-5)
    assert attach_sae(model, source.name, sae) == spec and [s.name for s in model.layers()].count(spec.name) == 1


def test_token_layers_give_an_sae_per_token_pooled_like_the_neurons(waves):
    hf, fe = tiny_ast(n_labels=3)
    model = make_ast_target(hf, fe, "ast", "ast-checkpoint", ["a", "b", "c"])
    source = model.layer("block0.mlp.fc1")
    vectors, owner = stage.layer_vectors(model, waves[:2], source, [0, 1], 10**6, 0)
    n_tokens = model.token_prefix + source.map_freq * source.map_time
    assert vectors.shape == (2 * n_tokens, source.n_neurons)
    sae = stage.train_sae(vectors, 2 * source.n_neurons, 4, 1, 0.0, 64, 0, source.name)
    spec = attach_sae(model, source.name, sae)
    got = record_activations(model, waves[:2], [spec], pool="cls")[spec.name]
    with torch.no_grad():
        cls = sae.dense(torch.from_numpy(vectors[owner == 1][:1])).numpy()[0]  # token 0 of clip 1
    assert np.allclose(got[1], cls, atol=1e-5)


def test_only_layers_with_frame_or_patch_vectors_get_an_sae():
    model = tiny_target_model()
    with pytest.raises(ModelError, match="classifier"):
        sae_layer_spec(model.layer("classifier"), 8)
    with pytest.raises(ModelError, match="k must be"):
        new_sparse_coder(4, 8, 9)


def test_the_cache_trains_once_and_loads_the_same_weights(tmp_path):
    x = _sparse_data(n=256)
    calls = []

    def train():
        calls.append(1)
        return stage.fit_sae(x, x[:0], 32, 4, 1, 0.0, 64, 0, "src")

    path = tmp_path / "sae" / "key"
    first, meta = load_or_train_sae(path, train)
    again, meta2 = load_or_train_sae(path, train)
    assert calls == [1] and meta2 == meta and again.source == "src" and again.scale == first.scale
    assert all(torch.equal(a, b) for a, b in zip(first.coder.state_dict().values(), again.coder.state_dict().values(),
                                                 strict=True))
    assert sorted(p.name for p in path.iterdir()) == ["cfg.json", "meta.json", "sae.safetensors"]


def _conv_input_capture(model):
    """A hook on tinynet's ReLU after block1.conv keeping the (possibly edited) conv output it receives."""
    seen = []
    handle = model.module.act1.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].detach().clone()))
    return seen, handle


def test_ablating_latents_removes_their_share_of_the_reconstruction(waves):
    from and_engine.analyses.pruning_engine import PruningEngine
    from and_engine.models.base import mask_state, pruned

    model = tiny_target_model()
    source = model.layer("block1.conv")
    sae = _trained(model, source, waves)
    spec = attach_sae(model, source.name, sae)
    engine = PruningEngine(model, waves, batch_size=6)
    tap = model.submodule(spec)
    assert not engine.model.submodule(source).and_sae.engaged()  # mask hooks installed, nothing recorded or pruned
    seen, handle = _conv_input_capture(model)
    try:
        with torch.inference_mode():
            y = model.module.block1.conv(model.inputs(waves[:2]))  # the unedited conv output
            x = y.movedim(1, -1).reshape(-1, 8)
            values, indices = sae.encode(x)
            every = {spec.name: list(range(16))}
            with pruned(model, every):
                assert mask_state(tap)[1] and model.submodule(source).and_sae.engaged()
                model.module(model.inputs(waves[:2]))
            # every latent ablated: x - W_dec^T z / s = the reconstruction error + b_dec / s
            expected = x - (sae.decode(values, indices) - sae.coder.b_dec / sae.scale)
            assert torch.allclose(seen[-1].movedim(1, -1).reshape(-1, 8), expected, atol=1e-4)
            one = int(indices[0, 0])  # a latent active at the first position of clip 0
            with pruned(model, {spec.name: [one]}):
                model.module(model.inputs(waves[:2]))
            share = torch.where(indices == one, values, torch.zeros_like(values))
            expected = x - sae.contribution(share, indices)
            assert torch.allclose(seen[-1].movedim(1, -1).reshape(-1, 8), expected, atol=1e-5)
            assert not torch.allclose(seen[-1], y)
    finally:
        handle.remove()
    logits = engine.logits([{}, {spec.name: [one]}, {spec.name: list(range(16))}])
    assert np.array_equal(logits[0], engine.baseline) and not np.allclose(logits[1], logits[0])
    with torch.inference_mode():  # one pass per selection gives what the engine's shared passes give
        with pruned(model, {spec.name: [one]}):
            alone = model.logits(waves)
    assert np.allclose(logits[1], alone, atol=1e-5)


def test_the_reconstruction_edit_runs_the_network_on_what_the_sae_reconstructs(waves):
    from and_engine.analyses.pruning_engine import PruningEngine
    from and_engine.models.sae import attached_sae, reconstruction

    model = tiny_target_model()
    source = model.layer("block1.conv")
    attach_sae(model, source.name, _trained(model, source, waves))
    sae = attached_sae(model, source.name)
    with pytest.raises(ModelError, match="no SAE"):
        attached_sae(model, "block2.fc")
    y = model.module.block1.conv(model.inputs(waves[:1])).detach()
    rec = reconstruction(sae, y)
    with torch.no_grad():
        flat = sae.decode(*sae.encode(y.movedim(1, -1).reshape(-1, 8)))
    assert rec.shape == y.shape and torch.allclose(rec.movedim(1, -1).reshape(-1, 8), flat)
    engine = PruningEngine(model, waves, batch_size=6)
    spliced = engine.edited_logits([{source.name: lambda out: reconstruction(sae, out)}])[0]
    assert spliced.shape == engine.baseline.shape and not np.allclose(spliced, engine.baseline)


def test_units_of_constant_activation_are_left_out_of_algorithm_1():
    from and_engine.analyses.common import varying_units

    ext = pd.DataFrame({"layer": "l.sae", "neuron": [0, 1, 2], "topk_clip_ids": [[4, 5], [0, 1], [7, 3]],
                        "topk_values": [[2.0, 1.0], [0.0, 0.0], [0.5, 0.0]],
                        "bottomk_values": [[-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]})
    assert varying_units(ext)["neuron"].tolist() == [0, 2]  # latent 1 never fires: its "top-K" are clips 0, 1
