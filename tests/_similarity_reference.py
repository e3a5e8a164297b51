"""Per-neuron reference loops of the five similarity functions (the shape of the paper's code, but
with the wpmi / soft_wpmi normaliser taken over all neurons). Used by tests/test_similarity.py to check
the vectorised versions and by benchmarks/bench_similarity.py as the speed baseline."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax


def _top(col: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-col, kind="stable")[:k]


def cos_loop(u, P, neurons=None):
    neurons = range(u.shape[1]) if neurons is None else neurons
    pn = P / np.maximum(np.linalg.norm(P, axis=0), 1e-12)
    return np.stack([(u[:, j] / max(np.linalg.norm(u[:, j]), 1e-12)) @ pn for j in neurons])


def cos3_loop(u, P, neurons=None, min_norm=1e-3):
    neurons = range(u.shape[1]) if neurons is None else neurons
    pc = (P - P.mean(0)) ** 3
    pc = pc / np.maximum(np.linalg.norm(pc, axis=0), min_norm)
    out = []
    for j in neurons:
        uc = (u[:, j] - u[:, j].mean()) ** 3
        out.append(uc / max(np.linalg.norm(uc), min_norm) @ pc)
    return np.stack(out)


def rank_reorder_loop(u, P, neurons=None, top_fraction=0.05, p=3.0, scale_p=0.5):
    neurons = range(u.shape[1]) if neurons is None else neurons
    k = max(1, int(u.shape[0] * top_fraction))
    out = []
    for j in neurons:
        top = _top(u[:, j], k)
        t = u[top, j]
        base = np.mean(np.abs(t[:, None] - t[None, :]) ** p)
        asc = top[::-1]  # ascending activation, so equal P values keep the activation order
        pt = P[asc]  # (k, M): all concepts of one neuron at once, as the paper's code batches them
        by_p = np.argsort(pt, axis=0, kind="stable")  # the r-th lowest-P clip gets the r-th lowest u
        err = np.mean(np.abs(u[asc[by_p], j] - t[::-1][:, None]) ** p, axis=0)
        ratio = err / base if base > 0 else np.ones_like(err)
        out.append(-ratio / np.maximum(pt.mean(axis=0), 1e-6) ** scale_p)
    return np.array(out)


def _pmi_loop(u, P, top_k, a, lam, weights, neurons):
    pp = softmax(a * P, axis=1)
    rows = []
    for j in range(u.shape[1]):  # the normaliser needs every neuron of the layer
        top = _top(u[:, j], top_k)
        g = pp[top]
        if weights is not None:
            g = 1 + weights[: len(top), None] * (g - 1)
        rows.append(np.log(g + 1e-7).sum(0))
    L = np.stack(rows)
    out = L - lam * (logsumexp(L, axis=0) - np.log(L.shape[0]))
    return out if neurons is None else out[list(neurons)]


def wpmi_loop(u, P, neurons=None):
    return _pmi_loop(u, P, 28, 2.0, 0.6, None, neurons)


def soft_wpmi_loop(u, P, neurons=None):
    weights = 0.998 - (0.998 - 0.97) * np.arange(100) / 99
    return _pmi_loop(u, P, 100, 10.0, 1.0, weights, neurons)


LOOPS = {"cos": cos_loop, "cos3": cos3_loop, "rank_reorder": rank_reorder_loop, "wpmi": wpmi_loop,
         "soft_wpmi": soft_wpmi_loop}
