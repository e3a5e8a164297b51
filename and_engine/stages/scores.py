"""Scores of explanations on their neurons' scoring sets (``scoring_sets``) -> ``explanation_scores`` rows.

* ``embedding``: cos(text encoder(explanation), text encoder(caption of each scoring clip));
  ``audio-text``: the audio-text model's similarity of the explanation with each scoring clip's audio
  (independent of the captioner). Both embed each clip once and each distinct explanation point once
  (``text_vectors``: a summary is the mean of its points), one layer at a time (``similarity_at_sets``).
* ``separation``: per explanation, ROC-AUC of its scores for activating vs non-activating clips (ties
  count one half; chance 0.5) and Pearson r of its scores with the real activations (chance 0).
* ``score_summary``: per source, scorer and metric, the distribution over the layer's neurons.
* ``score_on_clips``: the same for one neuron on the spot (a new explanation, e.g. a local LLM's summary):
  texts + its scoring clips' embeddings, activating flags and activations -> AUC and r, by the same functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from and_engine.stages.module_b import split_points
from and_engine.stages.scoring_sets import ScoringSets
from and_engine.store.schema import SCORE_METRICS

COLUMNS = ["model", "layer", "neuron", "source", "scorer", "auc", "pearson_r", "balanced_accuracy", "n_clips",
           "n_malformed"]
SUMMARY_COLUMNS = ["model", "layer", "source", "scorer", "metric", "n_neurons", "mean", "q10", "q25", "median",
                   "q75", "q90"]
METHOD = "points-mean-v1"  # how explanations are embedded and scored: part of the fingerprint, bump on a change
CHUNK = 2048  # explanations per chunk of (chunk, clips) similarity temporaries
MIN_R_CLIPS = 3  # Pearson r needs at least this many scored clips with varying values


def text_vectors(texts: list[str], embed) -> np.ndarray:
    """Texts -> (len, d): the mean of the embeddings of each text's points (``module_b.split_points``; the whole
    text when it has none, e.g. a concept). Points repeat across neurons and Module B embeds them already, so
    each distinct point is embedded once (and usually found in the encoder's memo); a multi-point summary
    weighs its points equally instead of being truncated by the encoder."""
    pieces = [split_points(t) or [t] for t in texts]
    distinct = list(dict.fromkeys(p for ps in pieces for p in ps))
    if not distinct:
        return np.zeros((0, 1))
    emb = np.asarray(embed(distinct), dtype=np.float64)
    where = {p: i for i, p in enumerate(distinct)}
    return np.stack([emb[[where[p] for p in ps]].mean(axis=0) for ps in pieces])


def unique_texts(texts) -> tuple[list[str], np.ndarray]:
    """E texts -> (the U distinct texts, (E,) index of each text among them): embed each text once."""
    codes, uniques = pd.factorize(pd.Series(list(texts), dtype=object))
    return [str(t) for t in uniques], codes.astype(np.int64)


def similarity_at_sets(text_emb: np.ndarray, text_idx: np.ndarray, rows: np.ndarray, clip_emb: np.ndarray,
                       sets: ScoringSets) -> np.ndarray:
    """text_emb (U, d) distinct explanation embeddings, text_idx (E,) each explanation's row there, rows (E,)
    its neuron, clip_emb (N, d) -> (E, m) similarity of each explanation with its neuron's scoring clips (0 in
    empty slots)."""
    out = np.zeros((len(rows), sets.clip_ids.shape[1]))
    ids = np.maximum(sets.clip_ids, 0)
    clips_t = np.asarray(clip_emb, dtype=np.float64).T
    text_emb = np.asarray(text_emb, dtype=np.float64)
    for s in range(0, len(rows), CHUNK):
        sim = text_emb[text_idx[s:s + CHUNK]] @ clips_t
        out[s:s + CHUNK] = np.take_along_axis(sim, ids[rows[s:s + CHUNK]], axis=1)
    return out


def auc(pos: np.ndarray, pos_ok: np.ndarray, neg: np.ndarray, neg_ok: np.ndarray) -> np.ndarray:
    """Scores of positives (E, a) and negatives (E, b) with validity masks -> (E,) ROC-AUC = P(pos > neg) + 1/2
    P(pos = neg) over all valid pairs (the Mann-Whitney statistic); NaN without a positive or a negative."""
    out = np.full(len(pos), np.nan)
    for s in range(0, len(pos), CHUNK):
        d = pos[s:s + CHUNK, :, None] - neg[s:s + CHUNK, None, :]
        m = pos_ok[s:s + CHUNK, :, None] & neg_ok[s:s + CHUNK, None, :]
        pairs = m.sum(axis=(1, 2))
        wins = ((d > 0) & m).sum(axis=(1, 2)) + 0.5 * ((d == 0) & m).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + CHUNK] = np.where(pairs > 0, wins / np.maximum(pairs, 1), np.nan)
    return out


def pearson(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of x and y (E, m) over the ``ok`` entries -> (E,); NaN when fewer than
    ``MIN_R_CLIPS`` entries or either side is constant."""
    w = ok.astype(np.float64)
    n = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = (x * w).sum(axis=1) / n, (y * w).sum(axis=1) / n
        dx, dy = (x - mx[:, None]) * w, (y - my[:, None]) * w
        sxx, syy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1)
        r = (dx * dy).sum(axis=1) / np.sqrt(sxx * syy)
    flat = (sxx <= 1e-12 * (x * x * w).sum(axis=1)) | (syy <= 1e-12 * (y * y * w).sum(axis=1))
    return np.where((n >= MIN_R_CLIPS) & ~flat, np.clip(r, -1.0, 1.0), np.nan)


