"""Text encoders (MiniLM, local CLIP text tower) and audio-text models (YAMNet-labels stand-in, local CLAP)."""

from __future__ import annotations

import numpy as np
import pytest
from _dissect_fixtures import save_tiny_clap, save_tiny_clip
from fakes import WordVectorEncoder

from and_engine.backends.audio_text import YamnetLabelsModel
from and_engine.backends.registry import AudioTextError, TextEncoderError, make
from and_engine.model_identity import model_identity

SR = 16000


@pytest.fixture(scope="module")
def minilm():
    return make("text_encoder", "minilm")


def test_minilm_is_normalised_deduplicated_and_memoised(minilm, monkeypatch):
    texts = ["a dog barks loudly", "rain falls on a roof", "a dog barks loudly", "a puppy is barking"]
    v = minilm.encode(texts)
    assert v.shape == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(v[0], v[2])
    assert v[0] @ v[3] > v[0] @ v[1]  # a real sentence encoder: barking closer to barking than to rain
    seen = []
    monkeypatch.setattr(minilm, "_embed", lambda new: seen.append(list(new)) or np.ones((len(new), 384)))
    minilm.encode(["rain falls on a roof", "a new sentence", "a new sentence"])
    assert seen == [["a new sentence"]]  # memoised texts are not re-embedded, duplicates once
    assert minilm.describe()["backend"] == "minilm"


def test_clip_text_tower_from_a_local_tiny_random_checkpoint(tmp_path):
    path = save_tiny_clip(tmp_path / "clip")
    enc = make("text_encoder", f"clip:{path}")
    v = enc.encode(["dog barking", "cat", "dog barking"])
    assert v.shape == (3, 8) and np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(make("text_encoder", f"clip:{path}").encode(["cat"])[0], v[1], atol=1e-6)
    assert enc.describe() == {"backend": "clip", "model": model_identity(path), "params": {"tower": "text"}}


def test_unknown_or_missing_text_encoders_raise(tmp_path):
    with pytest.raises(TextEncoderError, match="unknown text encoder"):
        make("text_encoder", "bert")
    with pytest.raises(TextEncoderError, match="not found"):
        make("text_encoder", f"clip:{tmp_path / 'missing'}")


def test_clap_from_a_local_tiny_random_checkpoint(tmp_path):
    path = save_tiny_clap(tmp_path / "clap")
    model = make("audio_text", f"clap:{path}")
    w = np.random.default_rng(0).standard_normal((3, SR)).astype(np.float32) * 0.1
    s = model.similarity(w, ["dog", "crying_baby"])
    assert s.shape == (3, 2) and np.isfinite(s).all() and np.abs(s).max() <= 1 + 1e-6
    np.testing.assert_allclose(model.similarity(w, ["dog", "crying_baby"]), s)  # deterministic
    with pytest.raises(AudioTextError, match="waveforms"):
        model.similarity(w[0], ["dog"])
    with pytest.raises(AudioTextError, match="not found"):
        make("audio_text", f"clap:{tmp_path / 'missing'}")
    with pytest.raises(AudioTextError, match="unknown model"):
        make("audio_text", "wav2clip")


def test_yamnet_labels_stand_in_scores_noise_as_white_noise(minilm):
    t = np.arange(2 * SR) / SR
    w = np.stack([0.5 * np.sin(2 * np.pi * 440 * t),
                  0.3 * np.random.default_rng(0).standard_normal(2 * SR)]).astype(np.float32)
    model = make("audio_text", "yamnet-labels", {"text_encoder": minilm})
    concepts = ["dog", "church_bells", "white noise"]
    s = model.similarity(w, concepts)
    assert s.shape == (2, 3) and (s >= 0).all() and (s <= 1).all()
    assert concepts[int(np.argmax(s[1]))] == "white noise"
    weights = model.label_weights(concepts)
    assert weights.shape == (3, 521)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert model.describe()["backend"] == "yamnet-labels"


def test_yamnet_labels_weights_follow_text_similarity():
    model = YamnetLabelsModel(WordVectorEncoder())
    from and_engine.models.yamnet import audioset_class_names

    names = audioset_class_names()
    weights = model.label_weights(["Dog"])
    assert names[int(np.argmax(weights[0]))] == "Dog"  # "the sound of Dog" shares the word with "Dog"
