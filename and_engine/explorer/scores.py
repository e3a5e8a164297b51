"""Query layer for scores and ground truth (docs/scores.md): one neuron's scored explanations, the per-layer
distributions and rates aggregated at build time, neurons ranked by a score, the "which method explains best"
table (the report prints the same one), and what each score means (the app's tooltips).

Neuron reads use the (model, layer, neuron) indexes; database-wide reads touch only the small aggregate
tables (``score_summary``, ``truth_rates``), never a paper-scale table per page view. A probing set with one
label (an unlabelled folder) has no ground truth: the functions then leave the label columns out
(``availability.no_labels`` says why).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from and_engine.explorer.availability import no_labels
from and_engine.store.results import ResultsStore
from and_engine.store.schema import EMBEDDING_SCORERS, EXPLANATION_SOURCES, LLM_SCORERS, SCORE_METRICS

CHANCE = {"auc": 0.5, "pearson_r": 0.0, "balanced_accuracy": 0.5}
METRIC_NAMES = {"auc": "AUC", "pearson_r": "r", "balanced_accuracy": "balanced accuracy"}
SETS = ("scored on other clips than the explanation was written from: about 20 activating clips from the "
        "neuron's top 20 % (its top-K excluded) and 20 non-activating ones from its bottom half (bottom-K excluded)")
HELP = {
    ("embedding", "auc"): "Embedding AUC: does the text similarity (MiniLM) between this explanation and each clip's "
                          f"caption rank the activating clips above the others? 1 = always, 0.5 = chance, below 0.5 = "
                          f"it fits the non-activating clips better; {SETS}.",
    ("embedding", "pearson_r"): "Embedding r: Pearson correlation of that text similarity with the neuron's real "
                                f"activation on the scoring clips; 0 = chance, 1 = it tracks the activation; {SETS}.",
    ("audio-text", "auc"): "Audio-text AUC: the same test against the clip audio itself (the audio-text model, "
                           "independent of the captions); 1 = always, 0.5 = chance.",
    ("audio-text", "pearson_r"): "Audio-text r: Pearson correlation of the audio-text similarity with the real "
                                 "activation; 0 = chance.",
    ("detection", "balanced_accuracy"): "Detection (Delphi): an LLM reads each scoring clip's caption and says "
                                        "whether the explanation fits; balanced accuracy of those calls, 0.5 = chance.",
    ("detection", "auc"): "Detection AUC: from yes/no answers it equals the balanced accuracy; 0.5 = chance.",
    ("simulation", "pearson_r"): "Simulation (OpenAI): an LLM predicts the activation 0-10 of each clip from its "
                                 "caption and the explanation; Pearson r with the real activations, 0 = chance.",
    ("simulation", "auc"): "Simulation AUC: do the predicted activations rank activating clips first? 0.5 = chance.",
}
LINE_HELP = ("Scores on clips the explanation was not written from. AUC: does the explanation rank the neuron's "
             "activating clips above non-activating ones (1 = always, 0.5 = chance). r: Pearson correlation with the "
             "real activation (0 = chance). embedding = against each clip's caption, audio-text = against the "
             "clip audio. Compare with the 'shuffled' row: another neuron's S_h^c, the chance control.")
NAMES_HELP = ("Whether the explanation names the majority label of the neuron's top-K clips (label words, their "
              "stems and the synonym table of the build); only where the probing set has labels.")


def _order(df: pd.DataFrame, col: str = "source") -> pd.DataFrame:
    rank = {s: i for i, s in enumerate(EXPLANATION_SOURCES)}
    return df.assign(_o=df[col].map(lambda s: rank.get(s, 99))).sort_values(["_o", col]).drop(columns="_o")


def neuron_scores(store: ResultsStore, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """-> one row per explanation of the neuron: source, explanation, names_majority (left out without labels), and
    per scorer and metric a column ``<scorer> <metric>`` (e.g. ``embedding auc``); empty when the build computed no
    scores."""
    expl = store.query_df(
        'SELECT e.source, e.explanation, t.names_majority FROM "explanations" e LEFT JOIN "explanation_truth" t '
        "ON t.model = e.model AND t.layer = e.layer AND t.neuron = e.neuron AND t.source = e.source "
        "WHERE e.model = ? AND e.layer = ? AND e.neuron = ?", [model, layer, int(neuron)])
    scores = store.read("explanation_scores", ["source", "scorer", *SCORE_METRICS, "n_clips", "n_malformed"],
                        model=model, layer=layer, neuron=int(neuron))
    if expl.empty:
        return expl
    if no_labels(store):
        expl = expl.drop(columns="names_majority")
    wide = scores.melt(id_vars=["source", "scorer"], value_vars=list(SCORE_METRICS)).dropna(subset=["value"])
    wide = wide.assign(column=wide["scorer"] + " " + wide["variable"]).pivot_table(
        index="source", columns="column", values="value", aggfunc="first")
    return _order(expl.merge(wide, left_on="source", right_index=True, how="left")).reset_index(drop=True)


def neuron_truth(store: ResultsStore, model: str, layer: str, neuron: int) -> dict | None:
    """-> {majority_label, purity, n_naming_captions} of the neuron's top-K clips, or None without labels."""
    if no_labels(store):
        return None
    df = store.read("neuron_truth", ["majority_label", "purity", "n_naming_captions"], model=model, layer=layer,
                    neuron=int(neuron))
    return df.iloc[0].to_dict() if len(df) else None


