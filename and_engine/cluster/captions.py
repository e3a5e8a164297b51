"""Captions on Ray: the captions stage's own pieces (``stages.captions``), per batch of clips, in actors.

Two passes over ``[execution.captions]`` actors, which read the clips themselves (``ClipFiles``): measure
every clip (``measure_acoustics``), so the driver can rank loudness over the whole probing set
(``with_relative_loudness``); then caption each batch with its rows (``caption_batch``: the captioner, made
once per actor, e.g. an audio-LLM on its GPU). The driver assembles the tables (``captions_tables``) in
clip order. Each batch comes back as one row holding its results, pickled.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from and_engine.acoustics.measurements import measure_acoustics
from and_engine.backends.registry import CaptionerError, make
from and_engine.config import CaptionsConfig, ExecutionConfig
from and_engine.ray_runtime import map_stream
from and_engine.stages.captions import caption_batch, captions_tables, with_relative_loudness


def _packed(*values) -> dict:
    """One output row holding a batch's results, pickled (Ray would turn a DataFrame cell into an array)."""
    return {"payload": np.array([pickle.dumps(values)], dtype=object)}


def _unpacked(batches) -> list[tuple]:
    return [pickle.loads(p) for out in batches for p in out["payload"]]


class MeasureWorker:
    def __init__(self, source):
        self.source = source

    def __call__(self, batch: dict) -> dict:
        ids = np.asarray(batch["clip_id"], dtype=np.int64)
        return _packed(ids, measure_acoustics(self.source.load(ids), self.source.sample_rate))


class CaptionWorker:
    """One actor: the configured captioner (made once), then per batch (ids, captions, feature rows)."""

    def __init__(self, source, cfg: CaptionsConfig, measured: pd.DataFrame):
        self.source, self.measured = source, measured
        self.captioner = make("captioner", cfg.backend, cfg)

    def __call__(self, batch: dict) -> dict:
        ids = np.asarray(batch["clip_id"], dtype=np.int64)
        said, rows = caption_batch(self.captioner, self.source.load(ids), self.source.sample_rate, ids,
                                   self.measured.iloc[ids])
        return _packed(ids, said, rows)


def _ordered(ids: list[np.ndarray], n: int) -> np.ndarray:
    """The batches' clip ids -> the permutation that puts their rows in clip order; CaptionerError unless
    every clip 0..n-1 came back exactly once."""
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    if len(flat) != n or not np.array_equal(np.sort(flat), np.arange(n)):
        raise CaptionerError(f"Ray captions: {len(np.unique(flat))} distinct of {len(flat)} clips came back for {n}")
    return np.argsort(flat, kind="stable")


def compute_captions_ray(execution: ExecutionConfig, cfg: CaptionsConfig, source, n_clips: int,
                         batch_size: int = 64, progress=None) -> dict[str, pd.DataFrame]:
    """``stages.captions.compute_captions`` over clips 0..n_clips-1 of ``source`` on Ray actors."""
    res, rows = execution.captions, [{"clip_id": i} for i in range(n_clips)]
    measured = _unpacked(map_stream(execution, res, rows, MeasureWorker, (source,), batch_size))
    order = _ordered([m[0] for m in measured], n_clips)
    feats = with_relative_loudness(pd.concat([m[1] for m in measured], ignore_index=True).iloc[order])
    ids, captions, frames = [], [], []
    for out in map_stream(execution, res, rows, CaptionWorker, (source, cfg, feats), batch_size):
        for batch_ids, said, batch_rows in _unpacked([out]):
            ids.append(batch_ids)
            captions += list(said)
            frames.append(batch_rows)
            if progress is not None:
                progress(len(batch_ids))
    order = _ordered(ids, n_clips)
    rows_in_order = pd.concat(frames, ignore_index=True).iloc[order].reset_index(drop=True)
    return captions_tables(np.arange(n_clips), [captions[i] for i in order], [rows_in_order])
