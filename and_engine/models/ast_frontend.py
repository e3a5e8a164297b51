"""AST's front end in torch, on the model's device: ``ASTFeatureExtractor``'s Kaldi-compatible log-mel
filterbank (25 ms symmetric Hann frames every 10 ms, DC removal, pre-emphasis 0.97, 512-point power spectrum,
Kaldi mel filters 20 Hz - Nyquist, log with a float32-epsilon floor), zero-padded / trimmed to ``max_length``
frames, then ``(x - mean) / (2 std)``. The extractor itself runs per clip on the CPU (numpy, or torchaudio's
``kaldi.fbank`` where torchaudio is installed); this runs a whole batch where the model is.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

FRAME, HOP, N_FFT, PREEMPHASIS, LOW_HZ = 400, 160, 512, 0.97, 20
MEL_FLOOR = float(np.finfo(np.float32).eps)  # 1.1920929e-07, Kaldi's and the extractor's floor


class ASTFrontEnd:
    """waveforms (n, samples) float32 tensor at ``sampling_rate`` -> (n, max_length, num_mel_bins) AST input."""

    def __init__(self, feature_extractor):
        from transformers.audio_utils import mel_filter_bank, window_function

        fe = feature_extractor
        self.max_length, self.do_normalize = int(fe.max_length), bool(fe.do_normalize)
        self.mean, self.std = float(fe.mean), float(fe.std)
        rate = int(fe.sampling_rate)
        with warnings.catch_warnings():  # "a mel filter has all zero values" at 128 bins: the extractor's own too
            warnings.simplefilter("ignore", UserWarning)
            mel = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=fe.num_mel_bins,
                                  min_frequency=LOW_HZ,
                                  max_frequency=rate // 2, sampling_rate=rate, norm=None, mel_scale="kaldi",
                                  triangularize_in_mel_space=True)
        self._mel = torch.from_numpy(np.asarray(mel, dtype=np.float32))  # (257, num_mel_bins)
        self._window = torch.from_numpy(np.asarray(window_function(FRAME, "hann", periodic=False), np.float32))
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on:
            self._on[device] = (self._mel.to(device), self._window.to(device))
        return self._on[device]

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        mel, window = self._constants(waveforms.device)
        frames = waveforms.float().unfold(1, FRAME, HOP)  # (n, frames, 400)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1 - PREEMPHASIS), frames[..., 1:] - PREEMPHASIS * frames[..., :-1]], -1)
        power = torch.fft.rfft(frames * window, n=N_FFT).abs().square()  # (n, frames, 257)
        feats = torch.clamp(power @ mel, min=MEL_FLOOR).log()
        n = feats.shape[1]
        if n < self.max_length:
            feats = torch.nn.functional.pad(feats, (0, 0, 0, self.max_length - n))
        feats = feats[:, : self.max_length]
        return (feats - self.mean) / (self.std * 2) if self.do_normalize else feats
