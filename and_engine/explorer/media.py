"""Audio for the app: a safe path resolver, clip decoding, a clip's media, and map upsampling.

Whatever a database row or URL says, audio is read only from inside the probing set's root:
``safe_audio_path`` resolves symlinks and ``..`` and refuses anything that lands outside. A clip's media
(compressed audio + display spectrogram) comes from the build's ``clip_media`` table; ``live_clip_media``
computes the same with the stage's own function for a database built before that stage existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from and_engine.probing import safe_join
from and_engine.stages.clip_media import clip_media_rows, quantise, spectrogram

__all__ = ["ClipMedia", "UnsafePathError", "display_spectrogram", "live_clip_media", "load_clip", "safe_audio_path",
           "spectrogram", "upsample_map"]


@dataclass(frozen=True)
class ClipMedia:
    """One clip as the app shows it: an audio file and its display spectrogram (``stages.clip_media``)."""

    audio: bytes
    mime: str  # e.g. audio/mpeg
    spectrogram: np.ndarray  # (n_mels, n_frames) uint8: 0 = FLOOR_DB .. 255 = the clip's peak; row 0 = lowest mel

    @classmethod
    def from_row(cls, row) -> ClipMedia:
        """A ``clip_media`` row (audio, audio_mime, n_mels, n_frames, spectrogram bytes) -> ClipMedia."""
        spec = np.frombuffer(row["spectrogram"], dtype=np.uint8).reshape(int(row["n_mels"]), int(row["n_frames"]))
        return cls(bytes(row["audio"]), str(row["audio_mime"]), spec)


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


def live_clip_media(root: str | Path, rel_path: str, sample_rate: int, seconds: float) -> ClipMedia:
    """Decode one clip (safely resolved) and make its media with the build stage's function -> ClipMedia."""
    wave = load_clip(root, rel_path, sample_rate, seconds)
    return ClipMedia.from_row(clip_media_rows(wave[None], np.array([0]), sample_rate).iloc[0])


def display_spectrogram(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """(n_samples,) waveform -> (n_mels, n_frames) uint8 display spectrogram, as ``clip_media`` stores it (for a
    clip that is not in the probing set, e.g. an uploaded one; ``charts.clip_image`` draws it)."""
    return quantise(spectrogram(wave, sample_rate))


def upsample_map(act_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(n_freq, n_time) neuron activation map -> ``shape`` (mel bins, frames) by nearest-cell lookup.

    Row 0 of both is the lowest frequency, so the map overlays the spectrogram cell by cell.
    """
    if act_map.ndim != 2 or min(act_map.shape) == 0:
        raise ValueError(f"activation map must be a non-empty 2-D array, got shape {act_map.shape}")
    rows = np.minimum((np.arange(shape[0]) * act_map.shape[0]) // shape[0], act_map.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) * act_map.shape[1]) // shape[1], act_map.shape[1] - 1)
    return act_map[np.ix_(rows, cols)]
