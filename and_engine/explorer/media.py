"""Audio for the app: a safe path resolver, clip decoding for players, and display spectrograms.

Whatever a database row or URL says, audio is read only from inside the probing set's root:
``safe_audio_path`` resolves symlinks and ``..`` and refuses anything that lands outside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from and_engine.probing import safe_join


class UnsafePathError(ValueError):
    """A clip path points outside the probing set's root (or is not a file); the message names it."""


def safe_audio_path(root: str | Path, rel_path: str) -> Path:
    """(probing-set root, relative path from the DB) -> resolved file path strictly inside ``root``."""
    if not isinstance(rel_path, str) or not rel_path or "\x00" in rel_path:
        raise UnsafePathError(f"invalid clip path {rel_path!r}")
    base = Path(root).resolve()
    if Path(rel_path).is_absolute():
        raise UnsafePathError(f"clip path {rel_path!r} is absolute; only paths inside {base} are served")
    try:
        target = safe_join(base, rel_path)
    except ValueError:
        target = None
    if target is None or target == base:
        raise UnsafePathError(f"clip path {rel_path!r} resolves outside the probing set root {base}")
    if not target.is_file():
        raise UnsafePathError(f"clip file {rel_path!r} does not exist under {base}")
    return target


def load_clip(root: str | Path, rel_path: str, sample_rate: int = 16000, seconds: float = 5.0) -> np.ndarray:
    """Decode one clip (safely resolved) -> (round(sample_rate * seconds),) float32 mono, as the build saw it."""
    from and_engine.audio import load_clip as decode  # the engine's decoder: same mono / resample / length

    return decode(safe_audio_path(root, rel_path), sample_rate, seconds)


def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters from 0 Hz to Nyquist."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(0.0, mel(sample_rate / 2), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    fall = (upper - freqs[None, :]) / np.maximum(upper - centre, 1e-9)
    return np.maximum(0.0, np.minimum(rise, fall))


def spectrogram(wave: np.ndarray, sample_rate: int, n_mels: int = 64, hop: int = 160, n_fft: int = 512) -> np.ndarray:
    """(n_samples,) waveform -> (n_mels, n_frames) log-mel power in dB below the clip's peak (display only).

    Plain numpy (Hann-windowed frames, rfft, HTK mel filters): no JIT warm-up, ~10 ms for a 5 s clip.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"spectrogram needs a non-empty 1-D waveform, got shape {wave.shape}")
    padded = np.pad(wave, (n_fft // 2, n_fft // 2))
    n_frames = 1 + max(0, (len(padded) - n_fft) // hop)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)) ** 2
    mel = _mel_filterbank(sample_rate, n_fft, n_mels) @ power.T
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db - db.max(), -80.0).astype(np.float32)


def upsample_map(act_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(n_freq, n_time) neuron activation map -> ``shape`` (mel bins, frames) by nearest-cell lookup.

    Row 0 of both is the lowest frequency, so the map overlays the spectrogram cell by cell.
    """
    if act_map.ndim != 2 or min(act_map.shape) == 0:
        raise ValueError(f"activation map must be a non-empty 2-D array, got shape {act_map.shape}")
    rows = np.minimum((np.arange(shape[0]) * act_map.shape[0]) // shape[0], act_map.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) * act_map.shape[1]) // shape[1], act_map.shape[1] - 1)
    return act_map[np.ix_(rows, cols)]
