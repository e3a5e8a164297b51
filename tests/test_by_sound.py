"""Query by sound (explorer/by_sound): uploads decoded like the probing set, nothing left on disk, the activations
stage's values for a clip, neurons ranked by percentile."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from and_engine.audio import AudioIssue, inspect_audio, load_clip
from and_engine.config import PROJECT_ROOT
from and_engine.explorer import by_sound

DEMO_CLIP = PROJECT_ROOT / "data" / "demo" / "audio" / "crackling_fire" / "crackling_fire_05.ogg"


@pytest.fixture
def tmpdir_watch(tmp_path, monkeypatch):
    """Temporary files go to a folder of their own, so a test can see that none is left."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_an_upload_decodes_as_the_probing_set_does_and_leaves_no_file(tmpdir_watch):
    wave = by_sound.decode_upload(DEMO_CLIP.read_bytes(), "my recording.ogg", 16000, 5.0)
    assert np.array_equal(wave, load_clip(DEMO_CLIP, 16000, 5.0))
    assert list(tmpdir_watch.iterdir()) == []


def _bad_files(folder):
    rate = 16000
    files = {"empty.wav": b"", "notes.txt": b"hello"}
    (folder / "text.wav").write_text("this is not audio at all")
    sf.write(folder / "silent.wav", np.zeros(rate), rate)
    sf.write(folder / "short.wav", 0.5 * np.sin(np.arange(800) / 5), rate)
    nan = 0.1 * np.ones(rate, dtype=np.float32)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, rate, subtype="FLOAT")
    files.update({p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".wav"})
    return files


def test_bad_files_get_the_probing_sets_reasons_and_leave_no_file(tmp_path, tmpdir_watch):
    folder = tmp_path / "bad"
    folder.mkdir()
    files = _bad_files(folder)
    for name, data in files.items():
        with pytest.raises(AudioIssue) as caught:
            by_sound.decode_upload(data, name, 16000, 5.0)
        assert str(caught.value).startswith(f"{name}: ")  # the user's name, never the temporary path
        assert "and-upload-" not in str(caught.value)
        if (folder / name).is_file() and name != "empty.wav":
            with pytest.raises(AudioIssue) as probed:
                inspect_audio(folder / name)
            assert caught.value.reason == probed.value.reason  # the probing set's words
        assert list(tmpdir_watch.iterdir()) == [], name
    reasons = {n: _reason(d, n) for n, d in files.items()}
    assert reasons["empty.wav"] == "empty file (0 bytes)" and "unsupported extension '.txt'" in reasons["notes.txt"]
    assert "silent" in reasons["silent.wav"] and "too short" in reasons["short.wav"]
    assert "NaN" in reasons["nan.wav"] and "text" in reasons["text.wav"]


def _reason(data: bytes, name: str) -> str:
    try:
        by_sound.decode_upload(data, name, 16000, 5.0)
    except AudioIssue as exc:
        return exc.reason
    raise AssertionError(f"{name} was accepted")


def test_the_temporary_file_goes_even_when_decoding_fails_unexpectedly(tmpdir_watch, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("decoder crashed")

    monkeypatch.setattr(by_sound, "load_clip", boom)
    with pytest.raises(RuntimeError, match="decoder crashed"):
        by_sound.decode_upload(DEMO_CLIP.read_bytes(), "a.ogg", 16000, 5.0)
    assert list(tmpdir_watch.iterdir()) == []


def test_top_neurons_rank_by_percentile_then_standard_score():
    ref = {"l1": np.array([[0.0, 0.0, 5.0], [1.0, 1.0, 6.0], [2.0, 2.0, 7.0]]), "l2": np.zeros((3, 1))}
    top = by_sound.top_neurons({"l1": np.array([3.0, 9.0, 5.5]), "l2": np.array([0.0])}, ref, per_layer=2)
    assert top["layer"].tolist() == ["l1", "l1", "l2"]
    assert top["neuron"].tolist() == [1, 0, 0]  # both above every probing clip: the further one first
    assert top["percentile"].tolist() == [100.0, 100.0, 50.0]


@pytest.mark.slow
def test_a_probing_clip_queried_by_sound_gives_its_stored_activations(tiny_build):
    """The demo clip run through the pretrained YAMNet as an upload = the build's stored activations of it."""
    from and_engine.explorer import aggregates, live, queries
    from and_engine.store.results import ResultsStore

    _path, config, _ = tiny_build
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        clips = queries.clips(store)  # the tiny build's SAE layer too, attached as the page attaches it
        model = live.load_model(config, "yamnet", clips.reset_index(), aggregates.sae_checkpoints(store, "yamnet"))
        specs = [model.layer(n) for n in queries.layers(store, "yamnet")["layer"]]
        clip_id = int(clips.index[0])
        data = (live.audio_root(config) / clips.loc[clip_id, "rel_path"]).read_bytes()
        wave = by_sound.decode_upload(data, clips.loc[clip_id, "rel_path"], model.sample_rate, 5.0)
        acts, maps = by_sound.clip_activations(model, wave, specs, config.activations.pool)
        for spec in specs:
            stored = store.read_activations("yamnet", spec.name)
            assert np.allclose(acts[spec.name], stored[clip_id], atol=1e-4), spec.name
            assert maps[spec.name].shape == (spec.n_neurons, spec.map_freq, spec.map_time)
            assert np.allclose(maps[spec.name].mean(axis=(1, 2)), stored[clip_id], atol=1e-4)  # conv: mean pool
