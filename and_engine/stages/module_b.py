"""Module B -- summary calibration (SPEC section 7): S_h minus the points that S_l also makes.

``calibration_points(summaries, encoder)`` splits S_h / S_l into points, embeds them, and gives every
S_h point its best match in S_l with the cosine (``calibration_points`` rows). With ``keep_opposites``
(``[module_b] keep_opposites``; off = the paper's rule) an S_l point taking the opposite side of an acoustic
axis (``text.polarity.opposite``: "quiet" for "loud") is never an S_h point's match, so S_l's opposite
cannot remove it (a sentence encoder scores "loud" and "quiet" sentences alike). ``calibrate(points, t)``
re-applies any threshold without re-embedding: a point is removed when its best cosine *exceeds* t
(strictly greater); the build and the app's live threshold slider both call it.
``calibrated_summaries(points, neurons, t)`` -> ``calibrated_summaries`` rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from and_engine.text.answers import strip_chatter
from and_engine.text.polarity import opposite

MIN_POINT_WORDS = 6  # fragments of 5 words or fewer are dropped
POINT_COLUMNS = ["model", "layer", "neuron", "point_index", "point", "best_match", "best_cosine"]
SUMMARY_COLUMNS = ["model", "layer", "neuron", "threshold", "calibrated_summary", "n_points", "n_removed"]
_MARKER = re.compile(r"^\s*(?:\(?\d+[.)]|[-*\u2022]|#+)\s+")


class ModuleBError(ValueError):
    """Bad input to Module B (missing columns, invalid threshold); the message names it."""


@functools.lru_cache(maxsize=1)
def _sentence_splitter():
    from nltk.tokenize import PunktSentenceTokenizer  # untrained Punkt: needs no downloaded data

    return PunktSentenceTokenizer()


def split_points(summary: str) -> list[str]:
    """A summary -> its points: sentences (newline pieces when fewer than 3 sentences), list markers
    stripped, chatter and fragments of <= 5 words dropped."""
    text = strip_chatter(str(summary or ""))
    pieces = _sentence_splitter().tokenize(text)
    if len(pieces) < 3:
        pieces = [line for p in pieces for line in p.split("\n")]
    points = []
    for piece in pieces:
        point = " ".join(_MARKER.sub("", piece).split())
        if len(point.split()) >= MIN_POINT_WORDS and strip_chatter(point):
            points.append(point)
    return points


def _sides(summaries: pd.DataFrame) -> pd.DataFrame:
    need = {"neuron", "side", "summary"}
    if not need <= set(summaries.columns):
        raise ModuleBError(f"summaries need columns {sorted(need)}, got {sorted(summaries.columns)}")
    bad = set(summaries["side"]) - {"top", "bottom"}
    if bad:
        raise ModuleBError(f"summaries.side must be 'top' or 'bottom', got {sorted(bad)}")
    wide = summaries.pivot_table(index="neuron", columns="side", values="summary", aggfunc="first")
    return wide.reindex(columns=["top", "bottom"]).fillna("")


def calibration_points(summaries: pd.DataFrame, encoder, *, model: str, layer: str,
                       keep_opposites: bool = False) -> pd.DataFrame:
    """summaries (neuron, side top|bottom, summary) of one layer -> every S_h point with its best S_l match
    (with ``keep_opposites``: the best S_l point that is not its opposite; none left -> no match, NaN)."""
    wide = _sides(summaries)
    top = {int(n): split_points(s) for n, s in wide["top"].items()}
    bottom = {int(n): split_points(s) for n, s in wide["bottom"].items()}
    texts = sorted({p for pts in (*top.values(), *bottom.values()) for p in pts})
    emb = dict(zip(texts, encoder.encode(texts).astype(np.float64))) if texts else {}
    rows = []
    for neuron, points in top.items():
        low = bottom[neuron]
        sims = (np.clip(np.stack([emb[p] for p in points]) @ np.stack([emb[q] for q in low]).T, -1.0, 1.0)
                if points and low else None)  # clipped: float32 rounding must not push a cosine past 1
        if sims is not None and keep_opposites:
            sims[[[opposite(p, q) for q in low] for p in points]] = -np.inf
        for i, point in enumerate(points):
            j = int(np.argmax(sims[i])) if sims is not None and np.isfinite(sims[i]).any() else -1
            rows.append((model, layer, neuron, i, point, low[j] if j >= 0 else None,
                         float(sims[i, j]) if j >= 0 else float("nan")))
    return pd.DataFrame(rows, columns=POINT_COLUMNS).astype({"neuron": "int32", "point_index": "int32"})


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not np.isfinite(t):
        raise ModuleBError(f"calibration threshold must be a finite number, got {threshold!r}")
    return t


def calibrate(points: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, str]:
    """One neuron's calibration points (point_index, point, best_cosine, ...) -> (the points in point_index
    order with ``removed`` = best cosine > threshold (a NaN cosine, no S_l point, is never removed), S_h^c =
    the kept points joined with spaces, a full stop added where a point has no terminal punctuation)."""
    t = _check_threshold(threshold)
    missing = {"point_index", "point", "best_cosine"} - set(points.columns)
    if missing:
        raise ModuleBError(f"calibration points lack column(s) {sorted(missing)}")
    marked = points.sort_values("point_index").reset_index(drop=True)
    marked["removed"] = marked["best_cosine"].to_numpy(dtype=np.float64) > t
    kept = marked.loc[~marked["removed"], "point"].astype(str)
    # a point without terminal punctuation gets a full stop, so sentences stay apart for Module C
    return marked, " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in kept)


def calibrated_summaries(points: pd.DataFrame, neurons: Sequence[int], threshold: float, *, model: str,
                         layer: str) -> pd.DataFrame:
    """Calibration points of a layer + all its neurons -> one S_h^c row per neuron (empty if no points)."""
    t = _check_threshold(threshold)
    rows = []
    groups = dict(tuple(points.groupby("neuron"))) if len(points) else {}
    for neuron in sorted(int(n) for n in neurons):
        pts = groups.get(neuron)
        if pts is None:
            rows.append((model, layer, neuron, t, "", 0, 0))
            continue
        marked, text = calibrate(pts, t)
        rows.append((model, layer, neuron, t, text, len(pts), int(marked["removed"].sum())))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).astype(
        {"neuron": "int32", "n_points": "int32", "n_removed": "int32"})
