"""Input a user will have: non-UTF-8 file names, CSV lists with gaps and repeats, hour-long recordings,
summaries with possessives (issue 12, items 6, 7, 8, 11)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from fakes import LexiconTagger, ScriptedLLM

from and_engine.audio import inspect_audio, load_clip
from and_engine.config import ProbingSetConfig
from and_engine.probing import count_entries, open_probing_set
from and_engine.stages import module_c
from and_engine.store.results import ResultsStore
from and_engine.text.prompts import build_adjective_prompt, parse_prompt


def _tone(path: Path, seconds: float = 1.0, rate: int = 16000, channels: int = 1) -> None:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)


def test_a_file_name_that_is_not_utf8_is_reported_not_fatal(tmp_path, capsys):
    from and_engine.cli import main

    root = tmp_path / "set"
    (root / "dog").mkdir(parents=True)
    _tone(root / "dog" / "good.wav")
    with open(os.fsencode(root / "dog") + b"/caf\xe9.wav", "wb") as fh:  # a Latin-1 name: not UTF-8
        fh.write((root / "dog" / "good.wav").read_bytes())
    ps = open_probing_set(ProbingSetConfig(kind="folder", path=str(root)), root)
    assert ps.clips["rel_path"].tolist() == ["dog/good.wav"]
    assert ps.issues["rel_path"].tolist() == ["dog/caf\\xe9.wav"]
    assert "not valid UTF-8" in ps.issues["reason"].iloc[0]
    with ResultsStore(tmp_path / "r.duckdb") as store:  # the clips step's tables store as text
        store.commit_step("r", "clips", {}, {}, "fp", {"clips": ps.clips, "clip_issues": ps.issues}, None, "v")
        assert store.read("clip_issues")["rel_path"].tolist() == ["dog/caf\\xe9.wav"]
    assert main(["probe", str(root)]) == 0
    assert "caf\\xe9.wav" in capsys.readouterr().out


def test_csv_rows_without_a_label_or_with_two_labels_are_reported(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        _tone(tmp_path / name)
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,label,fold\n"
                        "a.wav,dog,1\n"
                        "b.wav\n"              # no label at all (a short row)
                        "c.wav,cat,2\n"
                        "./c.wav,bird,2\n"     # the same file, another label
                        "d.wav,dog,3\n"
                        "d.wav,dog,3\n"        # the same file listed twice alike: one clip
                        ",dog,1\n")            # no path
    cfg = ProbingSetConfig(kind="csv", path=str(csv_path))
    ps = open_probing_set(cfg, csv_path)
    assert ps.clips["rel_path"].tolist() == ["a.wav", "d.wav"]
    reasons = dict(zip(ps.issues["rel_path"], ps.issues["reason"]))
    assert reasons["b.wav"] == "list.csv line 3: no label"
    assert reasons["list.csv line 8"] == "list.csv line 8: no path"
    assert "different labels" in reasons["c.wav"] and "'cat'" in reasons["c.wav"] and "'bird'" in reasons["c.wav"]
    assert "./c.wav" in reasons and len(ps.issues) == 4
    assert count_entries(cfg, csv_path) == 6  # 2 clips + 4 reported


def test_long_recordings_are_read_only_as_far_as_needed(tmp_path):
    """A 2-minute 48 kHz stereo file: validating it and cutting a 5 s clip stay within a few MB (the whole file
    decoded as float64 would be 88 MB, resampled whole another 60 MB)."""
    path = tmp_path / "long.wav"
    rate, rng = 48000, np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", rate, 2, subtype="PCM_16") as f:
        for _ in range(12):
            f.write(0.1 * rng.standard_normal((rate * 10, 2)))
    for fn in (lambda: inspect_audio(path), lambda: load_clip(path, 16000, 5.0)):
        tracemalloc.start()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert out.shape == (80000,)
    info = inspect_audio(path)
    assert info.duration_s == 120.0 and info.channels == 2


def test_a_cut_clip_equals_the_whole_file_resampled_then_cut(tmp_path):
    from and_engine.audio import fix_length, to_mono_resampled

    rng = np.random.default_rng(1)
    for rate, seconds in ((44100, 7.3), (48000, 30.0), (8000, 9.0)):
        data = 0.3 * rng.standard_normal((int(rate * seconds), 2))
        sf.write(tmp_path / "x.wav", data, rate, subtype="FLOAT")
        data, _ = sf.read(tmp_path / "x.wav", dtype="float64", always_2d=True)
        whole = fix_length(to_mono_resampled(data, rate, 16000), 80000)
        np.testing.assert_array_equal(load_clip(tmp_path / "x.wav", 16000, 5.0), whole)


def test_silence_and_nan_are_still_found_past_the_first_block(tmp_path):
    rate = 16000
    wave = np.zeros(rate * 10)
    wave[-100] = 0.5  # the only sound is at the very end
    sf.write(tmp_path / "late.wav", wave, rate, subtype="FLOAT")
    assert inspect_audio(tmp_path / "late.wav").duration_s == 10.0
    wave[-50] = np.nan
    sf.write(tmp_path / "nan.wav", wave, rate, subtype="FLOAT")
    import pytest

    from and_engine.audio import AudioIssue

    with pytest.raises(AudioIssue, match="NaN"):
        inspect_audio(tmp_path / "nan.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(rate * 10), rate)
    with pytest.raises(AudioIssue, match="silent"):
        inspect_audio(tmp_path / "silent.wav")


def test_a_possessive_is_promptable_and_never_an_adjective():
    """spaCy tags "man's" in "a man's deep voice" as an adjective: the prompt accepts an apostrophe (and
    the rule backend parses it back), and Module C does not offer a possessive as an adjective."""
    prompt = build_adjective_prompt("man's")
    assert parse_prompt(prompt).adjective == "man's"

    spacy_like = LexiconTagger({"man's": "JJ", "deep": "JJ"})  # what spaCy answers for this summary
    words, counts = module_c.tag_words(pd.DataFrame({"neuron": [0], "calibrated_summary": ["a man's deep voice"]}),
                                       spacy_like, ())
    assert words.loc[words["pos"] == "ADJ", "word"].tolist() == ["deep"]
    assert counts["n_adjectives"].tolist() == [1]
    checks = module_c.check_adjectives(["man's", "deep"], ScriptedLLM(["Yes."]))
    assert checks["accepted"].all() and len(checks) == 2

