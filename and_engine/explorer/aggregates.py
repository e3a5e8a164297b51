"""Query layer, part 2: database-wide aggregates for the Overview, Concepts and Pruning pages.

All reads are parameterised SQL through ``store.query_df`` that aggregate inside DuckDB, so a
paper-scale database (55,346 neurons) returns a few hundred rows. Inputs: a ``ResultsStore`` and
filters; outputs: DataFrames ready for ``charts``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from and_engine.explorer import queries
from and_engine.store.results import ResultsStore
from and_engine.store.schema import FIRST_RANK, POS_ADJECTIVE, POS_NOUN


def _where(**filters: object) -> tuple[str, list]:
    """{'model': 'm', 'layer': None} -> ('WHERE model = ?', ['m']); None values are left out."""
    keys = [k for k, v in filters.items() if v is not None]
    return ("WHERE " + " AND ".join(f"{k} = ?" for k in keys) if keys else ""), [filters[k] for k in keys]


def layer_summary(store: ResultsStore) -> pd.DataFrame:
    """-> per model and layer: block, neuron count, map geometry, whether it was dissected (network order)."""
    return store.query_df('SELECT model, layer, block, kind, n_neurons, map_freq, map_time, EXISTS (SELECT 1 FROM '
                          '"extremes" e WHERE e.model = l.model AND e.layer = l.layer) AS dissected FROM "layers" l '
                          "ORDER BY model, layer_index")


def sae_metrics(store: ResultsStore) -> pd.DataFrame:
    """-> per SAE layer: its source layer, latents, k, fraction of variance explained (all training vectors, the
    typical ones it was trained on, held-out), L0, dead and dense latents (empty without SAE layers)."""
    return store.query_df('SELECT model, layer, source_layer, n_latents, k, fve, fve_typical, fve_heldout, l0, '
                          'n_dead, n_dense, n_vectors, n_outliers FROM "sae_metrics" ORDER BY model, layer')


def sae_checkpoints(store: ResultsStore, model: str) -> dict[str, str]:
    """-> {source layer: SAE folder} of ``model``'s SAE layers (what live pruning attaches)."""
    rows = store.read("sae_metrics", ["source_layer", "checkpoint"], model=model, order_by=["layer"])
    return dict(zip(rows["source_layer"], rows["checkpoint"], strict=True))


def lastlayer_accuracy(store: ResultsStore, model: str | None = None) -> pd.DataFrame:
    """-> Table 2 / 7 rows: top-1 / top-5 accuracy and concept cosine per method and similarity."""
    where, params = _where(model=model)
    return store.query_df(f'SELECT * EXCLUDE (step_id) FROM "lastlayer_accuracy" {where} '
                          "ORDER BY model, method, similarity", params)


def adjective_stats(store: ResultsStore, model: str | None = None) -> pd.DataFrame:
    """-> Figure 5: mean number of adjectives per neuron for each layer / block."""
    where, params = _where(model=model)
    return store.query_df(f'SELECT * EXCLUDE (step_id) FROM "adjective_stats" {where} ORDER BY model, block, layer',
                          params)


def taus(store: ResultsStore) -> list[int]:
    """-> the τ values the interpretability analysis was run with."""
    return store.query_df('SELECT DISTINCT tau FROM "interpretability" ORDER BY tau')["tau"].astype(int).tolist()


def interpretability(store: ResultsStore, tau: int, model: str | None = None) -> pd.DataFrame:
    """-> Figure 6: % uninterpretable neurons per layer / block at threshold ``tau``."""
    where, params = _where(model=model, tau=int(tau))
    return store.query_df(f'SELECT model, layer, block, pct_uninterpretable, n_neurons FROM "interpretability" '
                          f"{where} ORDER BY model, block, layer", params)


def top_adjectives(store: ResultsStore, model: str | None = None, n: int = 20) -> pd.DataFrame:
    """-> Figure 3 / 9: the ``n`` adjectives found in the most neurons' calibrated summaries."""
    where, params = _where(model=model)
    return store.query_df(f'SELECT model, adjective, n_neurons, rank FROM "top_adjectives" {where} '
                          "ORDER BY model, rank LIMIT ?", [*params, int(n)])


def adjective_histogram(store: ResultsStore, model: str | None = None, layer: str | None = None,
                        n: int = 30) -> pd.DataFrame:
    """-> the ``n`` most frequent open-set adjectives (number of neurons) for all / one model / one layer."""
    where, params = _where(pos=POS_ADJECTIVE, model=model, layer=layer)
    return store.query_df(f'SELECT word AS adjective, count(DISTINCT (model, layer, neuron)) AS n_neurons '
                          f'FROM "open_concepts" {where} GROUP BY word ORDER BY n_neurons DESC, word LIMIT ?',
                          [*params, int(n)])


def adjective_totals(store: ResultsStore, model: str | None = None, layer: str | None = None) -> tuple[int, int]:
    """-> (distinct open-set adjectives, neurons with at least one) for all / one model / one layer."""
    where, params = _where(pos=POS_ADJECTIVE, model=model, layer=layer)
    row = store.query_df(f'SELECT count(DISTINCT word) AS n_adjectives, count(DISTINCT (model, layer, neuron)) AS '
                         f'n_neurons FROM "open_concepts" {where}', params).iloc[0]
    return int(row["n_adjectives"]), int(row["n_neurons"])


