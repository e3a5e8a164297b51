"""The five similarity functions of Module A (SPEC section 6; CLIP-Dissect's definitions), vectorised.

Every function takes ``u`` (N clips x n neurons) activations and ``P`` (N clips x M concepts) concept
scores and returns scores (n neurons x M concepts), higher = better match. ``subsets`` (n x m clip ids)
restricts each neuron to its own clips (the ``topk`` scope: the neuron's K top clips); ``None`` = all
clips. The normalising term of ``wpmi`` / ``soft_wpmi`` is over all neurons of the layer (the paper's
code called them one neuron at a time, which zeroes ``soft_wpmi``; we do not). ``score_all`` runs several
functions on one layer, validating once and sharing each neuron's top-clip order (``LayerInputs``).
Speed (docs/dissection.md, benchmarks/bench_similarity.py): no loop over neurons except in chunks that
keep temporaries in cache; top clips by integer-key sorts (``top_clips``); per-neuron sums of rows as one
sparse product; cos / cos3 products in float32 unless ``exact=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_array
from scipy.special import logsumexp, softmax

from and_engine.stages.top_clips import neuron_order, neuron_top

__all__ = ["SIMILARITIES", "LayerInputs", "SimilarityError", "cos", "cos3", "neuron_order", "prepare",
           "rank_reorder", "score_all", "similarity_scores", "soft_wpmi", "wpmi"]

CHUNK = 32  # neurons per chunk of the gathered (c, k, M) temporaries (about 1 MB: they stay in cache)
NORM_EPS = 1e-12  # cos: floor of a column norm (a dead neuron scores 0, never NaN)
FLOAT32_NORMS = (1e-15, 1e15)  # cos / cos3: column norms (of u / of its centred cubes) float32 products serve
MIN_AVG_P = 1e-6  # rank_reorder: floor of the mean P (a negative CLAP cosine would give NaN)
RANK_TOP_FRACTION, WPMI_TOP_K, SOFT_WPMI_TOP_K = 0.05, 28, 100  # top clips each function reads (SPEC 6)


class SimilarityError(ValueError):
    """Bad input to a similarity function; the message names the argument."""


@dataclass
class LayerInputs:
    """Validated inputs of one layer and the work the five functions share (each neuron's top clips).

    u (N, n) float64, P (N, M) float64, subsets (n, m) int64 or None.
    """

    u: np.ndarray
    P: np.ndarray
    subsets: np.ndarray | None = None
    _top: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_candidates(self) -> int:
        """Clips each neuron is scored on: N (all) or m (its subset)."""
        return self.u.shape[0] if self.subsets is None else self.subsets.shape[1]

    def top(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """-> clip ids (n, L) by activation descending (ties by clip id) and their activations (n, L),
        L = min(limit, clips); computed once per layer for the largest limit asked."""
        limit = min(limit, self.n_candidates)
        if self._top is None or self._top[0].shape[1] < limit:
            self._top = neuron_top(self.u, self.subsets, limit)
        return self._top[0][:, :limit], self._top[1][:, :limit]

    def order(self, limit: int) -> np.ndarray:
        """(n, min(limit, clips)) clip ids by activation descending, ties by clip id."""
        return self.top(limit)[0]


def prepare(u, P, subsets=None) -> LayerInputs:
    """Validate shapes / values -> LayerInputs (an existing LayerInputs is returned as is)."""
    if isinstance(u, LayerInputs):
        return u
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
    return LayerInputs(u, P, subsets)


def _sum_rows(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """ids (n, L) row ids, table (N, M) -> (n, M): each neuron's sum of its table rows (a sparse product,
    no (n, L, M) temporary)."""
    n, L = ids.shape
    pick = csr_array((np.ones(ids.size), ids.ravel(), np.arange(0, ids.size + 1, L)), shape=(n, table.shape[0]))
    return pick @ table


def _dense_ranks(P: np.ndarray) -> np.ndarray:
    """P (N, M) -> (M, N) int64 rank of each clip's value within its concept column, equal values equal rank."""
    out = np.empty((P.shape[1], P.shape[0]), dtype=np.int64)
    for c in range(P.shape[1]):
        out[c] = np.unique(P[:, c], return_inverse=True)[1]
    return out


def _mean_abs_pow(d: np.ndarray, p: float, axis) -> np.ndarray:
    """mean(|d|^p) over ``axis``; d is overwritten (a cube for p = 3, in place)."""
    np.abs(d, out=d)
    if p == 3:
        d3 = d * d
        d3 *= d
        return d3.mean(axis=axis)
    return (d ** p).mean(axis=axis)


