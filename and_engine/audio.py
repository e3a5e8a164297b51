"""Decoding audio files: any rate / channel count / sample format -> mono float32 at a target rate.

``inspect_audio`` validates a file and says why it is unusable (``AudioIssue``); ``load_clip`` returns a
fixed-length mono waveform. Formats: whatever libsndfile reads (wav, flac, ogg, mp3 in recent builds),
with librosa/audioread as a fallback for the rest. An undecodable file is described by what its first bytes
are; the MP3 decoder's own notes ("Illegal Audio-MPEG-Header ...") are kept off the terminal.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class AudioIssue(ValueError):
    """A file that cannot be used as a clip; ``reason`` is a short human-readable explanation."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int


BLOCK_FRAMES = 1 << 16  # frames decoded at a time when a whole file is scanned
RESAMPLE_MARGIN_S = 0.5  # decoded beyond a clip's end so the resampler sees the same input near the cut


_MAGIC = ((b"RIFF", "a WAV (RIFF) header"), (b"fLaC", "a FLAC header"), (b"OggS", "an Ogg header"),
          (b"ID3", "an MP3 ID3 tag"))
_DECODER_NOTE = re.compile(r"^(Note|Warning|Error): |^\[src/libmpg123/")  # mpg123's messages on fd 2
_STDERR_LOCK = threading.Lock()


def _first_bytes(path: Path) -> str:
    """What a file's first bytes are, in words ("an Ogg header", "text", "bytes 00 1a ...")."""
    with path.open("rb") as fh:
        head = fh.read(16)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "an MPEG audio frame header"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return f"text ({head.decode()[:12]!r}...), not audio"
    return f"no known audio header (bytes {head[:8].hex(' ')})"


