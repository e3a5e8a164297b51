"""Acoustic feature importance (paper section 4.4, Figure 4): prune r % of neurons by a criterion.

Pool = the described neurons (rows of ``pos_counts``) of the candidate layers; r % is of that pool.
Criteria: ``nouns`` / ``adjectives`` / ``verbs`` / ``prepositions`` / ``summary_length`` (most first),
``basic_adjectives`` vs ``high_level_adjectives`` (all adjectives minus the basic ones), ``adjective:<a>``
(neurons whose C_open holds basic adjective a; a seeded random r % of them when there are more, all of
them when fewer) and ``random``. Ties are broken randomly per seed. Accuracy (%) is on the held-out
clips; criterion ``none`` at 0 % is the unpruned model's accuracy (the reference line).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from and_engine.analyses.common import AnalysisInputError, require_columns, to_selection

COUNT_CRITERIA = {
    "nouns": "n_nouns", "adjectives": "n_adjectives", "verbs": "n_verbs",
    "prepositions": "n_prepositions", "summary_length": "summary_words", "basic_adjectives": "n_basic_adjectives",
}
COLUMNS = ["model", "criterion", "percent", "seed", "accuracy", "n_pruned"]


def criteria(basic_adjectives: Sequence[str]) -> list[str]:
    """Every criterion name of Figure 4 for these basic adjectives."""
    return [*COUNT_CRITERIA, "high_level_adjectives", *(f"adjective:{a}" for a in basic_adjectives), "random"]


def _scores(criterion: str, pool: pd.DataFrame, open_concepts: pd.DataFrame) -> np.ndarray:
    """Per-pool-neuron score (higher = pruned first); for ``adjective:`` 1 = eligible, 0 = not."""
    if criterion in COUNT_CRITERIA:
        return pool[COUNT_CRITERIA[criterion]].to_numpy(np.float64)
    if criterion == "high_level_adjectives":
        high_level = pool["n_adjectives"].to_numpy(np.float64) - pool["n_basic_adjectives"].to_numpy(np.float64)
        return np.clip(high_level, 0, None)
    if criterion == "random":
        return np.zeros(len(pool))
    if criterion.startswith("adjective:"):
        adj = criterion.split(":", 1)[1].strip().lower()
        has = open_concepts[open_concepts["word"].astype(str).str.lower() == adj][["layer", "neuron"]].drop_duplicates()
        key = pd.MultiIndex.from_frame(pool[["layer", "neuron"]])
        return key.isin(pd.MultiIndex.from_frame(has)).astype(np.float64) if len(has) else np.zeros(len(pool))
    raise AnalysisInputError(f"unknown feature-importance criterion {criterion!r}")


def rank_pool(pos_counts: pd.DataFrame, layer_sizes: dict[str, int]) -> pd.DataFrame:
    """The described neurons of the candidate layers (pos_counts rows), sorted by (layer, neuron)."""
    need = ("layer", "neuron", "n_nouns", "n_adjectives", "n_verbs", "n_prepositions", "summary_words",
            "n_basic_adjectives")
    require_columns(pos_counts, need, "pos_counts")
    pool = pos_counts[pos_counts["layer"].isin(list(layer_sizes))]
    if pool.duplicated(["layer", "neuron"]).any():
        raise AnalysisInputError("pos_counts has several rows for one (layer, neuron)")
    if pool.empty:
        raise AnalysisInputError(f"pos_counts has no neuron in the candidate layers {sorted(layer_sizes)}")
    return pool.sort_values(["layer", "neuron"]).reset_index(drop=True)


def select_by_criterion(
    criterion: str, percent: float, seed: int, pool: pd.DataFrame, open_concepts: pd.DataFrame,
) -> dict[str, list[int]]:
    """r % (rounded) of ``pool`` by ``criterion`` -> {layer: neurons}; ties / eligible sets drawn with ``seed``."""
    if not 0 < percent <= 100:
        raise AnalysisInputError(f"prune percent must be in (0, 100], got {percent}")
    require_columns(open_concepts, ("layer", "neuron", "word"), "open_concepts")
    n = int(round(len(pool) * percent / 100.0))
    score = _scores(criterion, pool, open_concepts)
    tiebreak = np.random.default_rng(seed).random(len(pool))
    order = np.lexsort((tiebreak, -score))  # highest score first, random among equal scores
    if criterion.startswith("adjective:"):
        order = order[score[order] > 0]  # only neurons with the adjective, random among them
    return to_selection(pool.iloc[order[:n]])


def importance_selections(
    pool: pd.DataFrame, open_concepts: pd.DataFrame, model_name: str, percents: Sequence[float],
    seeds: Sequence[int], basic_adjectives: Sequence[str],
) -> tuple[list[tuple], dict[tuple, dict[str, list[int]]]]:
    """Figure 4's selections -> (rows (model, criterion, percent, seed, key), {key: distinct selection})."""
    rows, distinct = [], {}
    for crit in criteria(basic_adjectives):
        for pct in percents:
            for seed in seeds:
                sel = select_by_criterion(crit, float(pct), int(seed), pool, open_concepts)
                key = tuple((k, tuple(v)) for k, v in sorted(sel.items()))
                distinct.setdefault(key, sel)
                rows.append((model_name, crit, float(pct), int(seed), key))
    return rows, distinct


def feature_importance(
    model, waveforms: np.ndarray, labels: np.ndarray, pos_counts: pd.DataFrame, open_concepts: pd.DataFrame,
    layer_sizes: dict[str, int], model_name: str, percents: Sequence[float], seeds: Sequence[int],
    basic_adjectives: Sequence[str], batch_size: int = 16, progress=None, engine=None,
) -> pd.DataFrame:
    """Held-out accuracy after each (criterion, percent, seed) pruning -> ``feature_importance`` rows.

    ``waveforms`` (n, samples) (unused when ``engine`` is given), ``labels`` (n,) class indices. Identical
    selections (e.g. a criterion without ties under another seed) are evaluated once; all distinct ones in
    one call of the pruning engine (``engine``: a ``PruningEngine`` on these clips, else one is built with
    ``batch_size``). ``progress``: optional callable(done, total) (``PruningEngine.logits``).
    """
    from and_engine.analyses.pruning import check_labels

    rows, distinct = importance_selections(rank_pool(pos_counts, layer_sizes), open_concepts, model_name,
                                           percents, seeds, basic_adjectives)
    if engine is None:
        from and_engine.analyses.pruning_engine import PruningEngine  # lazy: torch only when a model runs

        engine = PruningEngine(model, waveforms, batch_size)
    labels = check_labels(labels, engine.n_clips, engine.baseline.shape[1])
    logits = engine.logits(list(distinct.values()), progress)
    accuracy = {key: float(np.mean(lg.argmax(1) == labels)) for key, lg in zip(distinct, logits, strict=True)}
    base_acc = float(np.mean(engine.baseline.argmax(1) == labels))
    out = [(model_name, "none", 0.0, int(seed), 100.0 * base_acc, 0) for seed in seeds]  # unpruned reference
    out += [(m, crit, pct, seed, 100.0 * accuracy[key], sum(len(v) for _, v in key))
            for m, crit, pct, seed, key in rows]
    return pd.DataFrame(out, columns=COLUMNS)