def _pairwise_cubes(t: np.ndarray) -> np.ndarray:
    """t (c, k) sorted descending -> mean over all (i, j) pairs of |t_i - t_j|^3, in O(k) per row.

    Sum over i < j of (t_i - t_j)^3 expands into running sums of t, t^2, t^3 (rows centred first),
    kept for all rows at once while walking the k positions."""
    t = np.ascontiguousarray(t.T)  # (k, c)
    t -= t.mean(axis=0)
    s1, s2, s3, half = (np.zeros(t.shape[1]) for _ in range(4))
    for j, tj in enumerate(t):  # s1, s2, s3: sums over i < j of t_i, t_i^2, t_i^3
        tj2 = tj * tj
        tj3 = tj2 * tj  # products, not **: np.power is slow here
        half += s3 - 3 * s2 * tj + 3 * s1 * tj2 - j * tj3
        s1 += tj
        s2 += tj2
        s3 += tj3
    k = len(t)
    return np.where(np.ptp(t, axis=0) > 0, np.maximum(2 * half / (k * k), 0.0), 0.0)  # equal values: exactly 0


def _gathered(x: LayerInputs):
    """Per-neuron clips -> u_s (n, m), P_s (n, m, M)."""
    return np.take_along_axis(x.u, x.subsets.T, axis=0).T, x.P[x.subsets]


def _unit(x: np.ndarray, axis: int, floor: float) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), floor)


def _column_norms(x: np.ndarray) -> np.ndarray:
    """(N, n) -> (n,) L2 norms, without an (N, n) temporary."""
    return np.sqrt(np.einsum("ij,ij->j", x, x))


def _cube(x: np.ndarray) -> np.ndarray:
    return x * x * x


def _centred_cubes(u: np.ndarray, rows: int = 64, dtype=np.float64) -> np.ndarray:
    """(N, n) -> (u - column mean)^3 as ``dtype``, in blocks of ``rows`` clips (the square stays in cache)."""
    mean, out = u.mean(0), np.empty(u.shape, dtype=dtype)
    square = np.empty((rows, u.shape[1]), dtype=dtype)
    for r in range(0, len(u), rows):
        block, sq = out[r:r + rows], square[:min(rows, len(u) - r)]
        np.subtract(u[r:r + rows], mean, out=block, casting="same_kind")
        np.multiply(block, block, out=sq)
        block *= sq
    return out


def _scaled_product(a: np.ndarray, a_norms: np.ndarray, floor: float, b_unit: np.ndarray) -> np.ndarray:
    """a (N, n), its float64 column norms (n,), b_unit (N, M) unit columns -> (n, M) float64
    a.T @ b_unit / max(norm, floor): normalising after the product (n x M divisions, not N x n)."""
    return (a.T @ b_unit.astype(a.dtype, copy=False)) / np.maximum(a_norms, floor)[:, None]


def _outside_float32(norms: np.ndarray) -> np.ndarray:
    """(n,) column norms -> mask of the columns a float32 product may not serve (0, tiny, huge, inf)."""
    return ~((norms >= FLOAT32_NORMS[0]) & (norms <= FLOAT32_NORMS[1]))


def cos(u, P=None, subsets=None, exact: bool = False) -> np.ndarray:
    """Cosine over clips of each u column with each P column -> (n, M).

    The (n x N) @ (N x M) product runs in float32 (scores within ~1e-7 of float64: docs/dissection.md),
    except for columns whose norm is outside FLOAT32_NORMS; ``exact=True``: float64 throughout."""
    x = prepare(u, P, subsets)
    if x.subsets is None:
        norms, pn = _column_norms(x.u), _unit(x.P, 0, NORM_EPS)
        if exact:
            return _scaled_product(x.u, norms, NORM_EPS, pn)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # such columns are redone
            out = _scaled_product(x.u.astype(np.float32), norms, NORM_EPS, pn)
        redo = _outside_float32(norms)
        if redo.any():
            out[redo] = _scaled_product(x.u[:, redo], norms[redo], NORM_EPS, pn)
        return out
    us, ps = _gathered(x)
    return np.einsum("nm,nmc->nc", _unit(us, 1, NORM_EPS), _unit(ps, 1, NORM_EPS))


