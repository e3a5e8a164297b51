"""The five similarity functions of Module A (SPEC section 6; CLIP-Dissect's definitions), vectorised.

Every function takes ``u`` (N clips x n neurons) activations and ``P`` (N clips x M concepts) concept
scores and returns scores (n neurons x M concepts), higher = better match. ``subsets`` (n x m clip ids)
restricts each neuron to its own clips (the ``topk`` scope: the neuron's K top clips); ``None`` = all
clips. The normalising term of ``wpmi`` / ``soft_wpmi`` is over all neurons of the layer (the paper's
code called them one neuron at a time, which zeroes ``soft_wpmi``; we do not). ``score_all`` runs several
functions on one layer, validating once and sharing each neuron's top-clip order (``LayerInputs``).
Speed (docs/dissection.md, benchmarks/bench_similarity.py): no loop over neurons except in chunks that
keep temporaries in cache; top clips by integer-key sorts; per-neuron sums of rows as one sparse product.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_array
from scipy.special import logsumexp, softmax

CHUNK = 32  # neurons per chunk of the gathered (c, k, M) temporaries (about 1 MB: they stay in cache)
KEY_CHUNK = 64  # top clips: neurons per chunk of int32 sort keys
KEY_CLIP_BITS = 12  # top clips: int32 keys while clip ids fit 12 bits (N <= 4096), else a full argpartition
SAMPLE_STRIDE = 8  # top clips: every 8th clip sets each neuron's candidate threshold
NORM_EPS = 1e-12  # cos: floor of a column norm (a dead neuron scores 0, never NaN)
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
            self._top = _neuron_top(self.u, self.subsets, limit)
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


def _top_of_rows(x: np.ndarray, limit: int) -> np.ndarray:
    """x (n, N) -> (n, limit) column ids of the largest values per row, descending, ties by id.

    argpartition (linear time) + a sort of the selected few; rows whose ``limit``-th value is tied with
    an unselected one fall back to a stable full sort, so ties always go to the lower clip id."""
    if limit >= x.shape[1]:
        return np.argsort(-x, axis=1, kind="stable")
    part = np.argpartition(x, x.shape[1] - limit, axis=1)[:, x.shape[1] - limit:]
    vals = np.take_along_axis(x, part, axis=1)
    o = np.lexsort((part, -vals))
    part, vals = np.take_along_axis(part, o, axis=1), np.take_along_axis(vals, o, axis=1)
    tied = np.nonzero((x >= vals[:, -1:]).sum(axis=1) > limit)[0]
    if tied.size:
        part[tied] = np.argsort(-x[tied], axis=1, kind="stable")[:, :limit]
    return part


def _top_of_columns(u: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """u (N, n), limit < N -> ids (n, limit), values (n, limit): each column's largest, descending, ties by id.

    Per chunk of neurons, each activation becomes one int32 key, its float32 bits made sortable with the
    low bits replaced by the clip (N - 1 - id): a plain integer sort, which numpy does with SIMD, orders
    (value, clip) at once. A threshold from every 8th clip keeps about 2 x limit candidates per neuron;
    only those are sorted. The keys round the value, so the chosen clips are re-sorted by their exact
    value (stable: equal values keep clip order); a neuron whose rounded limit-th value is shared with a
    clip left out, or whose threshold kept too few clips, is redone exactly by ``_top_of_rows``."""
    N, n = u.shape
    bits = max(1, (N - 1).bit_length())
    n_sample = len(range(0, N, SAMPLE_STRIDE))
    ks = int(np.ceil(2 * limit * n_sample / N)) + 1
    if bits > KEY_CLIP_BITS or 4 * ks > n_sample:  # keys too coarse, or nothing to gain from a threshold
        ids = _top_of_rows(np.ascontiguousarray(u.T), limit)
        return ids, np.take_along_axis(u, ids.T, axis=0).T
    low = np.int32((1 << bits) - 1)
    clip_bits = (low - np.arange(N, dtype=np.int32))[:, None]
    ids, vals = np.zeros((n, limit), dtype=np.int64), np.empty((n, limit))
    redo = np.zeros(n, dtype=bool)
    for s in range(0, n, KEY_CHUNK):
        block = u[:, s:s + KEY_CHUNK]
        f = block.astype(np.float32)
        f += np.float32(0.0)  # -0.0 -> +0.0: equal values, equal keys
        key = f.view(np.int32)
        key ^= (key >> 31) & np.int32(0x7FFFFFFF)  # float order -> int order
        key &= ~low
        key |= clip_bits
        key = np.ascontiguousarray(key.T)  # (c, N)
        c = len(key)
        # candidates: every key at or above the sampled threshold's rounded value (whole rounding buckets)
        keep = key >= np.partition(key[:, ::SAMPLE_STRIDE], n_sample - ks, axis=1)[:, n_sample - ks, None] & ~low
        counts = np.count_nonzero(keep, axis=1)
        if counts.max() < limit:
            redo[s:s + c] = True
            continue
        cand = np.full((c, counts.max()), np.iinfo(np.int32).min, dtype=np.int32)  # below every key
        cand[np.arange(cand.shape[1]) < counts[:, None]] = key[keep]  # each row's candidates, left-aligned
        cand.sort(axis=1)
        best = cand[:, ::-1][:, :limit]
        ok = (counts >= limit) & (np.count_nonzero(cand >= (best[:, -1:] & ~low), axis=1) == limit)
        got = np.where(ok[:, None], low - (best & low), 0).astype(np.int64)
        exact = block[got, np.arange(c)[:, None]]
        o = np.argsort(-exact, axis=1, kind="stable")
        ids[s:s + c], vals[s:s + c] = np.take_along_axis(got, o, axis=1), np.take_along_axis(exact, o, axis=1)
        redo[s:s + c] = ~ok
    if redo.any():
        ids[redo] = _top_of_rows(np.ascontiguousarray(u[:, redo].T), limit)
        vals[redo] = np.take_along_axis(u[:, redo], ids[redo].T, axis=0).T
    return ids, vals


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

    Sum over i < j of (t_i - t_j)^3 expands into prefix sums of t, t^2, t^3 (rows centred first)."""
    t = t - t.mean(axis=1, keepdims=True)
    k = t.shape[1]
    t2 = t * t
    t3 = t2 * t  # products, not **: np.power is slow here
    s1, s2, s3 = (np.cumsum(v, axis=1) - v for v in (t, t2, t3))  # sums over i < j
    j = np.arange(k)[None, :]
    half = (s3 - 3 * s2 * t + 3 * s1 * t2 - j * t3).sum(axis=1)
    return np.where(np.ptp(t, axis=1) > 0, np.maximum(2 * half / (k * k), 0.0), 0.0)  # equal values: exactly 0


