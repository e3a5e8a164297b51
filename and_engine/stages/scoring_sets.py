"""Scoring sets: the clips a neuron's explanations are scored on, never the top-K / bottom-K they were written from.

Per neuron, from its activations ``u`` (N clips x n neurons, one layer at once, vectorised), ranks by
activation descending with ties by clip id (as ``stages/extremes``):

* **activating**: up to ``n_activating`` clips drawn evenly from ``QUANTILE_BINS`` equal bins of the
  *activating pool* -- the clips ranked K+1 .. ceil(fraction x N) whose activation is above the neuron's
  median (so a sparse neuron's zeros never count as activating). A pool no larger than ``n_activating``
  is taken whole.
* **non-activating**: up to ``n_non_activating`` clips drawn uniformly from the bottom half, bottom-K excluded.

Defaults (``[scores]``, docs/scores.md): 20 + 20 clips from the top 20 %: on the 251-clip demo the pool holds
about 45 clips and the bottom half 120; on 2,000 clips 395 and 995, and the cost per neuron stays fixed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILE_BINS = 4  # the activating pool is cut into this many equal rank bins, sampled evenly


class ScoringSetError(ValueError):
    """Bad scoring-set settings or activations; the message names the setting."""


@dataclass
class ScoringSets:
    """clip_ids (n, m) int64 (-1 = empty slot), activating (n, m) bool, valid (n, m) bool; the first
    ``n_activating`` slots hold activating clips, the rest non-activating ones."""

    clip_ids: np.ndarray
    activating: np.ndarray
    valid: np.ndarray

    def frame(self, model: str, layer: str) -> pd.DataFrame:
        """-> ``scoring_sets`` rows (model, layer, neuron, clip_ids, activating), empty slots left out."""
        return pd.DataFrame({
            "model": model, "layer": layer, "neuron": np.arange(len(self.clip_ids), dtype=np.int32),
            "clip_ids": [ids[ok].astype(np.int32).tolist() for ids, ok in zip(self.clip_ids, self.valid)],
            "activating": [act[ok].tolist() for act, ok in zip(self.activating, self.valid)]})


    @classmethod
    def from_frame(cls, rows: pd.DataFrame, n_neurons: int) -> ScoringSets:
        """Stored ``scoring_sets`` rows (neuron, clip_ids, activating) -> padded arrays for ``n_neurons``."""
        width = max([len(ids) for ids in rows["clip_ids"]] + [1])
        ids = np.full((n_neurons, width), -1, dtype=np.int64)
        act = np.zeros((n_neurons, width), dtype=bool)
        for neuron, c, a in zip(rows["neuron"], rows["clip_ids"], rows["activating"]):
            ids[int(neuron), :len(c)], act[int(neuron), :len(a)] = c, a
        return cls(ids, act, ids >= 0)


def layer_rng(seed: int, model: str, layer: str) -> np.random.Generator:
    """A generator that depends only on (seed, model, layer): a layer's draws do not depend on the others."""
    return np.random.default_rng([int(seed), zlib.crc32(model.encode()), zlib.crc32(layer.encode())])


def set_size(n_clips: int, top_k: int, n_activating: int = 20, n_non_activating: int = 20,
             activating_fraction: float = 0.2) -> int:
    """The most clips a scoring set of a probing set of ``n_clips`` can hold (``draw_scoring_sets``' pools)."""
    half = n_clips // 2
    end = min(max(int(np.ceil(activating_fraction * n_clips)), top_k), half)
    return min(n_activating, max(0, end - top_k)) + min(n_non_activating, max(0, n_clips - top_k - half))


def _pick(keys: np.ndarray, take: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """keys (n, P) sort order, take (n, P) bool in that order -> (positions (n, width), valid (n, width)):
    each row's taken positions left-aligned."""
    first = np.argsort(~take, axis=1, kind="stable")[:, :width]
    pos = np.take_along_axis(keys, first, axis=1)
    ok = np.take_along_axis(take, first, axis=1)
    if pos.shape[1] < width:  # fewer candidates than slots
        pad = width - pos.shape[1]
        pos = np.pad(pos, ((0, 0), (0, pad)))
        ok = np.pad(ok, ((0, 0), (0, pad)))
    return pos, ok


def draw_scoring_sets(u: np.ndarray, top_k: int, n_activating: int = 20, n_non_activating: int = 20,
                      activating_fraction: float = 0.2, rng: np.random.Generator | None = None) -> ScoringSets:
    """u (N clips, n neurons) activations -> each neuron's scoring set (see the module docstring)."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] == 0 or not np.isfinite(u).all():
        raise ScoringSetError(f"activations must be a finite (n_clips, n_neurons) array, got shape {u.shape}")
    if n_activating < 1 or n_non_activating < 1 or not 0 < activating_fraction <= 0.5:
        raise ScoringSetError("scores.n_activating and scores.n_non_activating must be >= 1 and "
                              f"scores.activating_fraction in (0, 0.5], got {n_activating}, {n_non_activating}, "
                              f"{activating_fraction}")
    rng = rng or np.random.default_rng(0)
    N, n = u.shape
    order = np.argsort(-u, axis=0, kind="stable").T  # (n, N) clip ids by activation descending, ties by id
    vals = np.take_along_axis(u.T, order, axis=1)
    half = N // 2  # ranks >= half: the bottom half
    end = min(max(int(np.ceil(activating_fraction * N)), top_k), half)
    # activating pool: ranks top_k .. end-1 above the median (descending values: a prefix of the ranks)
    ok = vals[:, top_k:end] > vals[:, [half]] if half < N and end > top_k else np.zeros((n, 0), dtype=bool)
    size = ok.sum(axis=1)
    j = np.arange(ok.shape[1])[None, :]
    bins = np.where(ok, (j * QUANTILE_BINS) // np.maximum(size, 1)[:, None], QUANTILE_BINS)
    srt = np.argsort(bins + rng.random(ok.shape), axis=1, kind="stable")  # by bin, random within a bin
    sb = np.take_along_axis(bins, srt, axis=1)
    counts = np.stack([(bins == b).sum(axis=1) for b in range(QUANTILE_BINS)], axis=1)
    start = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(counts, axis=1)[:, :-1]], axis=1)
    quota = np.array([n_activating // QUANTILE_BINS + (b < n_activating % QUANTILE_BINS)
                      for b in range(QUANTILE_BINS)] + [0])
    within = j - np.take_along_axis(np.pad(start, ((0, 0), (0, 1))), sb, axis=1)
    take = (sb < QUANTILE_BINS) & ((within < quota[sb]) | (size <= n_activating)[:, None])
    a_pos, a_ok = _pick(srt, take, n_activating)
    # non-activating: ranks half .. N - top_k - 1, uniformly
    lo, hi = half, max(half, N - top_k)
    if hi > lo:
        n_pos, n_ok = _pick(np.argsort(rng.random((n, hi - lo)), axis=1), np.ones((n, hi - lo), dtype=bool),
                            n_non_activating)
    else:
        n_pos, n_ok = np.zeros((n, n_non_activating), dtype=np.int64), np.zeros((n, n_non_activating), dtype=bool)
    ranks = np.concatenate([a_pos + top_k, n_pos + lo], axis=1)
    valid = np.concatenate([a_ok, n_ok], axis=1)
    ids = np.where(valid, np.take_along_axis(order, np.minimum(ranks, N - 1), axis=1), -1)
    activating = np.zeros_like(valid)
    activating[:, :n_activating] = a_ok
    return ScoringSets(ids.astype(np.int64), activating, valid)
