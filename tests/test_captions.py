"""Acoustic measurements, truthful descriptor words, the features captioner and the captions stage."""

from __future__ import annotations

import numpy as np
import pytest
from _describe_fixtures import SR, signals

from and_engine.acoustics.measurements import AcousticInputError, measure_acoustics, relative_loudness
from and_engine.backends.captioner_features import FeaturesCaptioner, confident_labels
from and_engine.backends.registry import CaptionerConfigError, CaptionerError, make
from and_engine.stages.captions import CaptionsInputError, compute_captions
from and_engine.store.schema import columns


@pytest.fixture(scope="module")
def clips():
    sig = signals()
    return list(sig), np.stack(list(sig.values())).astype(np.float32)


@pytest.fixture(scope="module")
def described(clips):
    names, audio = clips
    result = FeaturesCaptioner(tagger=None).caption(audio, SR)
    return dict(zip(names, result.captions)), result.features.set_index(np.array(names))


def test_measurements_match_the_synthetic_signals(described):
    _, f = described
    assert f.loc["tone", "pitch_hz"] == pytest.approx(3000, abs=5)
    assert f.loc["tone", "rms_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)
    assert f.loc["tone", "spectral_flatness"] < 0.01 and f.loc["white", "spectral_flatness"] > 0.9
    assert f.loc["low_noise", "median_frequency_hz"] < 300 and f.loc["low_noise", "spectral_flatness"] > 0.5
    assert np.isnan(f.loc["low_noise", "pitch_hz"])
    assert f.loc["clicks", "onset_rate_hz"] == pytest.approx(5.0, abs=0.4)
    assert f.loc["tone", "active_s"] == pytest.approx(5.0, abs=0.1) and f.loc["silence", "active_s"] == 0
    assert f.loc["clicks", "dynamic_range_db"] > 25 and f.loc["tone", "dynamic_range_db"] < 1


def test_words_are_truthful(described):
    caps, _ = described
    assert all(w in caps["tone"] for w in ("loud", "high-pitched", "tonal", "continuous"))
    assert "quiet" in caps["low_noise"] and "low-frequency" in caps["low_noise"] and "noisy" in caps["low_noise"]
    assert "repetitive" in caps["clicks"] and "5.0 events per second" in caps["clicks"]
    assert "very quiet" in caps["silence"] and "tonal" not in caps["silence"]
    for text in caps.values():
        assert 2 <= text.count(".") <= 5 and "  " not in text


def test_relative_loudness_is_a_percentile():
    assert relative_loudness(np.array([-10.0, -30.0, -50.0]), np.array([-50.0, -30.0, -10.0])).tolist() == \
        pytest.approx([5 / 6, 0.5, 1 / 6])
    with pytest.raises(AcousticInputError):
        relative_loudness(np.array([1.0]), np.array([]))


@pytest.mark.parametrize("bad, match", [
    (np.zeros(10, np.float32), "shape"), (np.zeros((2, 10), np.int16), "float"),
    (np.full((1, 100), np.nan, np.float32), "NaN"),
])
def test_bad_audio_is_rejected(bad, match):
    with pytest.raises(AcousticInputError, match=match):
        measure_acoustics(bad, SR)


def test_yamnet_tags_name_the_sources(clips):
    names, audio = clips
    captioner = make("captioner", "features")
    result = captioner.caption(audio[:4], SR)
    tags = dict(zip(names, result.features["tags"]))
    assert "Sine wave" in tags["tone"].split(":")[0] and "sine wave" in result.captions[0]
    assert "noise" in tags["white"].lower()
    assert captioner.describe()["model"].startswith("yamnet+acoustic-")
    assert set(columns("acoustic_features")[1:]) <= set(result.features.columns)  # the stage keeps these


def test_confident_labels_hedges_when_unsure():
    scores = np.array([[0.9, 0.5, 0.1], [0.05, 0.2, 0.1]])
    assert confident_labels(scores, ["a", "b", "c"], 0.3, 3) == [[("a", 0.9), ("b", 0.5)], [("b", 0.2)]]
    caption = FeaturesCaptioner(None).caption(signals()["white"][None].astype(np.float32), SR).captions[0]
    assert "unidentified" in caption or "unclear" in caption or "hard to tell" in caption


def test_captions_stage_is_whole_set_relative_and_validates(clips):
    _, audio = clips
    out = compute_captions(audio, SR, FeaturesCaptioner(None), clip_ids=np.arange(10, 15), batch_size=2)
    assert out["captions"]["clip_id"].tolist() == [10, 11, 12, 13, 14]
    feats = out["acoustic_features"]
    assert list(feats.columns) == columns("acoustic_features")[1:] and feats["clip_id"].tolist() == [10, 11, 12, 13, 14]
    assert feats["relative_loudness"].round(2).tolist() == [0.9, 0.3, 0.5, 0.7, 0.1]  # across batches
    assert "louder than most clips" in out["captions"]["caption"][0]
    with pytest.raises(CaptionsInputError, match="unique"):
        compute_captions(audio, SR, FeaturesCaptioner(None), clip_ids=np.zeros(5))


def test_factory_errors():
    with pytest.raises(CaptionerConfigError, match="unknown backend"):
        make("captioner", "salmonn")
    with pytest.raises(CaptionerConfigError, match="model_path"):
        make("captioner", "audio-llm")
    with pytest.raises(CaptionerConfigError, match="tagger"):
        make("captioner", "features", dict(tagger="clap"))
    assert issubclass(CaptionerError, RuntimeError)
