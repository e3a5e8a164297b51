"""Last-layer dissection accuracy (paper section 4.1, Table 2 / Table 7).

Output neuron ``i`` of a classifier is class ``class_names[i]``: its true concept. For every
(method, similarity) stored in ``closed_concepts`` for that layer: top-1 = the rank-1 concept is the
class, top-5 = the class is among the (up to) 5 best, concept cosine = sentence-encoder cosine between
the rank-1 concept and the class name. Only applies when every class name is in the concept set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from and_engine.analyses.common import AnalysisInputError, require_columns
from and_engine.text.concepts import normalise_name

COLUMNS = ["model", "method", "similarity", "top1", "top5", "concept_cosine", "n_neurons"]


def missing_classes(class_names: Sequence[str], concept_set: Sequence[str]) -> list[str]:
    """Class names (normalised) absent from ``concept_set``; empty = last-layer accuracy applies."""
    concepts = {normalise_name(c) for c in concept_set}
    return [c for c in class_names if normalise_name(c) not in concepts]


def lastlayer_accuracy(
    closed_concepts: pd.DataFrame, class_names: Sequence[str], concept_set: Sequence[str], encoder,
    model: str, top_k: int = 5,
) -> pd.DataFrame:
    """``closed_concepts`` rows of the classifier layer -> ``lastlayer_accuracy`` rows (accuracies in %).

    ``encoder.encode(texts) -> (n, d)`` L2-normalised (the sentence encoder). An output neuron with no
    concept for a (method, similarity) — ICL when the LLM gave no usable answer — counts as a miss with
    cosine 0 (``n_neurons`` is always the number of classes).
    """
    require_columns(closed_concepts, ("neuron", "method", "similarity", "rank", "concept"), "closed_concepts")
    missing = missing_classes(class_names, concept_set)
    if missing:
        raise AnalysisInputError(f"{model}: class names {missing[:5]} are not in the concept set")
    n = len(class_names)
    if n == 0 or closed_concepts.empty:
        raise AnalysisInputError(f"{model}: no classes or no closed-set concepts for the classifier layer")
    bad = closed_concepts[(closed_concepts["neuron"] < 0) | (closed_concepts["neuron"] >= n)]
    if len(bad):
        raise AnalysisInputError(f"{model}: closed_concepts neuron {int(bad['neuron'].iloc[0])} "
                                 f"is not one of {n} classes")
    truth = [normalise_name(c) for c in class_names]
    names = sorted({*truth, *(normalise_name(c) for c in closed_concepts["concept"].unique())})
    emb = np.asarray(encoder.encode(names), dtype=np.float64)
    pos = {name: i for i, name in enumerate(names)}
    rows = []
    for (method, sim), grp in closed_concepts.groupby(["method", "similarity"], sort=True):
        ranked = grp.sort_values(["neuron", "rank"])
        lists = ranked.groupby("neuron")["concept"].apply(lambda s: [normalise_name(c) for c in s][:top_k])
        pred = {int(i): v for i, v in lists.items()}  # a neuron without a concept (ICL: no usable answer) is a miss
        top1 = [i in pred and pred[i][0] == truth[i] for i in range(n)]
        top5 = [i in pred and truth[i] in pred[i] for i in range(n)]
        cos = [float(emb[pos[pred[i][0]]] @ emb[pos[truth[i]]]) if i in pred else 0.0 for i in range(n)]
        rows.append((model, method, sim, 100.0 * np.mean(top1), 100.0 * np.mean(top5), float(np.mean(cos)), n))
    return pd.DataFrame(rows, columns=COLUMNS)


def best_similarity(lastlayer: pd.DataFrame, method: str) -> str | None:
    """The similarity function with the best (top-1, top-5, cosine) for ``method``; None if not measured."""
    sub = lastlayer[lastlayer["method"].astype(str).str.upper() == method.upper()]
    if sub.empty:
        return None
    best = sub.sort_values(["top1", "top5", "concept_cosine", "similarity"], ascending=[False, False, False, True])
    return str(best["similarity"].iloc[0])
