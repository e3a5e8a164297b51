"""Measured acoustic descriptors of clips (numpy only): loudness, frequency, tonality, onsets, activity.

``measure_acoustics(waveforms (n, samples), sample_rate) -> DataFrame`` with one row per clip and the
``acoustic_features`` columns (except clip_id / relative_loudness / tags) plus ``n_onsets`` and
``onset_regularity``. Definitions (also in docs/backends.md):

* frames: 25 ms windows, 10 ms hop; a frame is *active* when its level is above ``silence_db`` and within
  ``active_range_db`` of the clip's loudest frame. ``active_s`` = active frames x hop.
* ``rms_db``: RMS level of the active frames in dBFS (zero padding of short clips does not lower it).
* ``mean_abs_amplitude`` / ``peak_amplitude``: over the whole clip (the paper's Appendix C amplitude).
* spectrum: mean power of 64 ms Hann frames over the active part. ``median_frequency_hz`` splits its
  power in half; ``spectral_centroid_hz`` is the magnitude-weighted mean frequency.
* ``spectral_flatness``: geometric / arithmetic mean of that spectrum over the band holding 95 % of the
  power (so band-limited noise still reads as noise; a pure tone reads near 0).
* ``pitch_hz``: frequency of the dominant spectral peak when it holds >= 10 % of the band's power and
  stands >= 15 dB above the median of the 20 bins around it (a tonal sound), else NaN.
* onsets: peaks of the band-averaged positive level rise (spectral flux, dB) above ``onset_db``, at least
  50 ms apart. ``onset_rate_hz`` = onsets / clip duration; ``onset_regularity`` = 1 - CV of the
  inter-onset intervals (1 = perfectly periodic; NaN with fewer than 3 onsets).
* ``dynamic_range_db``: 95th - 5th percentile of the frame levels (floored at -100 dBFS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MEASURED_COLUMNS = (
    "rms_db", "peak_amplitude", "mean_abs_amplitude", "median_frequency_hz", "spectral_centroid_hz", "pitch_hz",
    "spectral_flatness", "onset_rate_hz", "active_s", "dynamic_range_db", "n_onsets", "onset_regularity",
)


class AcousticInputError(ValueError):
    """Waveforms have the wrong shape, dtype, sample rate or non-finite values."""


@dataclass(frozen=True)
class AcousticParams:
    silence_db: float = -60.0  # frames below this level (dBFS) are silent
    active_range_db: float = 40.0  # active frames are within this many dB of the loudest frame
    onset_db: float = 6.0  # minimum band-averaged level rise (dB) of an onset
    tonal_peak_share: float = 0.1  # share of band power in the dominant peak for a pitch
    tonal_prominence_db: float = 15.0  # the peak must stand this far above its neighbourhood (median, +-12 bins)


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    if len(x) < length:
        x = np.pad(x, (0, length - len(x)))
    n = 1 + (len(x) - length) // hop
    return np.lib.stride_tricks.sliding_window_view(x, length)[::hop][:n]


def check_waveforms(waveforms: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validate (n, samples) finite float audio at a positive rate -> float64 array."""
    arr = np.asarray(waveforms)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise AcousticInputError(f"waveforms must be (n_clips, n_samples), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise AcousticInputError(f"waveforms must be float, got {arr.dtype}")
    if int(sample_rate) < 4000:
        raise AcousticInputError(f"sample_rate must be >= 4000 Hz, got {sample_rate}")
    if not np.isfinite(arr).all():
        raise AcousticInputError("waveforms contain NaN or infinite values")
    return arr.astype(np.float64, copy=False)


def _onsets(frames: np.ndarray, active: np.ndarray, hop_s: float, onset_db: float) -> np.ndarray:
    """Frame indices of onsets from the band-averaged positive level rise (dB)."""
    power = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
    bands = np.array_split(power, 32, axis=1)
    level = 10 * np.log10(np.stack([b.mean(axis=1) for b in bands], axis=1) + 1e-20)
    level = np.maximum(level, level.max() - 80.0)
    level = np.vstack([np.full((2, level.shape[1]), level.min()), level])  # silence before: a start is an onset
    d1 = np.maximum(level[2:] - level[1:-1], 0).mean(axis=1)
    d2 = np.maximum(level[2:] - level[:-2], 0).mean(axis=1)
    rise = np.maximum(d1, d2)
    gap = max(1, int(round(0.05 / hop_s)))
    peaks = []
    for t in np.flatnonzero((rise >= onset_db) & active):
        if rise[t] == rise[max(0, t - gap) : t + gap + 1].max() and (not peaks or t - peaks[-1] > gap):
            peaks.append(t)
    return np.asarray(peaks, dtype=int)


def _measure_one(x: np.ndarray, sr: int, p: AcousticParams) -> dict[str, float]:
    hop, win = int(round(0.010 * sr)), int(round(0.025 * sr))
    frames = _frames(x, win, hop)
    frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    active = (frame_db > p.silence_db) & (frame_db >= frame_db.max() - p.active_range_db)
    out = {"peak_amplitude": float(np.abs(x).max()), "mean_abs_amplitude": float(np.abs(x).mean()),
           "active_s": float(active.sum() * hop / sr)}
    floored = np.maximum(frame_db, -100.0)
    out["dynamic_range_db"] = float(np.percentile(floored, 95) - np.percentile(floored, 5))
    nan_keys = ("median_frequency_hz", "spectral_centroid_hz", "pitch_hz", "spectral_flatness", "onset_regularity")
    if not active.any():  # silence: levels only
        out.update(rms_db=float(max(frame_db.max(), -120.0)), onset_rate_hz=0.0, n_onsets=0)
        return {**out, **{k: float("nan") for k in nan_keys}}
    out["rms_db"] = float(10 * np.log10(np.mean(10 ** (frame_db[active] / 10))))
    n_fft = 1 << int(np.ceil(np.log2(0.064 * sr)))
    spec_frames = _frames(x, n_fft, n_fft // 2)
    spec_db = 10 * np.log10(np.mean(spec_frames**2, axis=1) + 1e-20)
    keep = (spec_db > p.silence_db) & (spec_db >= frame_db.max() - p.active_range_db)
    keep = keep if keep.any() else spec_db == spec_db.max()
    mag = np.abs(np.fft.rfft(spec_frames[keep] * np.hanning(n_fft), axis=1))
    power, mag = (mag**2).mean(axis=0), mag.mean(axis=0)
    power[0], mag[0] = 0.0, 0.0  # ignore DC
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    cum = np.cumsum(power) / max(power.sum(), 1e-30)
    out["median_frequency_hz"] = float(freqs[np.searchsorted(cum, 0.5)])
    out["spectral_centroid_hz"] = float((freqs * mag).sum() / max(mag.sum(), 1e-30))
    hi = max(int(np.searchsorted(cum, 0.95)) + 1, 8)
    band = power[1 : hi + 1] + 1e-12 * power.max()
    out["spectral_flatness"] = float(np.exp(np.mean(np.log(band))) / np.mean(band))
    b = int(np.argmax(power))
    share = power[max(b - 2, 0) : b + 3].sum() / max(band.sum(), 1e-30)
    around = np.concatenate([power[max(b - 12, 1) : max(b - 2, 1)], power[b + 3 : b + 13]])
    prominence_db = 10 * np.log10(power[b] / max(float(np.median(around)) if around.size else 0.0, 1e-30))
    if share >= p.tonal_peak_share and prominence_db >= p.tonal_prominence_db and 0 < b < len(power) - 1:
        a, c, m = np.log(power[b - 1] + 1e-30), np.log(power[b + 1] + 1e-30), np.log(power[b] + 1e-30)
        shift = 0.5 * (a - c) / (a - 2 * m + c) if (a - 2 * m + c) != 0 else 0.0
        out["pitch_hz"] = float((b + np.clip(shift, -0.5, 0.5)) * sr / n_fft)
    else:
        out["pitch_hz"] = float("nan")
    onsets = _onsets(frames, active, hop / sr, p.onset_db)
    out["n_onsets"] = int(len(onsets))
    out["onset_rate_hz"] = float(len(onsets) / (len(x) / sr))
    ioi = np.diff(onsets)
    out["onset_regularity"] = float(1 - ioi.std() / ioi.mean()) if len(ioi) >= 2 else float("nan")
    return out


def measure_acoustics(waveforms: np.ndarray, sample_rate: int, params: AcousticParams | None = None) -> pd.DataFrame:
    """(n, samples) float audio -> DataFrame of MEASURED_COLUMNS, one row per clip (input order)."""
    arr = check_waveforms(waveforms, sample_rate)
    p = params or AcousticParams()
    rows = [_measure_one(x, int(sample_rate), p) for x in arr]
    return pd.DataFrame(rows, columns=list(MEASURED_COLUMNS))


def relative_loudness(rms_db: np.ndarray, reference_db: np.ndarray) -> np.ndarray:
    """Percentile rank (0..1) of each clip's ``rms_db`` within the probing set's distribution."""
    ref = np.sort(np.asarray(reference_db, dtype=np.float64))
    if ref.size == 0:
        raise AcousticInputError("relative_loudness: empty reference distribution")
    x = np.asarray(rms_db, dtype=np.float64)
    below = np.searchsorted(ref, x, side="left")
    upto = np.searchsorted(ref, x, side="right")
    return (below + upto) / (2.0 * ref.size)
