"""Audio for the app: a safe path resolver, clip decoding for players, and display spectrograms.

Whatever a database row or URL says, audio is read only from inside the probing set's root:
``safe_audio_path`` resolves symlinks and ``..`` and refuses anything that lands outside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class UnsafePathError(ValueError):
    """A clip path points outside the probing set's root (or is not a file); the message names it."""


def safe_audio_path(root: str | Path, rel_path: str) -> Path:
    """(probing-set root, relative path from the DB) -> resolved file path strictly inside ``root``."""
    if not isinstance(rel_path, str) or not rel_path or "\x00" in rel_path:
        raise UnsafePathError(f"invalid clip path {rel_path!r}")
    base = Path(root).resolve()
    if Path(rel_path).is_absolute():
        raise UnsafePathError(f"clip path {rel_path!r} is absolute; only paths inside {base} are served")
    target = (base / rel_path).resolve()
    if not target.is_relative_to(base) or target == base:
        raise UnsafePathError(f"clip path {rel_path!r} resolves outside the probing set root {base}")
    if not target.is_file():
        raise UnsafePathError(f"clip file {rel_path!r} does not exist under {base}")
    return target


def load_clip(root: str | Path, rel_path: str, sample_rate: int = 16000, seconds: float = 5.0) -> np.ndarray:
    """Decode one clip (safely resolved) -> (round(sample_rate * seconds),) float32 mono, as the build saw it."""
    from and_engine.audio import load_clip as decode  # the engine's decoder: same mono / resample / length

    return decode(safe_audio_path(root, rel_path), sample_rate, seconds)


def spectrogram(wave: np.ndarray, sample_rate: int, n_mels: int = 64, hop: int = 160) -> np.ndarray:
    """(n_samples,) waveform -> (n_mels, n_frames) log-mel power in dB (display only)."""
    import librosa

    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"spectrogram needs a non-empty 1-D waveform, got shape {wave.shape}")
    mel = librosa.feature.melspectrogram(y=wave, sr=sample_rate, n_fft=512, hop_length=hop, n_mels=n_mels,
                                         fmax=sample_rate / 2)
    return librosa.power_to_db(mel, ref=np.max(mel) if mel.max() > 0 else 1.0).astype(np.float32)


def upsample_map(act_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(n_freq, n_time) neuron activation map -> ``shape`` (mel bins, frames) by nearest-cell lookup.

    Row 0 of both is the lowest frequency, so the map overlays the spectrogram cell by cell.
    """
    if act_map.ndim != 2 or min(act_map.shape) == 0:
        raise ValueError(f"activation map must be a non-empty 2-D array, got shape {act_map.shape}")
    rows = np.minimum((np.arange(shape[0]) * act_map.shape[0]) // shape[0], act_map.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) * act_map.shape[1]) // shape[1], act_map.shape[1] - 1)
    return act_map[np.ix_(rows, cols)]
