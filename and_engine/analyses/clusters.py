"""Neuron interpretability by caption clusters (paper section 4.5, Algorithm 1, Appendix G).

Captions are split into sentences, embedded by the sentence encoder and clustered by seeded K-means.
A clip belongs to every cluster that holds one of its sentences. A neuron is *interpretable* at
threshold τ when at least τ of its top-K clips belong to one same cluster. (Algorithm 1 writes
``|∩ C_i| ≥ τ``; the text — "at least τ descriptions are related to the same cluster" — is what is
implemented.) Word weights per cluster feed the app's word clouds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from and_engine.analyses.common import AnalysisInputError, require_columns

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z][a-z'\-]+")


def split_sentences(caption: str) -> list[str]:
    """A caption -> its sentences (split after . ! ? or at newlines), stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(str(caption)) if s and s.strip()]


def caption_sentences(captions: pd.DataFrame) -> pd.DataFrame:
    """``captions`` (clip_id, caption) -> (clip_id, sentence_index, sentence), one row per sentence."""
    require_columns(captions, ("clip_id", "caption"), "captions")
    rows = [(int(c), i, s) for c, cap in zip(captions["clip_id"], captions["caption"])
            for i, s in enumerate(split_sentences(cap))]
    if not rows:
        raise AnalysisInputError("captions hold no sentence to cluster")
    return pd.DataFrame(rows, columns=["clip_id", "sentence_index", "sentence"])


def _distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, d) -> (distinct rows (u, d), (n,) index of each row's distinct row, (u,) counts); exact float32 match."""
    rows = np.ascontiguousarray(x, dtype=np.float32)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    return rows[first].astype(np.float64), inverse.ravel(), counts


def kmeans_clusters(embeddings: np.ndarray, n_clusters: int, seed: int, elbow_max_k: int, threads: int | None = 1,
                    ) -> tuple[np.ndarray, pd.DataFrame]:
    """(n, d) sentence embeddings -> ((n,) cluster ids, ``cluster_elbow`` rows for k = 2..elbow_max_k).

    Identical embeddings (repeated sentences) are clustered once with their count as sample weight: the
    same K-means objective, far fewer points. k is capped at the number of distinct embeddings; the caller
    sees the cap in the number of distinct cluster ids. ``threads``: BLAS/OpenMP threads (1 is much
    faster on a small, shared CPU; None = library default).
    """
    from sklearn.cluster import KMeans  # lazy: scikit-learn is only needed here
    from threadpoolctl import threadpool_limits

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise AnalysisInputError(f"embeddings must be a non-empty (n, d) array, got shape {x.shape}")
    if n_clusters < 1:
        raise AnalysisInputError(f"n_clusters must be >= 1, got {n_clusters}")
    uniq, inverse, counts = _distinct_rows(x)
    k = min(n_clusters, len(uniq))
    with threadpool_limits(limits=threads):
        fit = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(uniq, sample_weight=counts)
        elbow = [(kk, float(KMeans(n_clusters=kk, n_init=4, random_state=seed)
                            .fit(uniq, sample_weight=counts).inertia_))
                 for kk in range(2, min(elbow_max_k, len(uniq)) + 1)]
    return fit.labels_[inverse].astype(np.int64), pd.DataFrame(elbow, columns=["k", "inertia"])


def clip_cluster_matrix(sentences: pd.DataFrame, n_clips: int) -> np.ndarray:
    """(clip_id, cluster) rows -> (n_clips, n_clusters) bool: clip i holds a sentence of cluster c."""
    require_columns(sentences, ("clip_id", "cluster"), "caption_sentences")
    if sentences.empty:
        raise AnalysisInputError("caption_sentences is empty")
    clip = sentences["clip_id"].to_numpy(np.int64)
    if clip.min() < 0 or clip.max() >= n_clips:
        raise AnalysisInputError(f"caption_sentences clip_id outside 0..{n_clips - 1}")
    m = np.zeros((n_clips, int(sentences["cluster"].max()) + 1), dtype=bool)
    m[clip, sentences["cluster"].to_numpy(np.int64)] = True
    return m


def interpretable(topk_clip_ids: np.ndarray, membership: np.ndarray, tau: int) -> np.ndarray:
    """(n_neurons, K) top-K clip ids + (n_clips, n_clusters) membership -> (n_neurons,) bool interpretable."""
    ids = np.asarray(topk_clip_ids, dtype=np.int64)
    if ids.ndim != 2:
        raise AnalysisInputError(f"topk_clip_ids must be (n_neurons, K), got shape {ids.shape}")
    if tau < 1:
        raise AnalysisInputError(f"tau must be >= 1, got {tau}")
    per_cluster = membership[ids].sum(axis=1)  # (n_neurons, n_clusters): top-K clips in each cluster
    return per_cluster.max(axis=1, initial=0) >= tau


def interpretability(extremes: pd.DataFrame, layers: pd.DataFrame, membership: np.ndarray,
                     taus: Sequence[int], model: str) -> pd.DataFrame:
    """``extremes`` of one model + clip/cluster membership -> ``interpretability`` rows per layer and τ."""
    require_columns(extremes, ("layer", "neuron", "topk_clip_ids"), "extremes")
    require_columns(layers, ("layer", "block"), "layers")
    block = dict(zip(layers["layer"], layers["block"]))
    rows = []
    for layer, grp in extremes.groupby("layer", sort=False):
        if layer not in block:
            raise AnalysisInputError(f"{model}: extremes layer {layer!r} is not in the layers table")
        lengths = {len(v) for v in grp["topk_clip_ids"]}
        if len(lengths) != 1:
            raise AnalysisInputError(f"{model}/{layer}: top-K lists of different lengths {sorted(lengths)}")
        ids = np.stack([np.asarray(v, dtype=np.int64) for v in grp["topk_clip_ids"]])
        if ids.size and ids.max() >= len(membership):
            raise AnalysisInputError(f"{model}/{layer}: top-K clip id {ids.max()} has no caption sentences")
        for tau in taus:
            ok = interpretable(ids, membership, int(tau))
            rows.append((model, layer, int(block[layer]), int(tau), 100.0 * float(np.mean(~ok)), len(ok)))
    cols = ["model", "layer", "block", "tau", "pct_uninterpretable", "n_neurons"]
    return pd.DataFrame(rows, columns=cols)


def cluster_words(sentences: pd.DataFrame, top_n: int = 40) -> pd.DataFrame:
    """-> ``cluster_words``: per cluster its ``top_n`` words by frequency (stop-words out), weight = count / max."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    require_columns(sentences, ("sentence", "cluster"), "caption_sentences")
    rows = []
    for cluster, grp in sentences.groupby("cluster", sort=True):
        counts = Counter(w.strip("'-") for s in grp["sentence"] for w in _WORD.findall(str(s).lower()))
        counts = Counter({w: c for w, c in counts.items() if len(w) > 2 and w not in ENGLISH_STOP_WORDS})
        top = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:top_n]
        peak = top[0][1] if top else 1
        rows += [(int(cluster), w, c / peak, len(grp)) for w, c in top]
    return pd.DataFrame(rows, columns=["cluster", "word", "weight", "n_sentences"])