def cos3(u, P=None, subsets=None, min_norm: float = 1e-3, exact: bool = False) -> np.ndarray:
    """Centre over clips, cube, L2-normalise (norm floor ``min_norm``), dot -> (n, M).

    Cubes and the product in float32 (norms summed in float64), except for columns whose cubes' norm is
    outside FLOAT32_NORMS, as ``cos``; ``exact=True``: float64 throughout."""
    x = prepare(u, P, subsets)
    if x.subsets is None:
        pc = _unit(_cube(x.P - x.P.mean(0)), 0, min_norm)
        redo = np.ones(x.u.shape[1], dtype=bool)
        if not exact:
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # such columns are redone
                uc = _centred_cubes(x.u, dtype=np.float32)
                norms = np.sqrt(np.einsum("ij,ij->j", uc, uc, dtype=np.float64))
                out = _scaled_product(uc, norms, min_norm, pc)
            redo = _outside_float32(norms)
        if redo.all():
            uc = _centred_cubes(x.u)
            return _scaled_product(uc, _column_norms(uc), min_norm, pc)
        if redo.any():
            uc = _centred_cubes(x.u[:, redo])
            out[redo] = _scaled_product(uc, _column_norms(uc), min_norm, pc)
        return out
    us, ps = _gathered(x)
    uc = _unit(_cube(us - us.mean(1, keepdims=True)), 1, min_norm)
    pc = _unit(_cube(ps - ps.mean(1, keepdims=True)), 1, min_norm)
    return np.einsum("nm,nmc->nc", uc, pc)


def rank_reorder(u, P=None, subsets=None, top_fraction: float = RANK_TOP_FRACTION, p: float = 3.0,
                 scale_p: float = 0.5) -> np.ndarray:
    """-error of reordering the neuron's top clips by each concept's ranking -> (n, M), higher = better.

    Top clips: the top ``top_fraction`` of the neuron's clips, at least 1. error = mean |u - u reordered|^p
    / (the same error expected under a uniform random permutation) / (mean P over those clips)^scale_p.
    The random-permutation baseline is its exact expectation (mean over all pairs), so no seed is needed.
    """
    x = prepare(u, P, subsets)
    k = max(1, int(x.n_candidates * top_fraction))
    top, t = x.top(k)  # (n, k) clip ids and activations, descending
    t_asc = np.ascontiguousarray(t[:, ::-1])
    n, M = len(top), x.P.shape[1]
    # sort key: the concept's P (as a dense rank), then ascending activation, packed in one integer
    # (rank << bits | flat index in the chunk's (c, k) activations): unique, so a plain value sort orders
    # the clips exactly, the low bits give back each clip, and equal P values are not penalised
    bits = max(1, (min(n, CHUNK) * k - 1).bit_length())
    key_type = np.int32 if x.u.shape[0] << bits < 2**31 else np.int64  # int32 sorts several times faster
    dense = _dense_ranks(x.P).astype(key_type) << bits  # (M, N)
    low = key_type((1 << bits) - 1)
    tie_break = (np.arange(min(n, CHUNK))[:, None] * k + k - 1 - np.arange(k)).astype(key_type)  # (c, k)
    err = np.empty((n, M))
    base = _pairwise_cubes(t)[:, None] if p == 3 else np.empty((n, 1))
    size = M * min(n, CHUNK) * k  # buffers reused by every chunk: no page faults on fresh temporaries
    buf_keys, buf_at = np.empty(size, dtype=key_type), np.empty(size, dtype=np.intp)
    buf_d, buf_sq, ones = np.empty(size), np.empty(size), np.ones(k)
    for s in range(0, n, CHUNK):
        ta = t_asc[s:s + CHUNK]  # (c, k)
        shape = (M, len(ta), k)
        keys, at, d, sq = (b[:np.prod(shape)].reshape(shape) for b in (buf_keys, buf_at, buf_d, buf_sq))
        np.take(dense, top[s:s + CHUNK], axis=1, out=keys, mode="clip")  # (M, c, k); ids are valid
        keys |= tie_break[:len(ta)]
        keys.sort(axis=-1)  # clips by ascending P
        keys &= low  # -> flat index in ta of the clip with the r-th lowest P
        np.copyto(at, keys)  # np.take converts narrower indices itself, slowly
        # reordering gives the r-th lowest-P clip the r-th lowest activation: compare them rank by rank
        np.take(ta, at, out=d, mode="clip")
        d -= ta
        if p == 3:
            np.multiply(d, d, out=sq)
            np.abs(d, out=d)
            d *= sq
            err[s:s + CHUNK] = (d.reshape(-1, k) @ ones).reshape(M, len(ta)).T / k  # a BLAS row sum
        else:
            err[s:s + CHUNK] = _mean_abs_pow(d, p, axis=2).T
            base[s:s + CHUNK, 0] = _mean_abs_pow(ta[:, :, None] - ta[:, None, :], p, axis=(1, 2))
    ratio = np.divide(err, base, out=np.ones_like(err), where=base > 0)
    return -ratio / np.maximum(_sum_rows(top, x.P) / k, MIN_AVG_P) ** scale_p


