"""Query layer for related neurons and for comparing two models (the ``related_neurons`` stage's tables).

* ``explanations``: the short explanation of many neurons at once (S_h^c and the DB rank-1 concept);
* ``related``: one neuron's most correlated neurons per relation, with their explanations;
* ``compared_models`` / ``partner_counts`` / ``matched_pairs``: the compare page's layer-pair matching;
* ``closed_concept_distribution``: how many neurons of a model have each rank-1 closed-set concept.

Every read is parameterised and indexed by (model, layer, neuron) or aggregated in DuckDB.
"""

from __future__ import annotations

import pandas as pd

from and_engine.explorer.humaneval import SIMILARITY_PREFERENCE
from and_engine.explorer.queries import has_table
from and_engine.store.results import ResultsStore
from and_engine.store.schema import FIRST_RANK, RELATIONS, SOURCE_CALIBRATED

RELATION_TITLES = dict(zip(RELATIONS, ("same layer", "other layers of the model", "other models")))
KEY = ["model", "layer", "neuron"]
_PREFERRED = {s: i for i, s in enumerate(SIMILARITY_PREFERENCE)}


def has_related(store: ResultsStore) -> bool:
    """Whether the database holds the ``related_neurons`` step (a build before that stage does not)."""
    return bool(store.count("steps", stage="related_neurons"))


def explanations(store: ResultsStore, keys: pd.DataFrame) -> pd.DataFrame:
    """``keys`` rows (model, layer, neuron) -> the same rows + ``calibrated_summary`` (S_h^c, "" if none),
    ``top_concept`` (DB's rank-1 closed-set concept of the preferred similarity, ``humaneval``'s order) and
    ``summary_auc`` (S_h^c's embedding AUC on clips it was not written from, ``docs/scores.md``; NaN if unscored)."""
    out = keys[KEY].copy()
    index = pd.MultiIndex.from_frame(out.astype({"neuron": int}))

    def per_key(found: pd.DataFrame, column: str) -> pd.Series:  # found[column] on out's rows (NaN where absent)
        return pd.Series(found.astype({"neuron": int}).set_index(KEY)[column].reindex(index).to_numpy(), out.index)

    summ = store.read_neurons("calibrated_summaries", ["calibrated_summary"], out)
    closed = store.read_neurons("closed_concepts", ["similarity", "concept"], out, method="DB", rank=FIRST_RANK)
    closed = closed.assign(_o=closed["similarity"].map(_PREFERRED).fillna(99)).sort_values(["_o", "similarity"])
    out["calibrated_summary"] = per_key(summ, "calibrated_summary").fillna("").astype(str)
    out["top_concept"] = per_key(closed.drop_duplicates(KEY), "concept").fillna("").astype(str)
    out["summary_auc"] = float("nan")
    if has_table(store, "explanation_scores"):
        auc = store.read_neurons("explanation_scores", ["auc"], out, source=SOURCE_CALIBRATED, scorer="embedding")
        out["summary_auc"] = per_key(auc, "auc").astype(float)
    return out


