"""Each neuron's top clips: clip ids by activation descending, ties by clip id, for one layer at once.

u (N clips x n neurons) -> (n, L) clip ids and the activations there. Used by the similarity functions
(``similarity.LayerInputs``) and Module A's ``topk`` scope. Fast path (``_top_of_columns``): int32
sort keys per chunk of neurons, a sampled threshold, an exact float64 re-sort of the chosen clips.
"""

from __future__ import annotations

import numpy as np

KEY_CHUNK = 64  # neurons per chunk of int32 sort keys
KEY_CLIP_BITS = 12  # int32 keys while clip ids fit 12 bits (N <= 4096), else a full argpartition
SAMPLE_STRIDE = 8  # every 8th clip sets each neuron's candidate threshold


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
    flat = u.reshape(-1) if u.flags.c_contiguous else None
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
        if flat is not None:  # a flat gather is twice as fast as 2-D fancy indexing
            exact = np.take(flat, got * n + (s + np.arange(c))[:, None])
        else:
            exact = block[got, np.arange(c)[:, None]]
        o = np.argsort(-exact, axis=1, kind="stable")
        ids[s:s + c], vals[s:s + c] = np.take_along_axis(got, o, axis=1), np.take_along_axis(exact, o, axis=1)
        redo[s:s + c] = ~ok
    if redo.any():
        ids[redo] = _top_of_rows(np.ascontiguousarray(u[:, redo].T), limit)
        vals[redo] = np.take_along_axis(u[:, redo], ids[redo].T, axis=0).T
    return ids, vals


def neuron_order(u: np.ndarray, subsets: np.ndarray | None = None, limit: int | None = None) -> np.ndarray:
    """(N, n) activations -> (n, L) clip ids per neuron by activation descending, ties by clip id."""
    return neuron_top(u, subsets, limit)[0]


def neuron_top(u: np.ndarray, subsets: np.ndarray | None, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """-> ``neuron_order`` (n, L) and the activations there (n, L)."""
    if subsets is None and limit is not None and limit < u.shape[0]:
        return _top_of_columns(u, limit)
    if subsets is None:
        order = _top_of_rows(np.ascontiguousarray(u.T), u.shape[0])
    else:
        vals = np.take_along_axis(u, subsets.T, axis=0).T
        order = np.take_along_axis(subsets, np.lexsort((subsets, -vals)), axis=1)[:, :limit]
    return order, np.take_along_axis(u, order.T, axis=0).T
