"""Human evaluation (SPEC section 10, Table 3): sampling, blind descriptions, and the results table.

* ``sample_neuron``: a seeded pick among neurons that have a calibrated summary, skipping rated ones.
* ``descriptions``: the three blind candidates: DB top concept, TAB top concept, calibrated summary.
* ``blind_order``: a permutation of the methods seeded by (rater, neuron), so a rerun keeps the order.
* ``description_steps`` / ``current_description_steps``: the results steps that produced a neuron's
  descriptions / every description the database holds (each rating is bound to its description's step).
* ``table3``: mean rating per method, and the cosine / BERTScore-style F1 between each rater's written
  summary and the method's description (``text_similarity``), over ratings of current descriptions.
* ``score_correlations``: how the ratings of current descriptions correlate with the automatic scores of the
  rated explanations (Spearman's rho per scorer and metric, over all ratings and per method).
* ``export_csv``: ratings + written summaries as CSV, every text cell safe to open in a spreadsheet.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from and_engine.store.ratings import METHODS, bound_to
from and_engine.store.results import ResultsStore

# similarity functions preferred for the DB / TAB description (CLIP-Dissect's default first)
SIMILARITY_PREFERENCE = ("soft_wpmi", "wpmi", "cos3", "cos", "rank_reorder")
# a written summary belongs to the ratings of its submission (rows saved before submissions: NULL = NULL, by neuron)
SUBMISSION_KEYS = ["rater", "model", "layer", "neuron", "submission_id"]


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "little")


def sample_neuron(store: ResultsStore, rater: str, rated: set[tuple[str, str, int]], model: str | None = None,
                  pool: int = 64) -> tuple[str, str, int] | None:
    """-> (model, layer, neuron) for ``rater`` not in ``rated`` (seeded per rater), or None when all are rated.

    Candidates: neurons with a non-empty calibrated summary (one of the three blind descriptions).
    """
    where, params = ("AND model = ?", [model]) if model else ("", [])
    offset = 0
    while True:
        df = store.query_df(
            'SELECT model, layer, neuron FROM "calibrated_summaries" '
            f"WHERE length(trim(calibrated_summary)) > 0 {where} "
            "ORDER BY hash(? || model || '/' || layer || '/' || CAST(neuron AS VARCHAR)) LIMIT ? OFFSET ?",
            [*params, rater, pool, offset])
        for r in df.itertuples():
            key = (str(r.model), str(r.layer), int(r.neuron))
            if key not in rated:
                return key
        if len(df) < pool:
            return None
        offset += pool


def _top_concept(closed: pd.DataFrame, method: str) -> tuple[str, str] | None:
    sub = closed[closed["method"] == method]
    for sim in (*SIMILARITY_PREFERENCE, *sorted(sub["similarity"].unique())):
        best = sub[sub["similarity"] == sim].sort_values("rank")
        if len(best):
            return str(best["concept"].iloc[0]), sim
    return None


def descriptions(closed: pd.DataFrame, calibrated_summary: str | None) -> dict[str, str]:
    """(the neuron's closed_concepts rows, its S_h^c) -> {method: description} for the methods available."""
    out: dict[str, str] = {}
    for method in ("DB", "TAB"):
        hit = _top_concept(closed, method)
        if hit:
            out[method] = hit[0].replace("_", " ")
    if calibrated_summary and calibrated_summary.strip():
        out["SUMMARY"] = calibrated_summary.strip()
    return out


def description_steps(store: ResultsStore, model: str, layer: str, neuron: int) -> dict[str, str]:
    """-> {method: step_id of the results step that wrote that method's description} for one neuron
    (DB / TAB: its Module A rows; SUMMARY: its calibrated summary)."""
    closed = store.read("closed_concepts", ["method", "step_id"], model=model, layer=layer, neuron=int(neuron),
                        method=[m for m in METHODS if m != "SUMMARY"])
    out = {str(m): str(g["step_id"].iloc[0]) for m, g in closed.groupby("method")}
    cal = store.read("calibrated_summaries", ["step_id"], model=model, layer=layer, neuron=int(neuron))
    if len(cal):
        out["SUMMARY"] = str(cal["step_id"].iloc[0])
    return out


def current_description_steps(store: ResultsStore) -> set[str]:
    """-> the ids of the steps whose rows the results database holds now: a rating bound to another step
    rated a description that a later build replaced (a rebuilt step gets a new id, its old rows go)."""
    return set(store.query_df('SELECT step_id FROM "steps"')["step_id"].astype(str))


def blind_order(rater: str, model: str, layer: str, neuron: int, methods: list[str]) -> list[str]:
    """A permutation of ``methods`` that depends only on (rater, neuron): reruns show the same order."""
    rng = np.random.default_rng(_seed(rater.strip().lower(), model, layer, int(neuron)))
    return [methods[i] for i in rng.permutation(len(methods))]


def table3(ratings: pd.DataFrame, written: pd.DataFrame, similarity,
           current_steps: set[str] | None = None) -> pd.DataFrame:
    """(latest ratings, latest written summaries, a ``TextSimilarity``, ``current_description_steps``) -> Table 3.

    -> method, mean_rating, n_ratings, cosine, bertscore_f1, n_pairs: over the ratings ``bound_to`` the current
    steps (all when None); similarities between a description and the summary written in the same submission
    (NaN when there is none).
    """
    rows = []
    ratings = ratings[bound_to(ratings, current_steps)]
    pairs = ratings.merge(written[[*SUBMISSION_KEYS, "text"]], on=SUBMISSION_KEYS, how="inner")
    for method in METHODS:
        r = ratings[ratings["method"] == method]
        p = pairs[pairs["method"] == method]
        cos = bert = float("nan")
        if len(p):
            cos = float(np.mean(similarity.cosine(p["text"].tolist(), p["description"].tolist())))
            bert = float(np.mean(similarity.bertscore_f1(p["text"].tolist(), p["description"].tolist())))
        rows.append({"method": method, "mean_rating": float(r["rating"].mean()) if len(r) else float("nan"),
                     "n_ratings": int(len(r)), "cosine": cos, "bertscore_f1": bert, "n_pairs": int(len(p))})
    return pd.DataFrame(rows)


def export_csv(ratings: pd.DataFrame, written: pd.DataFrame) -> bytes:
    """(all ratings, written summaries) -> UTF-8 CSV, one row per rating with its submission's written summary.

    Text cells that a spreadsheet would run as a formula get a leading ``'`` (``export.safe_csv``)."""
    from and_engine.explorer.export import safe_csv

    return safe_csv(ratings.merge(written[[*SUBMISSION_KEYS, "text"]], on=SUBMISSION_KEYS, how="left"))


def superseded(ratings: pd.DataFrame, current_steps: set[str]) -> int:
    """How many ``ratings`` rate a description the results database no longer holds (left out of Table 3)."""
    return int((~bound_to(ratings, current_steps)).sum())


RATED_SOURCE = {"SUMMARY": "S_h^c"}  # DB / TAB: the similarity ``descriptions`` shows (SIMILARITY_PREFERENCE)


def rated_source(method: str, sources: set[str]) -> str | None:
    """A rated method -> the explanation source it showed, among ``sources`` of the neuron (None if absent)."""
    if method in RATED_SOURCE:
        return RATED_SOURCE[method] if RATED_SOURCE[method] in sources else None
    return next((f"{method}/{sim}" for sim in SIMILARITY_PREFERENCE if f"{method}/{sim}" in sources), None)


def score_correlations(ratings: pd.DataFrame, scores: pd.DataFrame, current_steps: set[str] | None = None,
                       min_n: int = 3) -> pd.DataFrame:
    """(latest ratings, the rated neurons' ``explanation_scores`` rows, ``current_description_steps``) -> method
    ("all" or one), scorer, metric, n (ratings with a score), spearman_rho (NaN below ``min_n`` or without
    variation), over the ratings ``bound_to`` the current steps (all when None), as Table 3."""
    from scipy.stats import spearmanr

    cols = ["method", "scorer", "metric", "n", "spearman_rho"]
    ratings = ratings[bound_to(ratings, current_steps)]
    if ratings.empty or scores.empty:
        return pd.DataFrame(columns=cols)
    keys = ["model", "layer", "neuron"]
    sources = scores.groupby(keys)["source"].agg(set)
    r = ratings.assign(source=[rated_source(m, sources.get((a, b, int(c)), set()))
                               for m, a, b, c in zip(ratings["method"], ratings["model"], ratings["layer"],
                                                     ratings["neuron"])])
    long = scores.melt(id_vars=[*keys, "source", "scorer"], value_vars=["auc", "pearson_r", "balanced_accuracy"],
                       var_name="metric").dropna(subset=["value"])
    both = r.dropna(subset=["source"]).merge(long, on=[*keys, "source"])
    rows = []
    for (scorer, metric), g in both.groupby(["scorer", "metric"], sort=True):
        for method, h in [("all", g), *g.groupby("method", sort=True)]:
            ok = len(h) >= min_n and h["rating"].nunique() > 1 and h["value"].nunique() > 1
            rho = float(spearmanr(h["rating"], h["value"]).statistic) if ok else float("nan")
            rows.append((method, scorer, metric, len(h), rho))
    return pd.DataFrame(rows, columns=cols)
