"""The five similarity functions of Module A (SPEC section 6; CLIP-Dissect's definitions), vectorised.

Every function takes ``u`` (N clips x n neurons) activations and ``P`` (N clips x M concepts) concept
scores and returns scores (n neurons x M concepts), higher = better match. ``subsets`` (n x m clip ids)
restricts each neuron to its own clips (the ``topk`` scope: the neuron's K top clips); ``None`` = all
clips. The normalising term of ``wpmi`` / ``soft_wpmi`` is over all neurons of the layer (the paper's
code called them one neuron at a time, which zeroes ``soft_wpmi``; we do not).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp, softmax

CHUNK = 256  # neurons per chunk for the gathered (n, k, M) tensors
NORM_EPS = 1e-12  # cos: floor of a column norm (a dead neuron scores 0, never NaN)
MIN_AVG_P = 1e-6  # rank_reorder: floor of the mean P (a negative CLAP cosine would give NaN)


class SimilarityError(ValueError):
    """Bad input to a similarity function; the message names the argument."""


def check_inputs(u: np.ndarray, P: np.ndarray, subsets: np.ndarray | None = None):
    """Validate shapes/values -> (u float64 (N, n), P float64 (N, M), subsets int64 (n, m) or None)."""
    u, P = np.asarray(u, dtype=np.float64), np.asarray(P, dtype=np.float64)
    if u.ndim != 2 or P.ndim != 2:
        raise SimilarityError(f"u and P must be 2-D (clips x neurons / clips x concepts), got {u.shape}, {P.shape}")
    if u.shape[0] != P.shape[0] or u.shape[0] == 0:
        raise SimilarityError(f"u and P must have the same non-zero number of clips, got {u.shape[0]} and {P.shape[0]}")
    if u.shape[1] == 0 or P.shape[1] == 0:
        raise SimilarityError(f"u needs >= 1 neuron and P >= 1 concept, got {u.shape} and {P.shape}")
    if not (np.isfinite(u).all() and np.isfinite(P).all()):
        raise SimilarityError("u and P must be finite (NaN or inf found)")
    if subsets is not None:
        subsets = np.asarray(subsets, dtype=np.int64)
        if subsets.ndim != 2 or subsets.shape[0] != u.shape[1] or subsets.shape[1] == 0:
            raise SimilarityError(f"subsets must be (n_neurons={u.shape[1]}, m>=1) clip ids, got {subsets.shape}")
        if subsets.min() < 0 or subsets.max() >= u.shape[0]:
            raise SimilarityError(f"subsets hold clip ids outside 0..{u.shape[0] - 1}")
    return u, P, subsets


def neuron_order(u: np.ndarray, subsets: np.ndarray | None = None, limit: int | None = None) -> np.ndarray:
    """(N, n) activations -> (n, L) clip ids per neuron by activation descending, ties by clip id."""
    if subsets is None:
        order = np.argsort(-u, axis=0, kind="stable").T
    else:
        vals = np.take_along_axis(u, subsets.T, axis=0).T
        order = np.take_along_axis(subsets, np.lexsort((subsets, -vals)), axis=1)
    return order[:, :limit] if limit is not None else order


def _gathered(u: np.ndarray, P: np.ndarray, subsets: np.ndarray):
    """Per-neuron clips -> u_s (n, m), P_s (n, m, M)."""
    return np.take_along_axis(u, subsets.T, axis=0).T, P[subsets]


def _unit(x: np.ndarray, axis: int, floor: float) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), floor)


def cos(u, P, subsets=None) -> np.ndarray:
    """Cosine over clips of each u column with each P column -> (n, M)."""
    u, P, subsets = check_inputs(u, P, subsets)
    if subsets is None:
        return _unit(u, 0, NORM_EPS).T @ _unit(P, 0, NORM_EPS)
    us, ps = _gathered(u, P, subsets)
    return np.einsum("nm,nmc->nc", _unit(us, 1, NORM_EPS), _unit(ps, 1, NORM_EPS))


def cos3(u, P, subsets=None, min_norm: float = 1e-3) -> np.ndarray:
    """Centre over clips, cube, L2-normalise (norm floor ``min_norm``), dot -> (n, M)."""
    u, P, subsets = check_inputs(u, P, subsets)
    if subsets is None:
        uc = _unit((u - u.mean(0)) ** 3, 0, min_norm)
        pc = _unit((P - P.mean(0)) ** 3, 0, min_norm)
        return uc.T @ pc
    us, ps = _gathered(u, P, subsets)
    uc = _unit((us - us.mean(1, keepdims=True)) ** 3, 1, min_norm)
    pc = _unit((ps - ps.mean(1, keepdims=True)) ** 3, 1, min_norm)
    return np.einsum("nm,nmc->nc", uc, pc)


def rank_reorder(u, P, subsets=None, top_fraction: float = 0.05, p: float = 3.0, scale_p: float = 0.5) -> np.ndarray:
    """-error of reordering the neuron's top clips by each concept's ranking -> (n, M), higher = better.

    Top clips: the top ``top_fraction`` of the neuron's clips, at least 1. error = mean |u - u reordered|^p
    / (the same error expected under a uniform random permutation) / (mean P over those clips)^scale_p.
    The random-permutation baseline is its exact expectation (mean over all pairs), so no seed is needed.
    """
    u, P, subsets = check_inputs(u, P, subsets)
    order = neuron_order(u, subsets)
    k = max(1, int(order.shape[1] * top_fraction))
    out = np.empty((u.shape[1], P.shape[1]))
    for s in range(0, u.shape[1], CHUNK):
        top = order[s:s + CHUNK, :k]  # (c, k)
        t = np.take_along_axis(u[:, s:s + CHUNK], top.T, axis=0).T  # (c, k) descending
        ascending = t[:, ::-1]
        pt = P[top]  # (c, k, M)
        ranks = np.argsort(np.argsort(pt, axis=1, kind="stable"), axis=1, kind="stable")
        reordered = np.take_along_axis(np.broadcast_to(ascending[:, :, None], pt.shape), ranks, axis=1)
        err = np.mean(np.abs(t[:, :, None] - reordered) ** p, axis=1)  # (c, M)
        base = np.mean(np.abs(t[:, :, None] - t[:, None, :]) ** p, axis=(1, 2))[:, None]  # (c, 1)
        ratio = np.divide(err, base, out=np.ones_like(err), where=base > 0)
        out[s:s + CHUNK] = -ratio / np.maximum(pt.mean(axis=1), MIN_AVG_P) ** scale_p
    return out


def _pmi(L: np.ndarray, lam: float) -> np.ndarray:
    """L (n, M) log p(concept | neuron's clips) -> L - lam * (logsumexp over all n neurons - log n)."""
    return L - lam * (logsumexp(L, axis=0, keepdims=True) - np.log(L.shape[0]))


def _sum_log_terms(order: np.ndarray, table: np.ndarray, weights: np.ndarray | None, min_prob: float) -> np.ndarray:
    """Sum over each neuron's ordered clips of log(term + min_prob) -> (n, M), chunked over neurons."""
    out = np.empty((order.shape[0], table.shape[1]))
    for s in range(0, order.shape[0], CHUNK):
        g = table[order[s:s + CHUNK]]  # (c, k, M)
        if weights is not None:
            g = 1.0 + weights[None, :, None] * (g - 1.0)
        out[s:s + CHUNK] = np.log(g + min_prob).sum(axis=1)
    return out


def wpmi(u, P, subsets=None, top_k: int = 28, a: float = 2.0, lam: float = 0.6, min_prob: float = 1e-7) -> np.ndarray:
    """P' = softmax(a P) over concepts; L = sum over the top-``top_k`` clips of log P'; L - lam * norm."""
    u, P, subsets = check_inputs(u, P, subsets)
    order = neuron_order(u, subsets, limit=top_k)
    return _pmi(_sum_log_terms(order, softmax(a * P, axis=1), None, min_prob), lam)


def soft_wpmi(u, P, subsets=None, top_k: int = 100, a: float = 10.0, lam: float = 1.0, min_prob: float = 1e-7,
              p_start: float = 0.998, p_end: float = 0.97) -> np.ndarray:
    """wpmi with weights p_i falling linearly from p_start (rank 0) to p_end (rank top_k - 1)."""
    u, P, subsets = check_inputs(u, P, subsets)
    order = neuron_order(u, subsets, limit=top_k)
    p = p_start - (p_start - p_end) * np.arange(order.shape[1]) / max(top_k - 1, 1)
    return _pmi(_sum_log_terms(order, softmax(a * P, axis=1), p, min_prob), lam)


SIMILARITIES: dict[str, Callable[..., np.ndarray]] = {
    "cos": cos, "cos3": cos3, "rank_reorder": rank_reorder, "wpmi": wpmi, "soft_wpmi": soft_wpmi,
}


def similarity_scores(name: str, u, P, subsets=None) -> np.ndarray:
    """Score neurons with the similarity function ``name`` -> (n, M)."""
    if name not in SIMILARITIES:
        raise SimilarityError(f"unknown similarity function {name!r}; known: {', '.join(SIMILARITIES)}")
    return SIMILARITIES[name](u, P, subsets)
