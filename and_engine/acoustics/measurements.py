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
* pitch track: per 64 ms frame (hop 20 ms) of the active part, the normalised autocorrelation (NAC) over
  lags of 50-4000 Hz; a frame is *voiced* when its best interior NAC peak is >= ``voiced_nac`` (the shortest
  lag whose peak reaches 90 % of the best, so octave errors are avoided) and its f0 is sr / that lag.
  ``voiced_share`` = voiced / active frames; ``pitch_spread_st`` = interquartile range of the voiced
  frames' f0 in semitones (NaN with fewer than 3 voiced frames).
* ``pitch_hz``: the pitch of a *stable, voiced* sound only (``voiced_share`` >= ``min_voiced_share`` and
  ``pitch_spread_st`` <= ``max_pitch_spread_st``): the median f0 of the voiced frames, refined to the
  dominant spectral peak within a semitone of it when there is one; else NaN (speech, coughs, noise and
  sweeping chirps have no single pitch).
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
    "voiced_share", "pitch_spread_st",
)


class AcousticInputError(ValueError):
    """Waveforms have the wrong shape, dtype, sample rate or non-finite values."""


@dataclass(frozen=True)
class AcousticParams:
    silence_db: float = -60.0  # frames below this level (dBFS) are silent
    active_range_db: float = 40.0  # active frames are within this many dB of the loudest frame
    onset_db: float = 6.0  # minimum band-averaged level rise (dB) of an onset
    voiced_nac: float = 0.8  # a frame is voiced when its autocorrelation peak reaches this
    min_voiced_share: float = 0.5  # a pitch needs this share of the active frames voiced ...
    max_pitch_spread_st: float = 1.0  # ... and their f0 within this interquartile range (semitones)
    f0_range_hz: tuple[float, float] = (50.0, 4000.0)


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


def _finite(x: float) -> bool:
    return bool(np.isfinite(x))


def _pitch_track(x: np.ndarray, sr: int, loudest_db: float, p: AcousticParams) -> tuple[float, float, float]:
    """-> (voiced share of the active frames, IQR of the voiced f0 in semitones, median voiced f0 in Hz)."""
    n = 1 << int(np.ceil(np.log2(0.064 * sr)))
    frames = _frames(x, n, int(round(0.020 * sr)))
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    frames = frames[(level > p.silence_db) & (level >= loudest_db - p.active_range_db)]
    if not len(frames):
        return 0.0, float("nan"), float("nan")
    lo, hi = max(2, int(sr / p.f0_range_hz[1])), min(n // 2, int(np.ceil(sr / p.f0_range_hz[0])))
    r = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * n, axis=1)) ** 2, axis=1)[:, : hi + 2]
    cum = np.cumsum(frames**2, axis=1)
    lags = np.arange(hi + 2)
    head = cum[:, n - 1 - lags]  # energy of x[0 : n - lag]
    tail = cum[:, -1:] - np.where(lags > 0, cum[:, np.maximum(lags - 1, 0)], 0.0)  # energy of x[lag : n]
    nac = r / np.sqrt(np.maximum(head * tail, 1e-30))
    mid = nac[:, lo : hi + 1]
    peak = (mid >= nac[:, lo - 1 : hi]) & (mid > nac[:, lo + 1 : hi + 2])  # interior local maxima
    best = np.where(peak, mid, -1.0).max(axis=1)
    voiced = best >= p.voiced_nac
    if not voiced.any():
        return 0.0, float("nan"), float("nan")
    f0 = []
    for row, ok, b in zip(range(len(mid)), peak, best):
        if b < p.voiced_nac:
            continue
        j = int(np.flatnonzero(ok & (mid[row] >= 0.9 * b))[0]) + lo  # the shortest lag near the best peak
        a, m, c = nac[row, j - 1], nac[row, j], nac[row, j + 1]
        shift = 0.5 * (a - c) / (a - 2 * m + c) if (a - 2 * m + c) != 0 else 0.0
        f0.append(sr / (j + float(np.clip(shift, -0.5, 0.5))))
    st = 12 * np.log2(np.asarray(f0))
    spread = float(np.subtract(*np.percentile(st, [75, 25]))) if len(st) >= 3 else float("nan")
    return float(voiced.mean()), spread, float(np.median(f0))


def _refine_pitch(f0: float, power: np.ndarray, bin_hz: float) -> float:
    """The median f0, moved to the dominant spectral peak within a semitone of it (finer than the lags)."""
    lo, hi = int(f0 * 2 ** (-1 / 12) / bin_hz), int(np.ceil(f0 * 2 ** (1 / 12) / bin_hz))
    if hi >= len(power) - 1 or lo < 1 or power[lo : hi + 1].max() <= 0:
        return f0
    b = lo + int(np.argmax(power[lo : hi + 1]))
    if b in (lo, hi):  # no peak inside the semitone: keep the autocorrelation estimate
        return f0
    a, c, m = np.log(power[b - 1] + 1e-30), np.log(power[b + 1] + 1e-30), np.log(power[b] + 1e-30)
    shift = 0.5 * (a - c) / (a - 2 * m + c) if (a - 2 * m + c) != 0 else 0.0
    return float((b + np.clip(shift, -0.5, 0.5)) * bin_hz)


def _measure_one(x: np.ndarray, sr: int, p: AcousticParams) -> dict[str, float]:
    hop, win = int(round(0.010 * sr)), int(round(0.025 * sr))
    frames = _frames(x, win, hop)
    frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    active = (frame_db > p.silence_db) & (frame_db >= frame_db.max() - p.active_range_db)
    out = {"peak_amplitude": float(np.abs(x).max()), "mean_abs_amplitude": float(np.abs(x).mean()),
           "active_s": float(active.sum() * hop / sr)}
    floored = np.maximum(frame_db, -100.0)
    out["dynamic_range_db"] = float(np.percentile(floored, 95) - np.percentile(floored, 5))
    nan_keys = ("median_frequency_hz", "spectral_centroid_hz", "pitch_hz", "spectral_flatness", "onset_regularity",
                "pitch_spread_st")
    if not active.any():  # silence: levels only
        out.update(rms_db=float(max(frame_db.max(), -120.0)), onset_rate_hz=0.0, n_onsets=0, voiced_share=0.0)
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
    voiced_share, spread, f0 = _pitch_track(x, sr, frame_db.max(), p)
    out["voiced_share"], out["pitch_spread_st"] = voiced_share, spread
    stable = voiced_share >= p.min_voiced_share and _finite(spread) and spread <= p.max_pitch_spread_st
    out["pitch_hz"] = _refine_pitch(f0, power, sr / n_fft) if stable else float("nan")
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
