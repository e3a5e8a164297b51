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


def _tone(freq: float, sr: int = 16000, seconds: float = 2.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def test_clip_media_rows_hold_a_playable_compressed_file_and_the_spectrogram():
    import io

    import soundfile as sf

    from and_engine.stages.clip_media import clip_media_rows, quantise

    waves = np.stack([_tone(440.0), _tone(3000.0)])
    rows = clip_media_rows(waves, np.array([7, 9]), 16000)
    assert rows["clip_id"].tolist() == [7, 9] and set(rows["audio_mime"]) == {"audio/mpeg"}
    for row, wave, freq in zip(rows.itertuples(), waves, (440.0, 3000.0)):
        assert len(row.audio) < wave.nbytes / 10  # compressed: 2 s of float32 = 128 kB
        decoded, rate = sf.read(io.BytesIO(row.audio), dtype="float32")
        assert rate == 16000 and abs(len(decoded) - len(wave)) < 0.1 * rate  # MP3 pads a few frames
        peak = np.argmax(np.abs(np.fft.rfft(decoded))) * rate / len(decoded)
        assert abs(peak - freq) < 10 and 0.3 < np.sqrt(np.mean(decoded ** 2)) / np.sqrt(np.mean(wave ** 2)) < 1.2
        spec = np.frombuffer(row.spectrogram, np.uint8).reshape(row.n_mels, row.n_frames)
        assert (spec == quantise(media.spectrogram(wave, 16000))).all() and spec.max() == 255
        assert (spec == media.display_spectrogram(wave, 16000)).all()  # an uploaded clip's is drawn the same
    assert rows.iloc[0]["spectrogram"] != rows.iloc[1]["spectrogram"]


def test_quantise_and_the_audio_fallback_for_rates_mp3_lacks():
    from and_engine.stages.clip_media import encode_audio, quantise

    assert quantise(np.array([[-80.0, -40.0, 0.0, -200.0]])).tolist() == [[0, 128, 255, 0]]
    audio, mime = encode_audio(_tone(1000.0, sr=10000), 10000)  # MPEG audio has no 10 kHz: Ogg Vorbis
    assert mime == "audio/ogg" and audio[:4] == b"OggS"


def test_live_clip_media_equals_the_stage_on_the_decoded_clip():
    from and_engine.config import PROJECT_ROOT
    from and_engine.stages.clip_media import clip_media_rows

    root = PROJECT_ROOT / "data" / "demo"
    live = media.live_clip_media(root, DEMO_CLIP, 16000, 5.0)
    stored = media.ClipMedia.from_row(
        clip_media_rows(media.load_clip(root, DEMO_CLIP, 16000, 5.0)[None], np.array([0]), 16000).iloc[0])
    assert live.audio == stored.audio and live.mime == stored.mime == "audio/mpeg"
    assert (live.spectrogram == stored.spectrogram).all() and live.spectrogram.shape == (64, 501)
    with pytest.raises(UnsafePathError):
        media.live_clip_media(root, "../../etc/passwd", 16000, 5.0)


def test_clip_image_draws_the_map_over_the_spectrogram():
    import io

    from PIL import Image

    from and_engine.explorer import charts

    spec = np.full((4, 6), 100, np.uint8)
    spec[0] = 200  # the lowest mel bin is loud
    plain = np.asarray(Image.open(io.BytesIO(charts.clip_image(spec, None)))).astype(int)  # JPEG: +-3 levels
    assert plain.shape == (8, 12, 3) and np.abs(plain[..., 0] - plain[..., 2]).max() <= 3  # grey, 2 x 2 px a cell
    assert np.abs(plain[-2:] - 200).max() <= 3 and np.abs(plain[:-2] - 100).max() <= 3  # low frequencies at bottom
    amap = np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]], np.float32)  # the neuron fires on the low half, late
    img = np.asarray(Image.open(io.BytesIO(charts.clip_image(np.full((4, 6), 100, np.uint8), amap)))).astype(int)
    low = img[-1, ::4]  # bottom row, one pixel per map cell: map 0, 0.5, 1
    assert np.abs(low[0] - 55).max() <= 10 and np.abs(low[2] - 170).max() <= 10  # "Hot": black ... white (JPEG)
    assert low[1][0] > low[1][2] + 100  # the middle of "Hot" is orange
    assert np.abs(img[:3] - 55).max() <= 10  # no activation on the upper half: the darkened grey