def separation(scores: np.ndarray, rows: np.ndarray, sets: ScoringSets, u: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """scores (E, m) at the scoring slots of neurons ``rows`` (E,), activations u (N, n) -> (auc (E,), r (E,))."""
    valid, act = sets.valid[rows], sets.activating[rows]
    ids = np.maximum(sets.clip_ids[rows], 0)
    real = np.take_along_axis(np.asarray(u, dtype=np.float64).T[rows], ids, axis=1)
    return auc(scores, valid & act, scores, valid & ~act), pearson(scores, real, valid)


def score_on_clips(texts: list[str], embed, clip_emb: np.ndarray, activating: np.ndarray, activation: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One neuron: T explanation texts, ``embed`` (texts -> (k, d)), its m scoring clips' embeddings (m, d)
    (``embedding``: the encoder's of their captions; ``audio-text``: the model's ``audio_embeddings``),
    ``activating`` (m,) bool and the real ``activation`` (m,) -> (auc (T,), r (T,)), as the layer's scores."""
    m = len(clip_emb)
    sets = ScoringSets(np.arange(m, dtype=np.int64)[None, :], np.asarray(activating, dtype=bool)[None, :],
                       np.ones((1, m), dtype=bool))
    rows = np.zeros(len(texts), dtype=np.int64)
    sim = similarity_at_sets(text_vectors(list(texts), embed), np.arange(len(texts)), rows, clip_emb, sets)
    return separation(sim, rows, sets, np.asarray(activation, dtype=np.float64)[:, None])


def score_rows(explanations: pd.DataFrame, scorer: str, auc_: np.ndarray | None, r: np.ndarray | None,
               balanced: np.ndarray | None, n_clips: np.ndarray, n_malformed: np.ndarray | None = None
               ) -> pd.DataFrame:
    """``explanations`` rows (model, layer, neuron, source) + per-row metrics (None = not defined by the scorer)
    -> ``explanation_scores`` rows."""
    e = len(explanations)

    def col(v):
        return np.full(e, np.nan) if v is None else np.asarray(v, dtype=np.float64)

    out = explanations[["model", "layer", "neuron", "source"]].reset_index(drop=True).assign(
        scorer=scorer, auc=col(auc_), pearson_r=col(r), balanced_accuracy=col(balanced),
        n_clips=np.asarray(n_clips, dtype=np.int32),
        n_malformed=np.zeros(e, dtype=np.int32) if n_malformed is None else np.asarray(n_malformed, dtype=np.int32))
    return out[COLUMNS]


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """``explanation_scores`` rows of one layer -> ``score_summary`` rows: per source, scorer and metric the
    number of neurons with a value, the mean and the 10/25/50/75/90 % quantiles."""
    rows = []
    for (model, layer, source, scorer), g in scores.groupby(["model", "layer", "source", "scorer"], sort=True):
        for metric in SCORE_METRICS:
            v = g[metric].dropna().to_numpy(dtype=np.float64)
            if not len(v):
                continue
            q = np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9])
            rows.append([model, layer, source, scorer, metric, len(v), float(v.mean()), *map(float, q)])
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return out.astype({"n_neurons": np.int32})
