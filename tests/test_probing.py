"""Probing sets: the embedded demo, ESC-50 layout, folders with bad files, CSV lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from and_engine.audio import fix_length, load_clip
from and_engine.config import PROJECT_ROOT, ProbingSetConfig
from and_engine.probing import ProbingSetError, open_probing_set, safe_join

DEMO = PROJECT_ROOT / "data" / "demo"


def _tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def make_messy_folder(root: Path) -> Path:
    """label folders with good files and every kind of bad one -> root."""
    (root / "dog").mkdir(parents=True)
    (root / "rain").mkdir()
    sf.write(root / "dog" / "good_16k.wav", _tone(2.0, 16000), 16000)
    sf.write(root / "dog" / "eight_bit.wav", _tone(1.0, 22050), 22050, subtype="PCM_U8")
    sf.write(root / "rain" / "stereo_48k.flac", _tone(3.0, 48000, 1000, channels=2), 48000)
    sf.write(root / "rain" / "good.ogg", _tone(1.5, 16000, 300), 16000)
    sf.write(root / "rain" / "silent.wav", np.zeros(16000), 16000)
    sf.write(root / "rain" / "short.wav", _tone(0.1, 16000), 16000)
    nan_wave = _tone(1.0, 16000)
    nan_wave[100] = np.nan
    sf.write(root / "dog" / "nan.wav", nan_wave, 16000, subtype="FLOAT")
    (root / "dog" / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 20)
    (root / "dog" / "empty.wav").write_bytes(b"")
    (root / "rain" / "notes.txt").write_text("not audio")
    return root


def test_demo_set_has_26_classes_with_folds():
    ps = open_probing_set(ProbingSetConfig(), DEMO)
    assert len(ps.class_names) == 26
    assert len(ps.clips) == 251 and ps.issues.empty
    assert sorted(ps.clips["fold"].unique()) == [1, 2, 3, 4, 5]
    assert ps.clips["clip_id"].tolist() == list(range(251))
    assert ps.clips["rel_path"].is_monotonic_increasing
    assert (ps.clips["license"] != "").all() and (ps.clips["source"] != "").all()
    # folds keep every class in the held-out fold (the demo's design)
    assert ps.clips[ps.clips.fold == 1]["label"].nunique() == 26


def test_messy_folder_reports_bad_files_by_name_and_loads_the_rest(tmp_path):
    root = make_messy_folder(tmp_path / "messy")
    ps = open_probing_set(ProbingSetConfig(kind="folder", path=str(root)), root)
    assert sorted(ps.clips["rel_path"]) == ["dog/eight_bit.wav", "dog/good_16k.wav", "rain/good.ogg",
                                            "rain/stereo_48k.flac"]
    reasons = dict(zip(ps.issues["rel_path"], ps.issues["reason"]))
    assert set(reasons) == {"dog/corrupt.wav", "dog/empty.wav", "dog/nan.wav", "rain/silent.wav",
                            "rain/short.wav", "rain/notes.txt"}
    assert "silent" in reasons["rain/silent.wav"]
    assert "too short" in reasons["rain/short.wav"]
    assert "NaN" in reasons["dog/nan.wav"]
    assert "empty" in reasons["dog/empty.wav"]
    assert "unreadable" in reasons["dog/corrupt.wav"]
    assert "extension" in reasons["rain/notes.txt"]
    stereo = ps.clips.set_index("rel_path").loc["rain/stereo_48k.flac"]
    assert stereo.orig_sample_rate == 48000 and stereo.orig_channels == 2
    waves = ps.load_waveforms(16000, 2.0)
    assert waves.shape == (4, 32000) and waves.dtype == np.float32
    assert np.isfinite(waves).all() and (np.abs(waves).max(axis=1) > 0.1).all()
    # every file without a fold got one, round-robin per label
    assert set(ps.clips["fold"]) <= {1, 2, 3, 4, 5}


def test_resampling_keeps_pitch_and_fixes_length(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(1.0, 48000, 1000, channels=2), 48000)
    wave = load_clip(path, 16000, 2.0)
    assert wave.shape == (32000,)
    spectrum = np.abs(np.fft.rfft(wave[:16000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 1000) <= 2  # 1 Hz bins over 1 s
    assert np.all(wave[16100:] == 0)  # padded with zeros after the 1 s of audio
    assert fix_length(np.ones(10, np.float32), 4).tolist() == [1, 1, 1, 1]


def test_esc50_layout(tmp_path):
    root = tmp_path / "ESC-50"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for i, (cat, fold) in enumerate([("dog", 1), ("dog", 2), ("rain", 1), ("rain", 3)]):
        name = f"{fold}-{i}-A-{i}.wav"
        sf.write(root / "audio" / name, _tone(5.0, 44100, 200 + 100 * i), 44100)
        rows.append(f"{name},{fold},{i},{cat},False,{i},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    ps = open_probing_set(ProbingSetConfig(kind="esc50", path=str(root)), root)
    assert ps.class_names == ["dog", "rain"] and ps.clips["fold"].tolist() == [1, 1, 2, 3]  # sorted by path
    assert ps.load_waveforms(16000, 5.0).shape == (4, 80000)


def test_csv_list_with_and_without_folds(tmp_path):
    make_messy_folder(tmp_path / "a")
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,label,fold\na/dog/good_16k.wav,dog,2\na/rain/good.ogg,rain,\na/rain/silent.wav,rain,1\n")
    ps = open_probing_set(ProbingSetConfig(kind="csv", path=str(csv_path)), csv_path)
    assert ps.clips["rel_path"].tolist() == ["a/dog/good_16k.wav", "a/rain/good.ogg"]
    assert ps.clips["fold"].tolist() == [2, 1]
    assert ps.issues["rel_path"].tolist() == ["a/rain/silent.wav"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\nx.wav,dog\n")
    with pytest.raises(ProbingSetError, match="path,label"):
        open_probing_set(ProbingSetConfig(kind="csv"), bad)


def test_paths_cannot_escape_the_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.wav").write_bytes(b"x")
    for rel in ["../secret.wav", str(tmp_path / "secret.wav"), "a/../../secret.wav"]:
        with pytest.raises(ValueError, match="outside"):
            safe_join(tmp_path / "root", rel)
    (tmp_path / "root" / "link.wav").symlink_to(tmp_path / "secret.wav")
    with pytest.raises(ValueError, match="outside"):
        safe_join(tmp_path / "root", "link.wav")
    csv_path = tmp_path / "root" / "list.csv"
    csv_path.write_text("path,label\n../secret.wav,x\n")
    with pytest.raises(ProbingSetError, match="no usable clip"):
        open_probing_set(ProbingSetConfig(kind="csv"), csv_path)


def test_missing_or_unknown_sets_fail_clearly(tmp_path):
    with pytest.raises(ProbingSetError, match="not found"):
        open_probing_set(ProbingSetConfig(kind="folder"), tmp_path / "nope")
    with pytest.raises(ProbingSetError, match="unknown probing_set.kind"):
        open_probing_set(ProbingSetConfig(kind="zip"), tmp_path)
    with pytest.raises(ProbingSetError, match="esc50.csv"):
        open_probing_set(ProbingSetConfig(kind="esc50"), tmp_path)


def test_max_clips_keeps_a_stratified_subset():
    ps = open_probing_set(ProbingSetConfig(max_clips=52), DEMO)
    assert len(ps.clips) == 52 and ps.clips["label"].value_counts().eq(2).all()