def _pmi(L: np.ndarray, lam: float) -> np.ndarray:
    """L (n, M) log p(concept | neuron's clips) -> L - lam * (logsumexp over all n neurons - log n)."""
    return L - lam * (logsumexp(L, axis=0, keepdims=True) - np.log(L.shape[0]))


def _sum_log_terms(order: np.ndarray, table: np.ndarray, weights: np.ndarray | None, min_prob: float) -> np.ndarray:
    """Sum over each neuron's ordered clips of log(term + min_prob) -> (n, M), chunked over neurons."""
    if weights is None:  # log once per clip, then sum each neuron's rows: sum_j log(P'[j] + eps)
        return _sum_rows(order, np.log(table + min_prob))
    (n, k), M = order.shape, table.shape[1]
    out = np.empty((n, M))
    # sum of logs = log of products: multiply runs of terms, one log per run. Every term is at least
    # 1 - max(w) + min_prob, so a run is sized to stay far above the float64 underflow (1e-300)
    floor = max(1.0 - float(weights[:k].max()), 0.0) + min_prob
    run = max(1, min(k, int(-300 / np.log10(floor))))
    w = np.repeat(weights[:k, None], M, axis=1)  # (k, M), not broadcast: numpy loops over k * M at once
    shift = 1.0 - w + min_prob
    buf = np.empty(min(n, CHUNK) * k * M)  # reused by every chunk: no page faults on fresh temporaries
    for s in range(0, n, CHUNK):
        ids = order[s:s + CHUNK]
        terms = buf[:ids.size * M].reshape(len(ids), k, M)
        np.take(table, ids, axis=0, out=terms, mode="clip")  # (c, k, M); ids are valid clip ids
        terms *= w
        terms += shift
        out[s:s + CHUNK] = sum(np.log(terms[:, r:r + run].prod(axis=1)) for r in range(0, k, run))
    return out


def wpmi(u, P=None, subsets=None, top_k: int = WPMI_TOP_K, a: float = 2.0, lam: float = 0.6,
         min_prob: float = 1e-7) -> np.ndarray:
    """P' = softmax(a P) over concepts; L = sum over the top-``top_k`` clips of log P'; L - lam * norm."""
    x = prepare(u, P, subsets)
    return _pmi(_sum_log_terms(x.order(top_k), softmax(a * x.P, axis=1), None, min_prob), lam)


def soft_wpmi(u, P=None, subsets=None, top_k: int = SOFT_WPMI_TOP_K, a: float = 10.0, lam: float = 1.0,
              min_prob: float = 1e-7, p_start: float = 0.998, p_end: float = 0.97) -> np.ndarray:
    """wpmi with weights p_i falling linearly from p_start (rank 0) to p_end (rank top_k - 1)."""
    x = prepare(u, P, subsets)
    order = x.order(top_k)
    p = p_start - (p_start - p_end) * np.arange(order.shape[1]) / max(top_k - 1, 1)
    return _pmi(_sum_log_terms(order, softmax(a * x.P, axis=1), p, min_prob), lam)


SIMILARITIES: dict[str, Callable[..., np.ndarray]] = {
    "cos": cos, "cos3": cos3, "rank_reorder": rank_reorder, "wpmi": wpmi, "soft_wpmi": soft_wpmi,
}


def similarity_scores(name: str, u, P=None, subsets=None) -> np.ndarray:
    """Score neurons with the similarity function ``name`` -> (n, M)."""
    if name not in SIMILARITIES:
        raise SimilarityError(f"unknown similarity function {name!r}; known: {', '.join(SIMILARITIES)}")
    return SIMILARITIES[name](u, P, subsets)


def score_all(names, u, P, subsets=None) -> dict[str, np.ndarray]:
    """Several functions on one layer, sharing validation and each neuron's top-clip order -> {name: (n, M)}."""
    x = prepare(u, P, subsets)
    needed = {"rank_reorder": max(1, int(x.n_candidates * RANK_TOP_FRACTION)), "wpmi": WPMI_TOP_K,
              "soft_wpmi": SOFT_WPMI_TOP_K}
    limits = [needed[name] for name in names if name in needed]
    if limits:
        x.top(max(limits))  # one top-k for all: the smaller ones are its first columns
    return {name: similarity_scores(name, x) for name in names}
