"""The embedded ``features`` captioner: AudioSet tagger sources in plain words + measured acoustic descriptors.

For each clip: the tagger's scores per 0.96 s window (YAMNet's 521 AudioSet classes) -> the sound sources
in plain words (``text.sound_sources.name_sources``: the ``max_tags`` best by mean over the windows, hedged
as "possibly" below ``tag_threshold``, plus a source heard at moments when its best window reaches
``tag_threshold``), and the words of ``acoustics.words.descriptor_words`` composed into 2-5 sentences. The
measurements are returned with the captions (clip_id, tags and the measured columns) so each caption can
be checked against them. ``make("captioner", "features", options)`` builds it with
``make("audio_tagger", options.tagger)``.
"""

from __future__ import annotations

import zlib

import numpy as np

from and_engine.acoustics.measurements import check_waveforms, measure_acoustics, relative_loudness
from and_engine.acoustics.words import THRESHOLDS, compose_caption, descriptor_words
from and_engine.backends.registry import (
    CAPTION_SAMPLE_RATE,
    AudioTagger,
    CaptionContext,
    CaptionerConfigError,
    CaptionResult,
    make,
)
from and_engine.config import CaptionsConfig
from and_engine.text.sound_sources import MIN_SOURCE_SCORE, NamedSources, name_sources

ACOUSTIC_VERSION = "acoustic-v3"  # bump when the measurements or the wording change (part of provenance)


class FeaturesCaptioner:
    """Captions from tagger labels + acoustic descriptors (CPU, offline, deterministic)."""

    def __init__(self, tagger: AudioTagger | None, tag_threshold: float = 0.3, max_tags: int = 3):
        if not 0 < tag_threshold <= 1 or max_tags < 1:
            raise CaptionerConfigError(f"tag_threshold must be in (0, 1] and max_tags >= 1, got "
                                       f"{tag_threshold}, {max_tags}")
        self.tagger, self.tag_threshold, self.max_tags = tagger, tag_threshold, max_tags

    def describe(self) -> dict:
        info = self.tagger.describe() if self.tagger is not None else None
        tagger = {"tagger": info["backend"], "weights": info["model"]} if info else {"tagger": "none"}
        return {"backend": "features", "model": f"{tagger['tagger']}+{ACOUSTIC_VERSION}",
                "params": {**tagger, "tag_threshold": self.tag_threshold, "max_tags": self.max_tags,
                           "min_source_score": MIN_SOURCE_SCORE, "thresholds": THRESHOLDS}}

    def caption(self, waveforms: np.ndarray, sample_rate: int, context: CaptionContext | None = None) -> CaptionResult:
        """(n, samples) float audio -> n captions + their measured features (clip ids from the context)."""
        arr = check_waveforms(waveforms, sample_rate)
        ctx = context or CaptionContext()
        n = len(arr)
        ids = np.arange(n) if ctx.clip_ids is None else np.asarray(ctx.clip_ids, dtype=np.int64)
        if len(ids) != n:
            raise CaptionerConfigError(f"context.clip_ids has {len(ids)} ids for {n} clips")
        feats = ctx.features
        if feats is None:
            feats = measure_acoustics(arr, sample_rate)
            feats["relative_loudness"] = relative_loudness(feats["rms_db"].to_numpy(), feats["rms_db"].to_numpy())
        elif len(feats) != n:
            raise CaptionerConfigError(f"context.features has {len(feats)} rows for {n} clips")
        feats = feats.reset_index(drop=True).copy()
        if self.tagger is not None:
            audio = arr if sample_rate == CAPTION_SAMPLE_RATE else _resample(arr, sample_rate)
            windows = self.tagger.window_scores(audio.astype(np.float32))
            named = [name_sources(w, self.tagger.class_names, self.tag_threshold, self.max_tags) for w in windows]
        else:
            named = [NamedSources([], [], "") for _ in range(n)]
        seconds = ctx.clip_seconds or arr.shape[1] / sample_rate
        captions = []
        for i, row in enumerate(feats.to_dict("records")):
            seed = zlib.crc32(str(int(ids[i])).encode())
            captions.append(compose_caption(named[i].through, descriptor_words(row, seconds), seed, named[i].moments))
        feats["clip_id"] = ids
        feats["tags"] = [x.tags for x in named]
        return CaptionResult(captions, feats)


def _resample(arr: np.ndarray, sample_rate: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sample_rate), CAPTION_SAMPLE_RATE)
    return resample_poly(arr, CAPTION_SAMPLE_RATE // g, int(sample_rate) // g, axis=1)


def create(argument: str, cfg: CaptionsConfig) -> FeaturesCaptioner:
    """The ``features`` captioner of a captions configuration (its tagger made by name)."""
    if cfg.batch_size < 1:
        raise CaptionerConfigError(f"captions.batch_size must be >= 1, got {cfg.batch_size}")
    return FeaturesCaptioner(make("audio_tagger", cfg.tagger), tag_threshold=cfg.tag_threshold, max_tags=cfg.max_tags)
