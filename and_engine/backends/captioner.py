"""Captioner backends: one interface, chosen by name (SPEC section 4).

``make_captioner(cfg) -> Captioner``; ``captioner.caption(waveforms (n, samples) float32, sample_rate,
context) -> CaptionResult`` (one caption per clip + a features DataFrame with the ``acoustic_features``
columns) and ``describe() -> {"backend", "model", "params"}`` for provenance. Backends:

* ``features`` (default, CPU, offline): AudioSet tagger labels + measured acoustic descriptors as sentences.
* ``audio-llm``: an audio-language model (Qwen2-Audio-Instruct class) from a local directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from and_engine.config import CaptionsConfig

CAPTIONER_BACKENDS = ("features", "audio-llm")
CAPTION_SAMPLE_RATE = 16000  # both backends take 16 kHz audio (YAMNet, Whisper-style feature extractors)


class CaptionerError(RuntimeError):
    """A captioner failed (missing package / model files); the message says how to fix it."""


class CaptionerConfigError(ValueError):
    """A captions configuration is invalid; the message names the field."""


@dataclass(frozen=True)
class CaptionContext:
    """What a captioner may know beyond the audio: clip ids and the probing set's measured features.

    ``features``: rows of ``and_engine.backends.acoustic.measure_acoustics`` for these clips with a
    ``relative_loudness`` column computed against the whole probing set; None -> measured on this batch.
    """

    clip_ids: np.ndarray | None = None
    features: pd.DataFrame | None = None
    clip_seconds: float | None = None


@dataclass
class CaptionResult:
    """captions[i] describes clip i of the batch; ``features`` has the ``acoustic_features`` columns."""

    captions: list[str]
    features: pd.DataFrame = field(default_factory=pd.DataFrame)


@runtime_checkable
class Captioner(Protocol):
    def caption(self, waveforms: np.ndarray, sample_rate: int, context: CaptionContext | None = None) -> CaptionResult:
        ...

    def describe(self) -> dict:
        ...


def make_captioner(cfg: CaptionsConfig) -> Captioner:
    """CaptionsConfig -> captioner (models load lazily, on the first ``caption`` call)."""
    if cfg.batch_size < 1:
        raise CaptionerConfigError(f"captions.batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.backend == "features":
        from and_engine.backends.captioner_features import FeaturesCaptioner, make_tagger

        return FeaturesCaptioner(make_tagger(cfg.tagger), tag_threshold=cfg.tag_threshold, max_tags=cfg.max_tags)
    if cfg.backend == "audio-llm":
        from and_engine.backends.captioner_audiollm import AudioLLMCaptioner

        if not cfg.model_path:
            raise CaptionerConfigError("captions.model_path must name a local Qwen2-Audio model directory "
                                       "for backend 'audio-llm'")
        return AudioLLMCaptioner(cfg.model_path, prompt=cfg.prompt, batch_size=cfg.batch_size, device=cfg.device,
                                 max_new_tokens=cfg.max_new_tokens)
    raise CaptionerConfigError(f"captions.backend: unknown backend {cfg.backend!r}; known: "
                               f"{', '.join(CAPTIONER_BACKENDS)}")