def related(store: ResultsStore, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """-> the neuron's related neurons: relation, rank, other_model, other_layer, other_neuron, correlation and
    the other neuron's calibrated_summary and top_concept; by relation (``RELATIONS`` order), then rank."""
    df = store.read("related_neurons", ["relation", "rank", "other_model", "other_layer", "other_neuron",
                                        "correlation"], model=model, layer=layer, neuron=int(neuron),
                    order_by=["relation", "rank"])
    if df.empty:
        return df.assign(calibrated_summary=[], top_concept=[], summary_auc=[])
    keys = df.rename(columns={"other_model": "model", "other_layer": "layer", "other_neuron": "neuron"})
    expl = explanations(store, keys)
    for col in ("calibrated_summary", "top_concept", "summary_auc"):
        df[col] = expl[col]
    order = {r: i for i, r in enumerate(RELATIONS)}
    return df.sort_values(["relation", "rank"], key=lambda s: s.map(order) if s.name == "relation" else s,
                          ignore_index=True)


def compared_models(store: ResultsStore) -> list[str]:
    """-> the models that have partners in another model (dissected on the same probing set, same build)."""
    if not has_related(store):
        return []
    return store.query_df('SELECT DISTINCT model FROM "neuron_partners" ORDER BY model')["model"].tolist()


def partner_counts(store: ResultsStore, model_a: str, model_b: str, threshold: float) -> pd.DataFrame:
    """-> per (layer of A, layer of B) in network order: n_neurons of A (with a partner), n_matched (best partner
    in that layer of B correlates >= ``threshold``), share = n_matched / n_neurons, mean_best (mean correlation
    of the best partners)."""
    return store.query_df(
        "SELECT p.layer, p.other_layer, count(*) AS n_neurons, count(*) FILTER (WHERE p.correlation >= ?) "
        "AS n_matched, count(*) FILTER (WHERE p.correlation >= ?) / count(*) AS share, avg(p.correlation) AS "
        'mean_best FROM "neuron_partners" p JOIN "layers" la ON la.model = p.model AND la.layer = p.layer '
        'JOIN "layers" lb ON lb.model = p.other_model AND lb.layer = p.other_layer WHERE p.model = ? AND '
        "p.other_model = ? GROUP BY p.layer, p.other_layer, la.layer_index, lb.layer_index "
        "ORDER BY la.layer_index, lb.layer_index", [float(threshold), float(threshold), model_a, model_b])


def partner_total(store: ResultsStore, model_a: str, model_b: str, threshold: float) -> tuple[int, int]:
    """-> (n_matched, n_neurons): of model A's neurons with partner rows, how many have a partner in some layer of
    model B that correlates >= ``threshold`` (each neuron counted once, however many layers of B match it)."""
    row = store.query_df(
        "SELECT count(*) FILTER (WHERE best >= ?) AS n_matched, count(*) AS n_neurons FROM (SELECT layer, neuron, "
        'max(correlation) AS best FROM "neuron_partners" WHERE model = ? AND other_model = ? GROUP BY layer, neuron)',
        [float(threshold), model_a, model_b]).iloc[0]
    return int(row["n_matched"]), int(row["n_neurons"])


def matched_pairs(store: ResultsStore, model_a: str, layer_a: str, model_b: str, layer_b: str, threshold: float,
                  limit: int = 50) -> pd.DataFrame:
    """-> the neurons of A's ``layer_a`` whose best partner in B's ``layer_b`` correlates >= ``threshold``, best
    first (at most ``limit``): neuron, other_neuron, correlation, and both neurons' explanations (``_a`` / ``_b``)."""
    df = store.query_df(
        'SELECT neuron, other_neuron, correlation FROM "neuron_partners" WHERE model = ? AND layer = ? AND '
        "other_model = ? AND other_layer = ? AND correlation >= ? ORDER BY correlation DESC, neuron LIMIT ?",
        [model_a, layer_a, model_b, layer_b, float(threshold), int(limit)])
    a = explanations(store, df.assign(model=model_a, layer=layer_a))
    b = explanations(store, df.assign(model=model_b, layer=layer_b, neuron=df["other_neuron"]))
    for side, e in (("a", a), ("b", b)):
        for col in ("calibrated_summary", "top_concept", "summary_auc"):
            df[f"{col}_{side}"] = e[col]
    return df


def closed_concept_distribution(store: ResultsStore, model: str, method: str, similarity: str) -> pd.DataFrame:
    """-> concept, n_neurons, share: how many of the model's neurons have each rank-1 closed-set concept of
    ``method`` / ``similarity`` (every dissected layer), most frequent first."""
    return store.query_df(
        'SELECT concept, count(*) AS n_neurons, count(*) / sum(count(*)) OVER () AS share FROM "closed_concepts" '
        "WHERE model = ? AND method = ? AND similarity = ? AND rank = ? GROUP BY concept "
        "ORDER BY n_neurons DESC, concept", [model, method, similarity, FIRST_RANK])