def available(store: ResultsStore) -> pd.DataFrame:
    """-> the (scorer, metric) pairs the database has distributions of, with their sources (small table)."""
    return store.query_df('SELECT DISTINCT scorer, metric, source FROM "score_summary" ORDER BY scorer, metric')


def scorer_metrics(store: ResultsStore) -> dict[str, list[str]]:
    """-> {scorer: its metrics} the database has distributions of, in the schema's order (embedding, AUC first)."""
    avail = available(store)
    order = (*EMBEDDING_SCORERS, *LLM_SCORERS)
    return {sc: [m for m in SCORE_METRICS if m in set(avail.loc[avail["scorer"] == sc, "metric"])]
            for sc in sorted(set(avail["scorer"]), key=lambda x: order.index(x) if x in order else 99)}


def layer_distributions(store: ResultsStore, model: str, scorer: str, metric: str) -> pd.DataFrame:
    """-> ``score_summary`` rows of one model, scorer and metric, in network order (layer_index, then source)."""
    df = store.query_df(
        'SELECT s.layer, s.source, s.n_neurons, s.mean, s.q10, s.q25, s.median, s.q75, s.q90, l.layer_index, l.block '
        'FROM "score_summary" s JOIN "layers" l ON l.model = s.model AND l.layer = s.layer '
        "WHERE s.model = ? AND s.scorer = ? AND s.metric = ? ORDER BY l.layer_index", [model, scorer, metric])
    return _order(df).sort_values(["layer_index"], kind="stable").reset_index(drop=True)


def truth_rates(store: ResultsStore, model: str | None = None) -> pd.DataFrame:
    """-> ``truth_rates`` rows (model, layer, measure, source, hits, total, rate) in network order."""
    where, params = ("WHERE r.model = ?", [model]) if model else ("", [])
    return store.query_df(
        'SELECT r.model, r.layer, r.measure, r.source, r.hits, r.total, r.rate FROM "truth_rates" r '
        'JOIN "layers" l ON l.model = r.model AND l.layer = r.layer '
        f"{where} ORDER BY r.model, l.layer_index, r.measure, r.source", params)


def caption_rate(store: ResultsStore) -> tuple[int, int]:
    """-> (captions that name their clip's label, captions) over the probing set."""
    df = store.query_df('SELECT count(*) FILTER (WHERE names_label) AS hits, count(*) AS total FROM "caption_truth"')
    return int(df["hits"].iloc[0] or 0), int(df["total"].iloc[0] or 0)


