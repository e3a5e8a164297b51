"""Embeddings on Ray: text encoders (MiniLM, sentence-transformers, CLIP) and audio-text models (TAB) in actors.

``RayTextEncoder`` is a ``TextEncoder``: it keeps the driver-side dedup + memo (``_MemoEncoder``) and sends
the chunks of unique new texts (``_MemoEncoder.chunk``) to ``[execution.embeddings]`` actors; each actor
makes the named encoder once (``registry.make``) and embeds a chunk per call exactly as the local encoder
does (fewer texts than a batch per actor: embedded on the driver). ``RayAudioText`` does the same for
``similarity``. Both describe themselves as the encoder they run: fingerprints and provenance are the local
build's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from and_engine.backends.registry import AudioTextError, AudioTextOptions, TextEncoderError, TextEncoderOptions, make
from and_engine.backends.text_encoders import _MemoEncoder
from and_engine.config import ExecutionConfig
from and_engine.ray_runtime import map_stream


class TextWorker:
    """One actor: the encoder ``name`` (loaded on its first chunk), a chunk of texts per row -> its vectors."""

    def __init__(self, name: str, options: TextEncoderOptions):
        self.encoder = make("text_encoder", name, options)

    def __call__(self, batch: dict) -> dict:
        vectors = np.empty(len(batch["index"]), dtype=object)
        vectors[:] = [np.asarray(self.encoder._embed([str(t) for t in texts]), dtype=np.float32)
                      for texts in batch["texts"]]
        return {"index": batch["index"], "vectors": vectors}


class RayTextEncoder(_MemoEncoder):
    """The text encoder ``name`` run by Ray actors; ``describe`` is the local encoder's. Each chunk of new
    texts (``_MemoEncoder.chunk``) is one actor call, so every chunk is embedded exactly as locally."""

    def __init__(self, name: str, options: TextEncoderOptions, execution: ExecutionConfig):
        super().__init__(options)
        self.name, self.options, self.execution = name, options, execution
        self.local = make("text_encoder", name, options)  # describes (and checks) without loading weights

    def describe(self) -> dict:
        return self.local.describe()

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.local._embed(texts)

    def _embed_chunks(self, chunks: list[list[str]]) -> np.ndarray:
        if sum(map(len, chunks)) < self.execution.embeddings.actors * self.batch_size:  # less than a batch per
            return super()._embed_chunks(chunks)  # actor: cheaper here than starting actors that load the model
        rows = [{"index": i, "texts": c} for i, c in enumerate(chunks)]
        parts = _gather(map_stream(self.execution, self.execution.embeddings, rows, TextWorker,
                                   (self.name, self.options), 1), len(rows), "vectors", TextEncoderError, self.name)
        return np.concatenate(list(parts))


class AudioTextWorker:
    """One actor: the audio-text model ``name``, (waveforms, concepts) -> similarity rows."""

    def __init__(self, name: str, options: AudioTextOptions, concepts: list[str]):
        self.model, self.concepts = make("audio_text", name, options), concepts

    def __call__(self, batch: dict) -> dict:
        waves = np.stack([np.asarray(w, dtype=np.float32) for w in batch["wave"]])
        return {"index": batch["index"], "scores": self.model.similarity(waves, self.concepts)}


class RayAudioText:
    """The audio-text model ``name`` run by Ray actors (Module A's TAB matrix)."""

    def __init__(self, name: str, options: AudioTextOptions, execution: ExecutionConfig):
        self.name, self.options, self.execution = name, options, execution
        self.local = make("audio_text", name, options)
        self.sample_rate = self.local.sample_rate

    def describe(self) -> dict:
        return self.local.describe()

    def similarity(self, waveforms: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
        rows = [{"index": i, "wave": w} for i, w in enumerate(np.asarray(waveforms, dtype=np.float32))]
        return _gather(map_stream(self.execution, self.execution.embeddings, rows, AudioTextWorker,
                                  (self.name, self.options, list(concepts)), self.options.batch_size),
                       len(rows), "scores", AudioTextError, self.name)


def _gather(batches, n: int, column: str, error: type[Exception], name: str) -> np.ndarray:
    """Output batches {index, column} -> (n, ...) rows in index order (an object array when rows are
    ragged); every index exactly once."""
    out, seen = None, np.zeros(n, dtype=bool)
    for batch in batches:
        ids = np.asarray(batch["index"], dtype=np.int64)
        values = batch[column]
        if out is None:
            out = np.empty(n, dtype=object) if values.dtype == object else \
                np.zeros((n, *values.shape[1:]), dtype=values.dtype)
        if seen[ids].any():
            raise error(f"{name}: a Ray worker returned row(s) twice")
        seen[ids] = True
        for k, i in enumerate(ids):
            out[i] = values[k]
    if not seen.all():
        raise error(f"{name}: {int((~seen).sum())} row(s) came back from no Ray worker")
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
