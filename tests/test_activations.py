"""Activations and extremes stages: pooling inside hooks, maps, tie-breaking, table layouts, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from and_engine.models.base import LayerSpec
from and_engine.models.yamnet import YamnetNet, make_yamnet_target
from and_engine.stages.activations import (
    ActivationsError,
    activations_table,
    maps_table,
    pool_output,
    position_maps,
    record_activations,
    record_maps,
)
from and_engine.stages.extremes import ExtremesError, extremes_frame, topk_bottomk


@pytest.fixture(scope="module")
def random_yamnet():
    torch.manual_seed(0)
    net = YamnetNet(4)
    return make_yamnet_target(net, "rand", "yamnet-frozen", ["a", "b", "c", "d"], clip_seconds=1.5)


@pytest.fixture(scope="module")
def waves():
    return np.random.default_rng(0).normal(0, 0.1, (5, 24000)).astype(np.float32)


def test_pooling_conv_windows_and_tokens():
    conv = LayerSpec("c", "c", "conv", 1, 3, 2, 4)
    out = torch.arange(2 * 2 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2)  # 2 clips x 2 windows
    expected = out.mean(dim=(2, 3)).reshape(2, 2, 3).mean(1)
    assert torch.allclose(pool_output(out, conv, 2, "cls"), expected)
    lin = LayerSpec("l", "l", "linear", 0, 3)
    tokens = torch.randn(2, 5, 3)
    assert torch.equal(pool_output(tokens, lin, 2, "cls"), tokens[:, 0])
    assert torch.allclose(pool_output(tokens, lin, 2, "mean"), tokens.mean(1))
    assert torch.equal(pool_output(tokens, lin, 2, "max"), tokens.amax(1))
    with pytest.raises(ActivationsError, match="pool"):
        pool_output(tokens, lin, 2, "median")
    with pytest.raises(ActivationsError, match="units"):
        pool_output(torch.randn(2, 5, 4), lin, 2, "cls")


def test_conv_maps_concatenate_windows_along_time():
    spec = LayerSpec("c", "c", "conv", 1, 1, 2, 6)  # F=2, 2 windows x T=3
    out = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 1, 3, 2)  # (windows, C, T, F)
    grid = position_maps(out, spec, 1, 0)[0, 0]
    assert grid.shape == (2, 6)
    assert grid[:, :3].T.tolist() == out[0, 0].tolist() and grid[:, 3:].T.tolist() == out[1, 0].tolist()


def test_record_matches_full_output_baseline_and_batches(random_yamnet, waves):
    layers = [random_yamnet.layer("block3.pointwise"), random_yamnet.layer("classifier")]
    got = record_activations(random_yamnet, waves, layers, batch_size=2)
    full = {}
    conv = random_yamnet.submodule(layers[0])
    hook = conv.register_forward_hook(lambda _m, _i, out: full.__setitem__("x", out.detach()))
    with torch.no_grad():
        logits = random_yamnet.module(random_yamnet.preprocess(waves))
    hook.remove()
    n_win = full["x"].shape[0] // len(waves)
    ref = full["x"].mean(dim=(2, 3)).reshape(len(waves), n_win, -1).mean(1).numpy()
    np.testing.assert_allclose(got["block3.pointwise"], ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["classifier"], logits.reshape(len(waves), n_win, -1).mean(1).numpy(), atol=1e-5)
    np.testing.assert_allclose(random_yamnet.logits(waves, batch_size=5), got["classifier"], atol=1e-5)
    with pytest.raises(ValueError, match="waveforms"):
        record_activations(random_yamnet, waves[0], layers)
    with pytest.raises(ValueError, match="no layer"):
        record_activations(random_yamnet, waves, [LayerSpec("nope", "x", "conv", 1, 3)])


def test_maps_for_topk_clips_average_to_the_activation(random_yamnet, waves):
    spec = random_yamnet.layer("block2.pointwise")
    u = record_activations(random_yamnet, waves, [spec])[spec.name]
    top = topk_bottomk(u, 2)[0]
    maps = record_maps(random_yamnet, waves, [spec], {spec.name: top}, batch_size=2)[spec.name]
    assert maps.shape == (spec.n_neurons, 2, spec.map_freq, spec.map_time)
    # conv maps (windows concatenated along time) average to the pooled activation of that clip
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), u[top, np.arange(spec.n_neurons)[:, None]], rtol=1e-4, atol=1e-5)
    table = maps_table("rand", spec.name, maps, top)
    assert table.num_rows == spec.n_neurons * 2
    row = table.slice(3, 1).to_pylist()[0]
    assert (row["neuron"], row["rank"], row["clip_id"]) == (1, 2, int(top[1, 1]))  # ranks start at 1
    np.testing.assert_allclose(row["map"], maps[1, 1].ravel())


def test_maps_are_selected_on_the_device_and_only_kept_maps_reach_the_host(random_yamnet, waves, monkeypatch):
    """The map pass moves to the host only the (neuron, rank) maps it keeps, never a batch's full maps."""
    spec = random_yamnet.layer("block2.pointwise")
    u = record_activations(random_yamnet, waves, [spec])[spec.name]
    top = topk_bottomk(u, 1)[0]
    expected = record_maps(random_yamnet, waves, [spec], {spec.name: top}, batch_size=5)[spec.name]
    moved = []
    real_cpu = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t, *a, **k: moved.append(t.numel()) or real_cpu(t, *a, **k))
    maps = record_maps(random_yamnet, waves, [spec], {spec.name: top}, batch_size=5)[spec.name]
    np.testing.assert_array_equal(maps, expected)
    kept = spec.n_neurons * 1 * spec.map_freq * spec.map_time
    n_union = len(np.unique(top))
    assert n_union >= 2  # a batch holds several clips' maps, of which each neuron keeps one
    assert sum(moved) <= kept + 2 * spec.n_neurons  # the maps kept + their (neuron, rank) indices
    np.testing.assert_allclose(maps.mean(axis=(2, 3))[:, 0], u[top[:, 0], np.arange(spec.n_neurons)], rtol=1e-4,
                               atol=1e-5)