def method_table(store: ResultsStore, model: str) -> pd.DataFrame:
    """"Which method explains best" for one model -> per source: the mean over its neurons of each stored scorer's
    metrics (weighted by each layer's neuron count), the neurons scored, and the share naming the top-K majority
    label (overall and where a majority of the top-K captions do; left out without labels); sorted by the first AUC
    column."""
    summ = store.query_df('SELECT source, scorer, metric, sum(n_neurons * mean) / sum(n_neurons) AS mean, '
                          'sum(n_neurons) AS n FROM "score_summary" WHERE model = ? GROUP BY ALL', [model])
    if summ.empty:
        return pd.DataFrame()
    summ = summ[summ["metric"].isin(["auc", "pearson_r", "balanced_accuracy"])]
    wide = summ.assign(column=summ["scorer"] + " " + summ["metric"].map(METRIC_NAMES)).pivot_table(
        index="source", columns="column", values="mean", aggfunc="first")
    wide["neurons"] = summ.groupby("source")["n"].max()
    rates = store.query_df('SELECT source, measure, sum(hits) AS hits, sum(total) AS total FROM "truth_rates" '
                           "WHERE model = ? AND source <> '' GROUP BY ALL", [model])
    truth = (("names_majority", "names label %"),
             ("names_majority_where_captions_do", "names label where captions do %"))
    for measure, name in () if no_labels(store) else truth:
        r = rates[rates["measure"] == measure].set_index("source")
        wide[name] = 100 * r["hits"] / r["total"].where(r["total"] > 0)
    order = [f"{sc} {METRIC_NAMES[m]}" for sc in (*EMBEDDING_SCORERS, *LLM_SCORERS) for m in SCORE_METRICS]
    wide = wide[[c for c in order if c in wide] + [c for c in wide if c not in order]]
    return wide.sort_values(wide.columns[0], ascending=False).reset_index()


def neurons_by_score(store: ResultsStore, model: str, layer: str, source: str, scorer: str, metric: str,
                     best_first: bool = True, limit: int = 25) -> pd.DataFrame:
    """-> the ``limit`` neurons of one layer with the highest (or lowest) ``metric`` of ``scorer`` for ``source``,
    with that explanation's text (the neuron list sorted by score)."""
    if metric not in SCORE_METRICS:
        raise ValueError(f"metric must be one of {SCORE_METRICS}, got {metric!r}")
    order = "DESC" if best_first else "ASC"
    return store.query_df(
        f'SELECT s.neuron, s."{metric}" AS score, e.explanation FROM "explanation_scores" s JOIN "explanations" e '
        "USING (model, layer, neuron, source) WHERE s.model = ? AND s.layer = ? AND s.source = ? AND s.scorer = ? "
        f'AND s."{metric}" IS NOT NULL ORDER BY s."{metric}" {order}, s.neuron LIMIT ?',
        [model, layer, source, scorer, int(limit)])


