"""Per-neuron reference loops of the five similarity functions, in two shapes, both with the wpmi /
soft_wpmi normaliser taken over all neurons of the layer (SPEC section 6). The speed baselines of
benchmarks/bench_similarity.py; tests/test_similarity.py checks the vectorised versions against them
(benchmarks import nothing from tests/, so the shared reference lives here).

* ``PER_CALL``: the paper's code -- every neuron scored by its own call of the similarity function on
  one activation column, so each call recomputes what the function derives from P (softmax(a P), the
  normalised / cubed P columns); concepts vectorised. The layer normaliser of wpmi / soft_wpmi is
  applied after the loop (``per_call_loop``), so unlike the paper's code the result is correct.
* ``LOOPS``: a hand-optimised per-neuron loop that computes everything shared across neurons once.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax


def _top(col: np.ndarray, k: int) -> np.ndarray:
    """The k top clips of one column, descending, ties by clip id: a linear-time selection (as a per-call
    torch.topk would be), a full stable sort only when the k-th value is tied with a clip left out."""
    neg = -col
    if k >= len(col):
        return np.argsort(neg, kind="stable")[:k]
    part = np.argpartition(neg, k - 1)[:k]
    part = part[np.lexsort((part, neg[part]))]
    if np.count_nonzero(col >= col[part[-1]]) > k:
        return np.argsort(neg, kind="stable")[:k]
    return part


def _cube(x):
    return x * x * x


def _pmi_norm(L: np.ndarray, lam: float) -> np.ndarray:
    return L - lam * (logsumexp(L, axis=0) - np.log(L.shape[0]))


def _soft_weights(k: int, p_start: float = 0.998, p_end: float = 0.97) -> np.ndarray:
    return p_start - (p_start - p_end) * np.arange(k) / max(k - 1, 1)


# --- one call per neuron: col (N,) activations of one neuron, P (N, M) -> (M,) ---------------------

def cos_one(col, P):
    pn = P / np.maximum(np.linalg.norm(P, axis=0), 1e-12)
    return (col / max(np.linalg.norm(col), 1e-12)) @ pn


def cos3_one(col, P, min_norm=1e-3):
    pc = _cube(P - P.mean(0))
    pc = pc / np.maximum(np.linalg.norm(pc, axis=0), min_norm)
    uc = _cube(col - col.mean())
    return uc / max(np.linalg.norm(uc), min_norm) @ pc


def rank_reorder_one(col, P, top_fraction=0.05, p=3.0, scale_p=0.5):
    k = max(1, int(len(col) * top_fraction))
    top = _top(col, k)
    t = col[top]
    base = np.mean(np.abs(t[:, None] - t[None, :]) ** p)  # exact expectation over random permutations
    asc = top[::-1]  # ascending activation, so equal P values keep the activation order
    pt = P[asc]  # (k, M): all concepts at once
    by_p = np.argsort(pt, axis=0, kind="stable")  # the r-th lowest-P clip gets the r-th lowest u
    err = np.mean(np.abs(col[asc[by_p]] - t[::-1][:, None]) ** p, axis=0)
    ratio = err / base if base > 0 else np.ones_like(err)
    return -ratio / np.maximum(pt.mean(axis=0), 1e-6) ** scale_p


def wpmi_one(col, P, top_k=28, a=2.0, min_prob=1e-7):
    """-> L (M,): the log-likelihood term; the layer normaliser is applied by ``per_call_loop``."""
    pp = softmax(a * P, axis=1)
    return np.log(pp[_top(col, top_k)] + min_prob).sum(0)


def soft_wpmi_one(col, P, top_k=100, a=10.0, min_prob=1e-7):
    """-> L (M,), weights falling linearly from 0.998 to 0.97 over the top-``top_k`` clips."""
    pp = softmax(a * P, axis=1)
    top = _top(col, top_k)
    w = _soft_weights(top_k)[: len(top), None]
    return np.log(1 + w * (pp[top] - 1) + min_prob).sum(0)


PER_CALL = {"cos": cos_one, "cos3": cos3_one, "rank_reorder": rank_reorder_one, "wpmi": wpmi_one,
            "soft_wpmi": soft_wpmi_one}
PMI_LAMBDA = {"wpmi": 0.6, "soft_wpmi": 1.0}


def per_call_loop(name, u, P):
    """u (N, n), P (N, M) -> (n, M): ``PER_CALL[name]`` once per column of u, then (wpmi / soft_wpmi) the
    normaliser over the n columns, as the layer."""
    out = np.stack([PER_CALL[name](u[:, j], P) for j in range(u.shape[1])])
    return _pmi_norm(out, PMI_LAMBDA[name]) if name in PMI_LAMBDA else out


# --- hand-optimised loop: shared work done once --------------------------------------------------

def cos_loop(u, P):
    pn = P / np.maximum(np.linalg.norm(P, axis=0), 1e-12)
    return np.stack([(u[:, j] / max(np.linalg.norm(u[:, j]), 1e-12)) @ pn for j in range(u.shape[1])])


def cos3_loop(u, P, min_norm=1e-3):
    pc = _cube(P - P.mean(0))
    pc = pc / np.maximum(np.linalg.norm(pc, axis=0), min_norm)
    out = []
    for j in range(u.shape[1]):
        uc = _cube(u[:, j] - u[:, j].mean())
        out.append(uc / max(np.linalg.norm(uc), min_norm) @ pc)
    return np.stack(out)


def rank_reorder_loop(u, P):
    return np.stack([rank_reorder_one(u[:, j], P) for j in range(u.shape[1])])  # nothing shared to hoist


def _pmi_loop(u, P, top_k, a, lam, weights):
    pp = softmax(a * P, axis=1)
    logs = np.log(pp + 1e-7) if weights is None else None
    rows = []
    for j in range(u.shape[1]):
        top = _top(u[:, j], top_k)
        if weights is None:
            rows.append(logs[top].sum(0))
        else:
            rows.append(np.log(1 + weights[: len(top), None] * (pp[top] - 1) + 1e-7).sum(0))
    return _pmi_norm(np.stack(rows), lam)


def wpmi_loop(u, P):
    return _pmi_loop(u, P, 28, 2.0, 0.6, None)


def soft_wpmi_loop(u, P):
    return _pmi_loop(u, P, 100, 10.0, 1.0, _soft_weights(100))


LOOPS = {"cos": cos_loop, "cos3": cos3_loop, "rank_reorder": rank_reorder_loop, "wpmi": wpmi_loop,
         "soft_wpmi": soft_wpmi_loop}
