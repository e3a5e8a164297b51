"""Caches shared between builds and within one: the trained-checkpoint cache under ``run.cache_dir``, the
model-identity digests, the text encoder's memo (issue 12, items 9, 13 and 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import soundfile as sf

from and_engine.config import PROJECT_ROOT


def _tone(path, seconds: float = 1.0, rate: int = 16000) -> None:
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate), rate)


def test_two_builds_sharing_a_cache_dir_train_a_checkpoint_once(tmp_path):
    """Two processes ask for the same trained variant at the same moment (tests/_cache_race.py): one trains
    it, the other waits for the lock and loads it; the checkpoint holds one build's files only, and no
    temporary folder is left behind. (Before: both trained into one fixed ``<key>.tmp`` folder; one crashed
    or the cache kept one build's meta with the other's weights.)"""
    folder = tmp_path / "set"
    for label in ("cow", "rain"):
        (folder / label).mkdir(parents=True)
        for i in range(2):
            _tone(folder / label / f"{i}.wav")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    cmd = [sys.executable, str(PROJECT_ROOT / "tests" / "_cache_race.py"), str(folder), str(tmp_path / "cache"),
           str(tmp_path / "go")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # both processes have imported everything and wait for the signal
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(r["trained"] for r in results) == [False, True]
    owner = results[0]["weights"]
    assert all(r["weights"] == r["extra"] == r["meta"] == owner for r in results)
    models = tmp_path / "cache" / "models"
    assert [p.name for p in models.iterdir() if ".tmp" in p.name] == []


def test_a_mid_file_edit_changes_the_model_identity(tmp_path, monkeypatch):
    """Weights edited in the middle, size and modification time kept (before: only the size and the first and
    last MiB were hashed, so the LLM cache served the old model's answers)."""
    from and_engine import model_identity as mi

    monkeypatch.setenv("AND_ENGINE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model.gguf"
    weights.write_bytes(bytes(5 << 20))
    before = mi.model_identity(weights)
    stat = weights.stat()
    with weights.open("r+b") as fh:
        fh.seek(5 << 19)
        fh.write(b"\x01")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the edit hides its modification time
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert mi.model_identity(weights) != before


def test_file_digests_are_read_once_per_version(tmp_path, monkeypatch):
    """The whole file is hashed once; later calls, in this process or another, use the digest kept by
    (path, size, mtime, inode, ctime)."""
    from and_engine import model_identity as mi

    monkeypatch.setenv("AND_ENGINE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(os.urandom(3 << 20))
    (weights.parent / "config.json").write_text("{}")
    first = mi.model_identity(weights.parent)
    reads, hash_file = [], mi._hash_file
    monkeypatch.setattr(mi, "_hash_file", lambda path: reads.append(path.name) or hash_file(path))
    assert mi.model_identity(weights.parent) == first and reads == []
    monkeypatch.setattr(mi, "_MEMO", {})  # a new process: the cache file answers
    assert mi.model_identity(weights.parent) == first and reads == []
    assert len(json.loads(mi.cache_path().read_text())) == 2
    weights.write_bytes(os.urandom(3 << 20))  # a new version: hashed again, the old entry dropped
    assert mi.model_identity(weights.parent) != first and reads == ["model.safetensors"]
    assert len(json.loads(mi.cache_path().read_text())) == 2


def test_clip_and_clap_encoders_are_identified_by_content(tmp_path, monkeypatch):
    from _dissect_fixtures import save_tiny_clap, save_tiny_clip

    from and_engine.backends.registry import make

    monkeypatch.setenv("AND_ENGINE_CACHE", str(tmp_path / "cache"))
    for kind, name, save in (("text_encoder", "clip", save_tiny_clip), ("audio_text", "clap", save_tiny_clap)):
        path = save(tmp_path / name)
        before = make(kind, f"{name}:{path}").describe()["model"]
        save(path, seed=1)  # retrained in place: same directory, other weights
        after = make(kind, f"{name}:{path}").describe()["model"]
        assert before.startswith(f"{name}#") and after != before


def test_the_text_encoder_memo_stays_bounded_on_a_long_input():
    """40 batches of 250 new texts (10,000 distinct texts): the memo keeps the most recent ``memo_size`` and
    memory stays flat (before: every text of the build stayed, ~1.9 KB each); recent texts are not embedded
    again."""
    import tracemalloc

    from fakes import memo_word_vectors

    enc = memo_word_vectors()
    enc.memo_size = 1_000
    tracemalloc.start()
    sizes = []
    for batch in range(40):
        texts = [f"t{batch}_{i}" for i in range(250)]
        rows = enc.encode(texts + texts[:10])  # repeats inside a batch are embedded once
        assert rows.shape == (260, 384)
        np.testing.assert_array_equal(rows[250:], rows[:10])
        if batch in (9, 39):
            sizes.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert len(enc._memo) == 1_000 and enc.n_embedded == 10_000
    assert sizes[1] - sizes[0] < 1 << 20, f"memory grew by {(sizes[1] - sizes[0]) / 2**20:.1f} MiB"
    again = enc.encode(["t39_0", "t38_249"])  # still in the memo
    assert enc.n_embedded == 10_000
    np.testing.assert_allclose(again, enc.vectors.encode(["t39_0", "t38_249"]), atol=1e-6)
    enc.encode(["t0_0"])  # dropped long ago: embedded again
    assert enc.n_embedded == 10_001 and enc.last == ["t0_0"]



def test_a_lock_that_cannot_be_created_does_not_stop_a_reader(tmp_path):
    """The app's live pruning looks checkpoints up in a cache it may not write: where the lock file cannot be
    created, the block runs unlocked (nothing could be written there either)."""
    from and_engine.cache_files import file_lock

    (tmp_path / "not-a-folder").write_text("")
    ran = []
    with file_lock(tmp_path / "not-a-folder" / "x.lock"):
        ran.append(True)
    assert ran == [True]
