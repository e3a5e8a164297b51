"""Extremes stage (SPEC section 2.4): top-K and bottom-K clips per neuron, ties broken by clip id.

Input: u as an (n_clips, n_neurons) float32 array whose rows are clip ids 0..n-1. Output: the
``extremes`` table (minus ``step_id``). In both lists, equal activations keep the lower clip id first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class ExtremesError(ValueError):
    """Bad input to the extremes stage (wrong shape, K out of range, non-finite activations)."""


def topk_bottomk(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(n_clips, n_neurons) -> (top ids, top values, bottom ids, bottom values), each (n_neurons, K).

    Top-K is in descending activation, bottom-K in ascending activation; ties -> lower clip id first.
    K larger than the number of clips is an error.
    """
    u = np.asarray(values, dtype=np.float32)
    if u.ndim != 2 or u.shape[0] == 0:
        raise ExtremesError(f"activations must be (n_clips, n_neurons) with n_clips > 0, got {u.shape}")
    if not 1 <= k <= u.shape[0]:
        raise ExtremesError(f"top_k must be in [1, n_clips={u.shape[0]}], got {k}")
    if not np.isfinite(u).all():
        raise ExtremesError("activations contain NaN or inf")
    # a stable sort keeps equal values in clip-id order; negating for the top list preserves that
    top = np.argsort(-u, axis=0, kind="stable")[:k].T
    bottom = np.argsort(u, axis=0, kind="stable")[:k].T
    cols = np.arange(u.shape[1])[:, None]
    return top, u[top, cols], bottom, u[bottom, cols]


def extremes_frame(model: str, layer: str, values: np.ndarray, k: int) -> pd.DataFrame:
    """(n_clips, n_neurons) activations -> 'extremes' rows, one per neuron."""
    top, top_v, bottom, bottom_v = topk_bottomk(values, k)
    return pd.DataFrame({
        "model": model,
        "layer": layer,
        "neuron": np.arange(top.shape[0], dtype=np.int32),
        "topk_clip_ids": [row.astype(np.int32).tolist() for row in top],
        "topk_values": [row.astype(np.float32).tolist() for row in top_v],
        "bottomk_clip_ids": [row.astype(np.int32).tolist() for row in bottom],
        "bottomk_values": [row.astype(np.float32).tolist() for row in bottom_v],
    })
