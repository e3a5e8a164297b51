"""A new user's own folder: a wrong layout is named with the layouts accepted and what was found instead; a
probing set on which results would be meaningless is refused (or warned about) with the reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from test_probing import _tone

from and_engine.audio import AudioIssue, inspect_audio
from and_engine.cli import main
from and_engine.config import Config, ModelConfig, ProbingSetConfig, RunConfig
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.probing import ProbingSetError, open_probing_set, problems, refusals


def labelled_folder(root: Path, labels=("dog", "rain"), per_label: int = 3) -> Path:
    """``root/<label>/<i>.wav`` tones -> root."""
    for j, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            sf.write(root / label / f"{i}.wav", _tone(1.0, 16000, 200 + 100 * i + 37 * j), 16000)
    return root


def _error(kind: str, path: Path) -> str:
    with pytest.raises(ProbingSetError) as err:
        open_probing_set(ProbingSetConfig(kind=kind, path=str(path)), path)
    return str(err.value)


def test_a_meta_csv_with_nested_label_folders_names_the_layouts_and_what_it_found(tmp_path):
    root = tmp_path / "mine"
    labelled_folder(root / "audio")
    (root / "meta.csv").write_text("file,category\naudio/dog/0.wav,dog\n")
    msg = _error("folder", root)
    assert "no file in any label sub-folder" in msg
    assert all(f"    {kind:<7}" in msg for kind in ("folder", "demo", "esc50", "csv"))  # every layout, one a line
    assert "meta.csv with columns file,category: not the demo layout" in msg
    assert f"label folders with audio inside audio/: give {root / 'audio'} as the folder" in msg


def test_a_file_or_a_missing_path_is_named_as_such(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\n")
    assert "list.csv is a file, not a folder; a CSV probing set is kind csv" in _error("folder", listing)
    assert "nothing exists at" in _error("folder", tmp_path / "nope")
    assert "is not a file" in _error("csv", tmp_path) and "accepted layouts" in _error("csv", tmp_path)
    (tmp_path / "meta.csv").write_text("filename,label,fold\n")
    assert "the demo layout, kind demo" in _error("folder", tmp_path)
    (tmp_path / "loose.wav").write_bytes(b"")
    assert "1 audio file(s) directly in the folder" in _error("folder", tmp_path)


def test_probe_command_prints_the_layouts_on_a_wrong_one(tmp_path, capsys):
    root = tmp_path / "mine"
    labelled_folder(root / "audio")
    assert main(["probe", str(root)]) == 1
    err = capsys.readouterr().err
    assert "found:" in err and "accepted layouts" in err and "give" in err


def test_problems_that_make_results_meaningless():
    clips = pd.DataFrame({"label": ["a"] * 3 + ["b"] * 3, "fold": [1, 2, 3] * 2})
    assert problems(clips, 3, 1) == []
    few = problems(clips, 4, 1)
    assert [p.refuses for p in few] == ["always"] and "top-K and bottom-K need 2 x activations.top_k = 8" in \
        few[0].message
    one = problems(clips.assign(label="a"), 3, 1)
    assert [p.refuses for p in one] == ["trained"] and "one label only" in one[0].message
    assert refusals(one, trains=False) == ([], [one[0].message])
    assert refusals(one, trains=True) == ([one[0].message], [])
    assert "held-out fold 1 has no clip (folds present: [2])" in problems(clips.assign(fold=2), 3, 1)[0].message
    assert "every clip" in problems(clips.assign(fold=1), 3, 1)[0].message


def _config(tmp_path: Path, root: Path, *models: ModelConfig) -> Config:
    return Config(run=RunConfig(database=str(tmp_path / "r.duckdb"), cache_dir=str(tmp_path / "cache")),
                  probing_set=ProbingSetConfig(kind="folder", path=str(root)), models=models or (ModelConfig(),))


def test_build_refuses_too_few_clips_for_top_k_and_bottom_k(tmp_path):
    root = labelled_folder(tmp_path / "four", per_label=2)
    with pytest.raises(ProbingSetError, match="4 usable clip.* 2 x activations.top_k = 10"):
        build(_config(tmp_path, root), Progress(quiet=True), until="probe")
    assert not (tmp_path / "r.duckdb").exists()  # refused before anything was computed: no database is left


def test_one_label_refuses_a_trained_variant_and_warns_otherwise(tmp_path):
    root = labelled_folder(tmp_path / "one", labels=("dog",), per_label=10)
    with pytest.raises(ProbingSetError, match="one label only"):
        build(_config(tmp_path, root, ModelConfig(name="f", kind="yamnet-frozen")), Progress(quiet=True),
              until="probe")
    progress = Progress(quiet=True)
    build(_config(tmp_path, root), progress, until="probe")  # pretrained YAMNet: dissecting one class is allowed
    assert any(m.startswith("warning: one label only ('dog')") for m in progress.messages)


def test_probe_command_says_what_a_build_would_refuse(tmp_path, capsys):
    root = labelled_folder(tmp_path / "one", labels=("dog",), per_label=3)
    assert main(["probe", str(root)]) == 0
    out = capsys.readouterr().out
    assert "a build would refuse: 3 usable clip(s)" in out and "one label only" in out


def test_a_demo_meta_csv_with_a_missing_fold_names_the_row(tmp_path):
    labelled_folder(tmp_path, per_label=1)
    (tmp_path / "meta.csv").write_text("filename,label,fold\ndog/0.wav,dog,1\nrain/0.wav,rain,\n")
    assert "no fold in 1 row(s), first 'rain/0.wav' (csv line 3)" in _error("demo", tmp_path)


def test_a_broken_mp3_gets_its_true_reason_and_no_decoder_noise(tmp_path, capfd):
    sf.write(tmp_path / "tone.mp3", _tone(2.0, 16000), 16000, format="MP3")
    data = bytearray((tmp_path / "tone.mp3").read_bytes())
    data[len(data) // 2: len(data) // 2 + 400] = bytes(400)  # a hole of zeros mid-stream: mpg123 resyncs, noisily
    (tmp_path / "holes.mp3").write_bytes(bytes(data))
    (tmp_path / "random.mp3").write_bytes(bytes(range(7, 251)) * 20)
    (tmp_path / "page.mp3").write_text("<html><body>404 not found</body></html>")
    capfd.readouterr()
    assert inspect_audio(tmp_path / "holes.mp3").duration_s > 1.0  # decodable despite the hole
    reasons = {}
    for name in ("random.mp3", "page.mp3"):
        with pytest.raises(AudioIssue) as err:
            inspect_audio(tmp_path / name)
        reasons[name] = err.value.reason
    assert not any("does not exist" in r for r in reasons.values())  # libsndfile's words for "not MP3"
    assert reasons["random.mp3"].startswith("unreadable mp3 file: it starts with no known audio header (bytes 07")
    assert "starts with text ('<html><body>'...), not audio" in reasons["page.mp3"]
    assert capfd.readouterr().err == ""  # mpg123's "Note: Illegal Audio-MPEG-Header ..." stays off the terminal
