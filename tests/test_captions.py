"""Acoustic measurements, truthful descriptor words, the features captioner and the captions stage."""

from __future__ import annotations

import numpy as np
import pytest
from _describe_fixtures import SR, signals
from fakes import ScriptedTagger

from and_engine.acoustics.measurements import AcousticInputError, measure_acoustics, relative_loudness
from and_engine.backends.captioner_features import FeaturesCaptioner
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


def test_unidentified_sound_without_a_tagger():
    caption = FeaturesCaptioner(None).caption(signals()["white"][None].astype(np.float32), SR).captions[0]
    assert "unidentified" in caption or "unclear" in caption or "hard to tell" in caption


def test_pitch_words_only_for_a_stable_voiced_pitch():
    t = np.arange(5 * SR) / SR
    harmonic = sum(np.sin(2 * np.pi * 200 * h * t) / h for h in range(1, 6))  # a steady 200 Hz voice-like note
    f0 = 150 * 2 ** (np.sin(2 * np.pi * 0.7 * t) * 0.8)  # a voice gliding over more than an octave, like speech
    glide = sum(np.sin(2 * np.pi * h * np.cumsum(f0) / SR) / h for h in range(1, 6))
    audio = 0.3 * np.stack([harmonic / np.abs(harmonic).max(), glide / np.abs(glide).max()])
    result = FeaturesCaptioner(None).caption(audio.astype(np.float32), SR)
    f = result.features
    assert f["pitch_hz"][0] == pytest.approx(200, abs=3) and f["voiced_share"][0] > 0.9
    assert f["voiced_share"][1] > 0.5 and f["pitch_spread_st"][1] > 3 and np.isnan(f["pitch_hz"][1])
    assert "low-pitched" in result.captions[0] and "tonal" in result.captions[0]
    assert not {"pitched", "tonal"} & set(result.captions[1].replace(",", " ").replace(".", " ").split())


def test_sources_come_from_the_tagger_evidence_over_time():
    names = ["Speech", "Animal", "Chicken, rooster", "Cluck", "Bark", "Silence", "Inside, small room"]
    through = np.array([0.1, 0.6, 0.5, 0.35, 0.0, 0.9, 0.8])  # the same in every window
    windows = np.tile(through, (9, 1))
    windows[4, 4] = 0.7  # a dog barks once: 0.08 on the clip mean, 0.7 in one window
    quiet = np.full((9, len(names)), 0.01)
    quiet[:, 0] = 0.12  # speech, never confident
    tagger = ScriptedTagger(names, [windows, quiet, np.zeros((9, len(names)))])
    audio = np.stack([signals()["white"]] * 3).astype(np.float32)
    result = FeaturesCaptioner(tagger, tag_threshold=0.3, max_tags=3).caption(audio, SR)
    first, second, third = result.captions
    assert first.split(".")[0].endswith(("chicken, along with animal", "chicken, with animal also present",
                                         "chicken can be heard, together with animal"))  # specific first
    assert "chicken clucking" not in first  # a specific source is not repeated (cluck = chicken clucking)
    assert "dog barking" in first and "at moments" in first.lower()  # heard in one window only
    assert "silence" not in first.lower() and "room" not in first.lower()  # scenes are never sources
    assert "possibly" in second and "speech" in second  # named, but hedged below the threshold
    assert "unidentified" in third or "unclear" in third or "hard to tell" in third
    assert result.features["tags"][0] == "Chicken, rooster:0.50; Animal:0.60; Speech:0.10; Bark:0.08 (peak 0.70)"


def test_the_source_vocabulary_is_audioset_not_the_probing_labels():
    from and_engine.models.yamnet import audioset_class_names
    from and_engine.text.sound_sources import SOURCE_KINDS, _table, plain_source

    table = _table()
    assert list(table) == audioset_class_names()  # one row per YAMNet class, in its order: nothing else
    assert {kind for _, kind in table.values()} == set(SOURCE_KINDS)
    assert plain_source("Waves, surf") == ("waves", "specific") and plain_source("Oink") == ("pig oinking", "specific")
    assert plain_source("Silence") == ("", "none") and plain_source("Vehicle") == ("vehicle", "generic")
    assert plain_source("Made-up class, other") == ("made-up class", "specific")


def test_one_loudness_scale_and_no_contradictions(clips):
    _, audio = clips
    caps = compute_captions(audio, SR, FeaturesCaptioner(None), clip_ids=np.arange(5))["captions"]["caption"]
    for text in caps:
        assert "than most" not in text  # the relative scale is gone: "loud ... softer than most" cannot happen
        said = set(text.lower().replace(",", " ").replace(".", " ").split())
        assert not ({"loud", "quiet"} <= said) and not ({"tonal", "noisy"} <= said)
        assert not ("silence" in said and "loud" in said)


def test_captions_stage_is_whole_set_relative_and_validates(clips):
    _, audio = clips
    out = compute_captions(audio, SR, FeaturesCaptioner(None), clip_ids=np.arange(10, 15), batch_size=2)
    assert out["captions"]["clip_id"].tolist() == [10, 11, 12, 13, 14]
    feats = out["acoustic_features"]
    assert list(feats.columns) == columns("acoustic_features")[1:] and feats["clip_id"].tolist() == [10, 11, 12, 13, 14]
    assert feats["relative_loudness"].round(2).tolist() == [0.9, 0.3, 0.5, 0.7, 0.1]  # across batches
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


def _best_per_source_every_class(scores, class_names):
    """The ranking of ``sound_sources._best_per_source`` written out over every class (no early stop)."""
    from and_engine.text.sound_sources import plain_source

    best = []
    for j in np.argsort(-scores, kind="stable"):
        words, kind = plain_source(class_names[j])
        mine = set(words.split())
        if kind != "none" and not any(mine <= set(b[0].split()) or (b[3] == "specific" and set(b[0].split()) <= mine)
                                      for b in best):
            best.append((words, float(scores[j]), int(j), kind))
    return best


def test_naming_sources_stops_early_with_the_same_answer():
    """name_sources ranks only the classes it can name (max_sources; moments above the threshold): the same
    sources, tags and order as ranking all 521 AudioSet classes, on sparse and dense random tagger scores."""
    from and_engine.text.sound_sources import MIN_SOURCE_SCORE, _table, name_sources

    names = list(_table())
    rng = np.random.default_rng(0)
    for clip in range(60):
        w = rng.random((5, len(names))) ** (8 if clip % 2 else 1) * rng.random()  # sparse or dense evidence
        w[:, rng.integers(len(names), size=3)] = rng.random((5, 3))  # a few strong classes
        got = name_sources(w, names, threshold=0.3, max_sources=3, max_moments=2)
        mean, peak = w.mean(0), w.max(0)
        through = [t for t in _best_per_source_every_class(mean, names)[:3] if t[1] >= MIN_SOURCE_SCORE]
        through.sort(key=lambda t: (t[1] < 0.3, t[3] == "generic"))
        named = [set(t[0].split()) for t in through]
        moments = [t for t in _best_per_source_every_class(peak, names)
                   if t[1] >= 0.3 and not any(set(t[0].split()) & n for n in named)][:2]
        assert got.through == [(t[0], t[1] >= 0.3) for t in through]
        assert got.moments == [t[0] for t in moments]
