"""Adjectives per neuron per block (paper Figure 5) and the top-20 adjectives (Figure 3 / 9).

An adjective of a neuron is a distinct word of its C_open with pos ``schema.POS_ADJECTIVE`` (Module C
maps Penn tags with ``schema.PENN_POS``) that passed Module C's filters (``open_concepts`` only holds
accepted words). The denominator is the number of described neurons of the layer (``pos_counts`` rows),
so a neuron with no accepted adjective counts as 0.
"""

from __future__ import annotations

import pandas as pd

from and_engine.analyses.common import AnalysisInputError, require_columns
from and_engine.store.schema import POS_ADJECTIVE


def adjective_rows(open_concepts: pd.DataFrame) -> pd.DataFrame:
    """Distinct (layer, neuron, word) adjective rows of ``open_concepts`` (word lower-cased)."""
    require_columns(open_concepts, ("layer", "neuron", "word", "pos"), "open_concepts")
    adj = open_concepts[open_concepts["pos"] == POS_ADJECTIVE]
    adj = adj.assign(word=adj["word"].astype(str).str.strip().str.lower())
    return adj[["layer", "neuron", "word"]].drop_duplicates()


def adjective_stats(open_concepts: pd.DataFrame, pos_counts: pd.DataFrame, layers: pd.DataFrame,
                    model: str) -> pd.DataFrame:
    """-> ``adjective_stats`` rows: per layer, mean accepted adjectives per described neuron, with its block."""
    require_columns(pos_counts, ("layer", "neuron"), "pos_counts")
    require_columns(layers, ("layer", "block"), "layers")
    described = pos_counts[["layer", "neuron"]].drop_duplicates()
    unknown = sorted(set(described["layer"]) - set(layers["layer"]))
    if unknown:
        raise AnalysisInputError(f"{model}: pos_counts layers {unknown[:3]} are not in the layers table")
    per_neuron = adjective_rows(open_concepts).groupby(["layer", "neuron"]).size().rename("n_adj").reset_index()
    merged = described.merge(per_neuron, on=["layer", "neuron"], how="left").fillna({"n_adj": 0})
    stats = merged.groupby("layer").agg(mean_adjectives=("n_adj", "mean"), n_neurons=("neuron", "size")).reset_index()
    stats = stats.merge(layers[["layer", "block"]].drop_duplicates("layer"), on="layer")
    stats.insert(0, "model", model)
    stats["mean_adjectives"] = stats["mean_adjectives"].astype(float)
    cols = ["model", "layer", "block", "mean_adjectives", "n_neurons"]
    return stats[cols].sort_values(["block", "layer"], ignore_index=True)


def top_adjectives(open_concepts: pd.DataFrame, model: str, top_n: int = 20) -> pd.DataFrame:
    """-> ``top_adjectives`` rows: the ``top_n`` adjectives held by the most neurons (ties by word), rank 1..n."""
    if top_n < 1:
        raise AnalysisInputError(f"top_n must be >= 1, got {top_n}")
    counts = adjective_rows(open_concepts).groupby("word").size().rename("n_neurons").reset_index()
    counts = counts.sort_values(["n_neurons", "word"], ascending=[False, True]).head(top_n).reset_index(drop=True)
    return pd.DataFrame({
        "model": model, "adjective": counts["word"], "n_neurons": counts["n_neurons"].astype(int),
        "rank": range(1, len(counts) + 1),
    })