def test_topk_bottomk_ties_by_clip_id():
    u = np.array([[1.0, 0.0], [3.0, 0.0], [3.0, 5.0], [1.0, 0.0]], dtype=np.float32)
    top, top_v, bottom, bottom_v = topk_bottomk(u, 2)
    assert top.tolist() == [[1, 2], [2, 0]]
    assert bottom.tolist() == [[0, 3], [0, 1]]
    assert top_v.tolist() == [[3.0, 3.0], [5.0, 0.0]] and bottom_v.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    frame = extremes_frame("m", "l", u, 2)
    assert list(frame.columns) == ["model", "layer", "neuron", "topk_clip_ids", "topk_values",
                                   "bottomk_clip_ids", "bottomk_values"]
    assert frame.loc[1, "topk_clip_ids"] == [2, 0]
    with pytest.raises(ExtremesError, match="top_k"):
        topk_bottomk(u, 5)
    with pytest.raises(ExtremesError, match="NaN"):
        topk_bottomk(np.array([[np.nan]], dtype=np.float32), 1)


def test_activations_table_is_neuron_major():
    u = np.arange(12, dtype=np.float32).reshape(4, 3)  # 4 clips x 3 neurons
    rows = activations_table("m", "l", u).to_pylist()
    assert [r["neuron"] for r in rows] == [0, 1, 2]
    assert rows[1]["values"] == u[:, 1].tolist()
    with pytest.raises(ActivationsError, match="n_clips"):
        activations_table("m", "l", u[0])


def test_bfloat16_autocast_tracks_float32(random_yamnet, waves):
    layers = [random_yamnet.layer("block5.pointwise")]
    exact = record_activations(random_yamnet, waves, layers)["block5.pointwise"]
    fast = record_activations(random_yamnet, waves, layers, precision="bfloat16")["block5.pointwise"]
    assert fast.dtype == np.float32
    assert np.corrcoef(exact.ravel(), fast.ravel())[0, 1] > 0.99
    with pytest.raises(ActivationsError, match="precision"):
        record_activations(random_yamnet, waves, layers, precision="float16")


def test_record_into_memmap(random_yamnet, waves, tmp_path):
    spec = random_yamnet.layer("block4.pointwise")
    mm = np.lib.format.open_memmap(tmp_path / "u.npy", mode="w+", dtype=np.float32, shape=(len(waves), spec.n_neurons))
    got = record_activations(random_yamnet, waves, [spec], out={spec.name: mm})
    assert got[spec.name] is mm
    mm.flush()
    np.testing.assert_allclose(np.load(tmp_path / "u.npy"), record_activations(random_yamnet, waves, [spec])[spec.name])
    with pytest.raises(ActivationsError, match="shape"):
        record_activations(random_yamnet, waves, [spec], out={spec.name: np.zeros((1, 1), np.float32)})


def test_bfloat16_outputs_pool_like_their_float32_copy():
    lin = LayerSpec("l", "l", "linear", 0, 3)
    conv = LayerSpec("c", "c", "conv", 1, 3, 2, 4)
    tokens, maps = torch.randn(4, 5, 3).to(torch.bfloat16), torch.randn(4, 3, 2, 2).to(torch.bfloat16)
    for pool in ("cls", "mean", "max"):
        got = pool_output(tokens, lin, 2, pool)
        assert got.dtype == torch.float32
        assert torch.allclose(got, pool_output(tokens.float(), lin, 2, pool), atol=1e-6)
    assert torch.allclose(pool_output(maps, conv, 2, "cls"), pool_output(maps.float(), conv, 2, "cls"), atol=1e-6)


def test_compiled_forward_matches_eager(random_yamnet, waves):
    if not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("torch.compile (inductor) needs a C compiler")
    layers = [random_yamnet.layer("block2.pointwise"), random_yamnet.layer("block13.pointwise"),
              random_yamnet.layer("classifier")]
    eager = record_activations(random_yamnet, waves, layers, batch_size=2)
    fast = record_activations(random_yamnet, waves, layers, batch_size=2, compiled=True)  # 5 clips: last batch padded
    for spec in layers:
        np.testing.assert_allclose(fast[spec.name], eager[spec.name], rtol=1e-5, atol=1e-6)