def _undecodable(path: Path, exc: Exception) -> AudioIssue:
    """The true reason a file that exists could not be decoded (libsndfile calls some of them "does not exist")."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    detail = re.sub(r"^Error opening .*?: ", "", detail)
    detail = "" if "does not exist" in detail else f"; decoder: {detail[:100]}"
    return AudioIssue(path, f"unreadable {path.suffix.lower().lstrip('.') or 'audio'} file: it starts with "
                            f"{_first_bytes(path)} (corrupt, truncated or another format){detail}")


@contextmanager
def _decoder_notes_silenced(path: Path) -> Iterator[None]:
    """While an MP3 is decoded, fd 2 goes to a temporary file: mpg123's notes are dropped, anything else
    written meanwhile (another thread's log line) is written back afterwards. Other formats: nothing."""
    if path.suffix.lower() != ".mp3":
        yield
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            other = [ln for ln in tmp.read().decode(errors="replace").splitlines(True) if not _DECODER_NOTE.match(ln)]
            if other:
                sys.stderr.write("".join(other))


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise AudioIssue(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioIssue(path, "empty file (0 bytes)")


def _decode_fallback(path: Path, seconds: float | None, sf_exc: Exception) -> tuple[np.ndarray, int]:
    """librosa/audioread for what libsndfile cannot read (mp3 on old builds) -> (frames, channels) float64."""
    try:
        import warnings

        import librosa

        with warnings.catch_warnings(), _decoder_notes_silenced(path):
            warnings.simplefilter("ignore")
            mono, rate = librosa.load(str(path), sr=None, mono=False, duration=seconds)
        return np.atleast_2d(mono).T.astype(np.float64), int(rate)
    except Exception:
        raise _undecodable(path, sf_exc) from None


def _decode(path: Path, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """-> (frames, channels) float64 samples of the first ``seconds`` (all when None) and the file's rate;
    only those frames are decoded."""
    _check_file(path)
    try:
        with _decoder_notes_silenced(path), sf.SoundFile(str(path)) as f:
            frames = -1 if seconds is None else int(np.ceil(seconds * f.samplerate))
            data, rate = f.read(frames, dtype="float64", always_2d=True), f.samplerate
    except Exception as sf_exc:  # libsndfile could not read it: try librosa/audioread
        return _decode_fallback(path, seconds, sf_exc)
    return data, int(rate)


@dataclass(frozen=True)
class _Scan:
    frames: int
    rate: int
    channels: int
    finite: bool
    peak: float


def _scan(path: Path) -> _Scan:
    """Read a whole file block by block (memory bounded by BLOCK_FRAMES) -> frames, rate, channels, whether
    every sample is finite, and the peak absolute sample."""
    _check_file(path)
    try:
        with _decoder_notes_silenced(path), sf.SoundFile(str(path)) as f:
            n, finite, peak = 0, True, 0.0
            for block in f.blocks(BLOCK_FRAMES, dtype="float64", always_2d=True):
                n += block.shape[0]
                if block.size:
                    finite = finite and bool(np.isfinite(block).all())
                    peak = max(peak, float(np.max(np.abs(block)))) if finite else peak
            return _Scan(n, int(f.samplerate), int(f.channels), finite, peak)
    except Exception as sf_exc:
        data, rate = _decode_fallback(path, None, sf_exc)
        finite = bool(np.isfinite(data).all())
        return _Scan(data.shape[0], rate, data.shape[1], finite,
                     float(np.max(np.abs(data))) if finite and data.size else 0.0)


def _validate(path: Path, scan: _Scan, min_seconds: float, silence_dbfs: float) -> None:
    if scan.rate <= 0:
        raise AudioIssue(path, f"invalid sample rate {scan.rate}")
    if scan.frames == 0:
        raise AudioIssue(path, "no audio frames")
    if not scan.finite:
        raise AudioIssue(path, "contains NaN or infinite samples")
    duration = scan.frames / scan.rate
    if duration < min_seconds:
        raise AudioIssue(path, f"too short: {duration:.3f} s < {min_seconds} s")
    peak_db = 20 * np.log10(scan.peak) if scan.peak > 0 else -np.inf
    if peak_db < silence_dbfs:
        raise AudioIssue(path, f"silent: peak {peak_db:.1f} dBFS < {silence_dbfs} dBFS")


def inspect_audio(path: Path, min_seconds: float = 0.25, silence_dbfs: float = -70.0) -> AudioInfo:
    """Decode and validate ``path`` block by block (memory flat in the file's length) -> AudioInfo; raises
    AudioIssue naming the reason."""
    path = Path(path)
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise AudioIssue(path, f"unsupported extension {path.suffix!r} (expected one of {AUDIO_EXTENSIONS})")
    scan = _scan(path)
    _validate(path, scan, min_seconds, silence_dbfs)
    return AudioInfo(duration_s=scan.frames / scan.rate, sample_rate=scan.rate, channels=scan.channels)


def to_mono_resampled(data: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """(frames, channels) at ``rate`` -> (frames',) float32 mono at ``target_rate``."""
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if rate != target_rate:
        import soxr

        mono = soxr.resample(mono, rate, target_rate, quality="HQ")
    return np.asarray(mono, dtype=np.float32)


def fix_length(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim to the first ``n_samples`` or zero-pad at the end -> (n_samples,) float32."""
    out = np.zeros(n_samples, dtype=np.float32)
    n = min(n_samples, wave.shape[0])
    out[:n] = wave[:n]
    return out


def load_clip(path: Path, sample_rate: int, clip_seconds: float) -> np.ndarray:
    """Decode ``path`` -> (round(sample_rate * clip_seconds),) float32 mono at ``sample_rate``. Only the first
    ``clip_seconds`` (+ RESAMPLE_MARGIN_S) are decoded and resampled, whatever the file's length."""
    data, rate = _decode(Path(path), clip_seconds + RESAMPLE_MARGIN_S)
    return fix_length(to_mono_resampled(data, rate, sample_rate), int(round(sample_rate * clip_seconds)))