def with_scores(store: ResultsStore, hits: pd.DataFrame, source: str, scorer: str, metric: str,
                column: str = "explanation score") -> pd.DataFrame:
    """Search hits (model, layer, neuron, ...) -> the same rows with ``column`` = ``metric`` of ``scorer`` for
    ``source`` (NaN where there is none), read for those neurons only, best first (unscored last)."""
    if hits.empty or metric not in SCORE_METRICS:
        return hits.assign(**{column: np.nan})
    keys = hits[["model", "layer", "neuron"]].drop_duplicates()
    cond = " OR ".join("(model = ? AND layer = ? AND neuron = ?)" for _ in range(len(keys)))
    params = [v for r in keys.itertuples(index=False) for v in (r.model, r.layer, int(r.neuron))]
    got = store.query_df(f'SELECT model, layer, neuron, "{metric}" AS value FROM "explanation_scores" '
                         f"WHERE source = ? AND scorer = ? AND ({cond})", [source, scorer, *params])
    out = hits.merge(got.rename(columns={"value": column}), on=["model", "layer", "neuron"], how="left")
    return out.sort_values(column, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def scores_for(store: ResultsStore, keys: pd.DataFrame) -> pd.DataFrame:
    """(model, layer, neuron) rows -> their ``explanation_scores`` rows (for the human evaluation's Table 3)."""
    keys = keys[["model", "layer", "neuron"]].drop_duplicates()
    if keys.empty:
        return store.read("explanation_scores", ["model", "layer", "neuron", "source", "scorer", *SCORE_METRICS],
                          model="")
    cond = " OR ".join("(model = ? AND layer = ? AND neuron = ?)" for _ in range(len(keys)))
    params = [v for r in keys.itertuples(index=False) for v in (r.model, r.layer, int(r.neuron))]
    return store.query_df(f'SELECT model, layer, neuron, source, scorer, {", ".join(SCORE_METRICS)} '
                          f'FROM "explanation_scores" WHERE {cond}', params)


def score_line(scored: pd.DataFrame, source: str) -> str:
    """``neuron_scores`` rows + a source -> 'embedding AUC 0.71 · r 0.32 · audio-text AUC 0.64 · r 0.20' ('' if
    the source has no scores)."""
    row = scored[scored["source"] == source]
    if row.empty:
        return ""
    parts = []
    for scorer in ("embedding", "audio-text", "detection", "simulation"):
        vals = [(m, row[f"{scorer} {m}"].iloc[0]) for m in SCORE_METRICS if f"{scorer} {m}" in row]
        vals = [(m, v) for m, v in vals if pd.notna(v)]
        if vals:
            parts.append(f"{scorer} " + " · ".join(f"{METRIC_NAMES[m]} {v:.2f}" for m, v in vals))
    return " | ".join(parts)


def help_text(columns) -> dict[str, str]:
    """``neuron_scores`` / ``method_table`` column names -> their tooltips (what the score means, what chance is)."""
    out = {}
    for col in columns:
        scorer, _, metric = str(col).partition(" ")
        metric = {v: k for k, v in METRIC_NAMES.items()}.get(metric, metric)
        if (scorer, metric) in HELP:
            out[col] = HELP[(scorer, metric)]
    out.update({c: NAMES_HELP for c in columns if str(c).startswith("names")})
    return out


def sort_options(store: ResultsStore) -> dict[str, tuple[str, str, str]]:
    """-> {label: (source, scorer, metric)} of the scores a neuron list can be sorted by (S_h^c's first)."""
    avail = available(store)
    avail = avail[avail["metric"] != "balanced_accuracy"]
    out = {}
    for source in ("S_h^c", "S_h", *[s for s in EXPLANATION_SOURCES if s not in ("S_h^c", "S_h")]):
        for r in avail[avail["source"] == source].itertuples():
            out[f"{source} {r.scorer} {METRIC_NAMES[r.metric]}"] = (source, r.scorer, r.metric)
    return out


def truth_table(store: ResultsStore, model: str, measure: str) -> pd.DataFrame:
    """-> one row per layer (network order), one column per explanation source: the % of ``measure``
    (``names_majority`` or ``names_majority_where_captions_do``), plus the neurons counted."""
    rates = truth_rates(store, model)
    r = rates[rates["measure"] == measure]
    if r.empty:
        return pd.DataFrame()
    layers = list(dict.fromkeys(r["layer"]))
    wide = r.assign(pct=100 * r["rate"]).pivot_table(index="layer", columns="source", values="pct", aggfunc="first")
    wide = wide[[s for s in EXPLANATION_SOURCES if s in wide.columns]]
    wide.insert(0, "neurons", r.groupby("layer")["total"].max())
    return wide.reindex(layers).reset_index()