def search_neurons(store: ResultsStore, term: str, model: str | None = None, limit: int = 200) -> pd.DataFrame:
    """Neurons whose top closed-set concept or an open-set word matches ``term`` (case-insensitive substring).

    -> model, layer, neuron, matched_by ('closed:DB/cos', 'open:adjective', ...), match, score; best first.
    """
    term = term.strip().lower()
    if not term:
        raise ValueError("search term must not be empty")
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    m_where, m_params = ("AND model = ?", [model]) if model else ("", [])
    sql = (
        "SELECT model, layer, neuron, 'closed:' || method || '/' || similarity AS matched_by, concept AS match, "
        'score FROM "closed_concepts" WHERE rank = ? '
        f"AND lower(concept) LIKE ? ESCAPE '\\' {m_where} "
        "UNION ALL SELECT model, layer, neuron, 'open:' || CASE pos WHEN ? THEN 'adjective' WHEN ? THEN 'noun' END, "
        'word, CAST(count AS DOUBLE) FROM "open_concepts" '
        f"WHERE lower(word) LIKE ? ESCAPE '\\' {m_where} ORDER BY model, layer, neuron LIMIT ?"
    )
    return store.query_df(sql, [FIRST_RANK, like, *m_params, POS_ADJECTIVE, POS_NOUN, like, *m_params, int(limit)])


def cluster_words(store: ResultsStore, top: int = 60) -> pd.DataFrame:
    """-> the ``top`` heaviest words of every interpretability cluster (for word clouds) with cluster sizes."""
    return store.query_df('SELECT cluster, word, weight, n_sentences FROM "cluster_words" '
                          "QUALIFY row_number() OVER (PARTITION BY cluster ORDER BY weight DESC, word) <= ? "
                          "ORDER BY cluster, weight DESC", [int(top)])


def cluster_elbow(store: ResultsStore) -> pd.DataFrame:
    """-> k-means inertia for each k (the elbow curve)."""
    return store.query_df('SELECT k, inertia FROM "cluster_elbow" ORDER BY k')


def pruning_summary(store: ResultsStore, model: str | None = None) -> pd.DataFrame:
    """-> the stored Table 4 rows (ΔA, ΔR, ΔA − ΔR per method)."""
    where, params = _where(model=model)
    return store.query_df(f'SELECT * EXCLUDE (step_id) FROM "pruning_summary" {where} ORDER BY model, method',
                          params)


def prunable_models(store: ResultsStore) -> list[str]:
    """-> the models the build evaluates per class (``probing.classes_are_labels``) that have held-out clips
    (``probing.heldout_clips``): pruning needs true classes, so pretrained models with other classes are out."""
    from and_engine.probing import classes_are_labels, heldout_clips

    clips = store.read("clips", ["clip_id", "label", "fold"])
    rows = store.read("models", ["model", "class_names", "heldout_fold"], order_by=["model"])
    return [str(r.model) for r in rows.itertuples()
            if classes_are_labels(list(r.class_names), clips["label"].unique().tolist()) and not pd.isna(r.heldout_fold)
            and len(heldout_clips(clips, list(r.class_names), int(r.heldout_fold)))]


def similarities(store: ResultsStore, model: str, method: str) -> list[str]:
    """-> the similarity functions stored for ``method`` (DB / TAB / ICL) of ``model``."""
    return store.query_df('SELECT DISTINCT similarity FROM "closed_concepts" WHERE model = ? AND method = ? '
                          "ORDER BY similarity", [model, method])["similarity"].tolist()


def pruning_candidates(store: ResultsStore, model: str, concept: str, top_n: int = 3,
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The only rows ``analyses.pruning.select_neurons`` can select for ``concept`` -> (closed, open_concepts).

    closed: rows within each neuron's top ``top_n`` ranks (every method and similarity) whose concept
    matches by DB / TAB's rule (``pruning.matching_concepts``); open: rows whose word matches by OCP's rule
    (``pruning.matching_words``). The rules run on the distinct names only, so selecting on these rows gives
    the same neurons as on the full tables without reading 55k neurons' rows.
    """
    from and_engine.analyses.pruning import matching_concepts, matching_words

    names = store.query_df('SELECT DISTINCT concept FROM "closed_concepts" WHERE model = ?', [model])["concept"]
    hits = matching_concepts(concept, names)
    closed = store.query_df(
        'SELECT layer, neuron, method, similarity, rank, concept FROM "closed_concepts" WHERE model = ? AND rank < ? '
        f'AND concept IN ({", ".join("?" for _ in hits) or "NULL"})', [model, FIRST_RANK + int(top_n), *hits])
    words = store.query_df('SELECT DISTINCT word FROM "open_concepts" WHERE model = ?', [model])["word"]
    opened = store.read("open_concepts", ["layer", "neuron", "word", "pos"], model=model,
                        word=matching_words(concept, words))
    return closed, opened


def random_neuron(store: ResultsStore, model: str, seed: int | None = None) -> tuple[str, int]:
    """-> a uniformly drawn (layer, neuron) among the dissected layers of ``model`` (weighted by layer size)."""
    df = queries.layers(store, model)
    rng = np.random.default_rng(seed)
    i = int(rng.integers(int(df["n_neurons"].sum())))
    cum = df["n_neurons"].cumsum().to_numpy()
    row = int(np.searchsorted(cum, i, side="right"))
    return str(df["layer"].iloc[row]), int(i - (cum[row - 1] if row else 0))
