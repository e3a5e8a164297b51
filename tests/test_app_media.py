"""Safe audio path resolution, clip decoding, display spectrogram and map upsampling."""

from __future__ import annotations

import os

import numpy as np
import pytest

from and_engine.explorer import media
from and_engine.explorer.media import UnsafePathError

DEMO_CLIP = "audio/cow/cow_01.ogg"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "probe"
    (r / "audio").mkdir(parents=True)
    (r / "audio" / "ok.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.wav").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.wav", r / "audio" / "link_out.wav")
    os.symlink(r / "audio" / "ok.wav", r / "audio" / "link_in.wav")
    return r


@pytest.mark.parametrize("rel", ["../../etc/passwd", "../secret.wav", "/etc/passwd", "audio/link_out.wav",
                                 "audio/../../secret.wav", "", ".", "audio", "audio/missing.wav", "a\x00b"])
def test_unsafe_or_missing_paths_are_refused(root, rel):
    with pytest.raises(UnsafePathError):
        media.safe_audio_path(root, rel)


def test_paths_inside_root_resolve(root):
    assert media.safe_audio_path(root, "audio/ok.wav") == (root / "audio" / "ok.wav").resolve()
    assert media.safe_audio_path(root, "audio/./link_in.wav") == (root / "audio" / "ok.wav").resolve()


def test_load_clip_decodes_a_demo_clip_at_fixed_length():
    from and_engine.config import PROJECT_ROOT

    wave = media.load_clip(PROJECT_ROOT / "data" / "demo", DEMO_CLIP, 16000, 5.0)
    assert wave.shape == (80000,) and wave.dtype == np.float32 and np.abs(wave).max() > 0.01
    with pytest.raises(UnsafePathError):
        media.load_clip(PROJECT_ROOT / "data" / "demo", "../../etc/passwd", 16000, 5.0)


def test_spectrogram_puts_a_tone_in_the_right_mel_band():
    sr = 16000
    t = np.arange(sr * 2) / sr
    low, high = (media.spectrogram(np.sin(2 * np.pi * f * t).astype(np.float32), sr) for f in (300.0, 5000.0))
    assert low.shape == (64, 201) and low.max() == 0.0 and low.min() >= -80.0
    band_low, band_high = low.mean(axis=1).argmax(), high.mean(axis=1).argmax()
    assert band_low < 16 < 40 < band_high  # mel bins rise with frequency (row 0 = lowest)
    with pytest.raises(ValueError, match="1-D"):
        media.spectrogram(np.zeros((2, 2), np.float32), sr)


def test_upsample_map_keeps_cells_in_place():
    amap = np.arange(6, dtype=np.float32).reshape(2, 3)  # 2 freq x 3 time
    up = media.upsample_map(amap, (4, 6))
    assert up.shape == (4, 6)
    assert up[0, 0] == 0 and up[0, 5] == 2 and up[3, 0] == 3 and up[3, 5] == 5
    with pytest.raises(ValueError, match="2-D"):
        media.upsample_map(np.zeros(3), (4, 6))