def neuron_order(u: np.ndarray, subsets: np.ndarray | None = None, limit: int | None = None) -> np.ndarray:
    """(N, n) activations -> (n, L) clip ids per neuron by activation descending, ties by clip id."""
    return _neuron_top(u, subsets, limit)[0]


def _neuron_top(u: np.ndarray, subsets: np.ndarray | None, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """-> ``neuron_order`` (n, L) and the activations there (n, L)."""
    if subsets is None and limit is not None and limit < u.shape[0]:
        return _top_of_columns(u, limit)
    if subsets is None:
        order = _top_of_rows(np.ascontiguousarray(u.T), u.shape[0])
    else:
        vals = np.take_along_axis(u, subsets.T, axis=0).T
        order = np.take_along_axis(subsets, np.lexsort((subsets, -vals)), axis=1)[:, :limit]
    return order, np.take_along_axis(u, order.T, axis=0).T


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


def _centred_cubes(u: np.ndarray, rows: int = 64) -> np.ndarray:
    """(N, n) -> (u - column mean)^3, in blocks of ``rows`` clips (the square stays in cache)."""
    mean, out, square = u.mean(0), np.empty_like(u), np.empty((rows, u.shape[1]))
    for r in range(0, len(u), rows):
        block, sq = out[r:r + rows], square[:min(rows, len(u) - r)]
        np.subtract(u[r:r + rows], mean, out=block)
        np.multiply(block, block, out=sq)
        block *= sq
    return out


def cos(u, P=None, subsets=None) -> np.ndarray:
    """Cosine over clips of each u column with each P column -> (n, M)."""
    x = prepare(u, P, subsets)
    if x.subsets is None:  # normalise u after the product: n x M divisions instead of N x n
        return (x.u.T @ _unit(x.P, 0, NORM_EPS)) / np.maximum(_column_norms(x.u), NORM_EPS)[:, None]
    us, ps = _gathered(x)
    return np.einsum("nm,nmc->nc", _unit(us, 1, NORM_EPS), _unit(ps, 1, NORM_EPS))


def cos3(u, P=None, subsets=None, min_norm: float = 1e-3) -> np.ndarray:
    """Centre over clips, cube, L2-normalise (norm floor ``min_norm``), dot -> (n, M)."""
    x = prepare(u, P, subsets)
    if x.subsets is None:  # normalise u after the product
        uc = _centred_cubes(x.u)
        pc = _unit(_cube(x.P - x.P.mean(0)), 0, min_norm)
        return (uc.T @ pc) / np.maximum(_column_norms(uc), min_norm)[:, None]
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
    # sort key: the concept's P (as a dense rank), then ascending activation, packed in one integer
    # (rank << bits | k-1-position): unique, so a plain value sort orders the clips exactly, the low bits
    # give back each clip, and a concept is not penalised for clips it scores equally
    bits = max(1, (k - 1).bit_length())
    key_type = np.int32 if x.u.shape[0] << bits < 2**31 else np.int64  # int32 sorts several times faster
    dense = _dense_ranks(x.P).astype(key_type) << bits  # (M, N)
    tie_break = (k - 1 - np.arange(k, dtype=key_type))[None, None, :]
    err = np.empty((len(top), x.P.shape[1]))
    base = _pairwise_cubes(t)[:, None] if p == 3 else np.empty((len(top), 1))
    for s in range(0, len(top), CHUNK):
        ta = t_asc[s:s + CHUNK]  # (c, k)
        keys = dense[:, top[s:s + CHUNK]]  # (M, c, k)
        keys |= tie_break
        keys.sort(axis=-1)  # clips by ascending P
        keys &= (1 << bits) - 1  # -> position in ta of the clip with the r-th lowest P
        at = keys.astype(np.intp)  # np.take converts narrower indices itself, slowly
        at += (np.arange(len(ta)) * k)[None, :, None]
        # reordering gives the r-th lowest-P clip the r-th lowest activation: compare them rank by rank
        d = np.take(ta, at)
        d -= ta[None]
        if p == 3:
            sq = d * d
            np.abs(d, out=d)
            err[s:s + CHUNK] = np.einsum("mck,mck->cm", d, sq) / k
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
    out = np.empty((order.shape[0], table.shape[1]))
    k = order.shape[1]
    # sum of logs = log of products: multiply runs of terms, one log per run. Every term is at least
    # 1 - max(w) + min_prob, so a run is sized to stay far above the float64 underflow (1e-300)
    floor = max(1.0 - float(weights[:k].max()), 0.0) + min_prob
    run = max(1, min(k, int(-300 / np.log10(floor))))
    w = weights[None, :k, None]
    for s in range(0, order.shape[0], CHUNK):
        terms = table[order[s:s + CHUNK]]  # (c, k, M)
        terms *= w
        terms += 1.0 - w + min_prob
        out[s:s + CHUNK] = sum(np.log(terms[:, r:r + run].prod(axis=1)) for r in range(0, k, run))
    return out


def wpmi(u, P=None, subsets=None, top_k: int = WPMI_TOP_K, a: float = 2.0, lam: float = 0.6,
         min_prob: float = 1e-7) -> np.ndarray:
    """P' = softmax(a P) over concepts; L = sum over the top-``top_k`` clips of log P'; L - lam * norm."""
    x = prepare(u, P, subsets)
    return _pmi(_sum_log_terms(x.order(top_k), softmax(a * x.P, axis=1), None, min_prob), lam)


def soft_wpmi(u, P=None, subsets=None, top_k: int = SOFT_WPMI_TOP_K, a: float = 10.0, lam: float = 1.0, min_prob: float = 1e-7,
              p_start: float = 0.998, p_end: float = 0.97) -> np.ndarray:
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
