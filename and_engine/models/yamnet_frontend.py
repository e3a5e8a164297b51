"""YAMNet's front end in torch: 16 kHz waveforms -> log-mel patches (the input the ONNX model was exported for).

16 kHz, STFT n_fft 512 with a 400-sample periodic Hann window and hop 160 (no centring), magnitude,
64 HTK mel bands 125-7500 Hz (no mel normalisation), ``log(x + 1e-6)``, then 96-frame patches with a
48-frame hop (0.96 s windows every 0.48 s).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 64
FMIN, FMAX = 125.0, 7500.0
LOG_OFFSET = 1e-6
PATCH_FRAMES = 96
PATCH_HOP = 48


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)  # the HTK mel scale


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=1)
def _mel_basis() -> torch.Tensor:
    """(n_fft // 2 + 1, 64) triangular HTK mel filterbank, unnormalised (peak 1 at each band centre)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(FMIN)), _hz_to_mel(np.array(FMAX)), N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    basis = np.maximum(0.0, np.minimum(rising, falling))  # (64, freq)
    return torch.from_numpy(np.ascontiguousarray(basis.T, dtype=np.float32))


def log_mel(waveforms: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(n, samples) float32 at 16 kHz -> (n, frames, 64) log-mel magnitudes."""
    wav = torch.as_tensor(np.asarray(waveforms, dtype=np.float32))
    if wav.ndim != 2:
        raise ValueError(f"YAMNet front end: waveforms must be (n_clips, n_samples), got {tuple(wav.shape)}")
    if wav.shape[1] < N_FFT:
        wav = torch.nn.functional.pad(wav, (0, N_FFT - wav.shape[1]))
    window = torch.hann_window(WIN_LENGTH, periodic=True)
    spec = torch.stft(
        wav, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=window,
        center=False, return_complex=True,
    ).abs()  # (n, freq, frames)
    mel = torch.matmul(spec.transpose(1, 2), _mel_basis())
    return torch.log(mel + LOG_OFFSET)


def n_patches(n_frames: int) -> int:
    """Number of 96-frame patches (hop 48) for ``n_frames`` frames (at least 1; short input is padded)."""
    return 1 + max(0, n_frames - PATCH_FRAMES) // PATCH_HOP


def patches(log_mels: torch.Tensor) -> torch.Tensor:
    """(n, frames, 64) -> (n, n_patches, 96, 64); input shorter than 96 frames is padded with log(1e-6)."""
    if log_mels.shape[1] < PATCH_FRAMES:
        pad = PATCH_FRAMES - log_mels.shape[1]
        log_mels = torch.nn.functional.pad(log_mels, (0, 0, 0, pad), value=float(np.log(LOG_OFFSET)))
    count = n_patches(log_mels.shape[1])
    out = log_mels.unfold(1, PATCH_FRAMES, PATCH_HOP)[:, :count]  # (n, P, 64, 96)
    return out.transpose(2, 3).contiguous()


def waveform_patches(waveforms: np.ndarray) -> torch.Tensor:
    """(n, samples) at 16 kHz -> (n * n_patches, 1, 96, 64): the model input, patches of a clip adjacent."""
    p = patches(log_mel(waveforms))
    return p.reshape(-1, 1, PATCH_FRAMES, N_MELS)
