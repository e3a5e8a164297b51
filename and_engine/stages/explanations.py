"""The explanations of a layer's neurons, as the scorers and the ground truth read them -> ``explanations`` rows.

Sources (``schema.EXPLANATION_SOURCES``): ``S_h`` (usable top-K summaries), ``S_h^c`` (non-empty calibrated
summaries), each closed-set method's rank-1 concept (``DB/<similarity>``, ``TAB/<similarity>``, ``ICL``; the
concept's words), ``adjectives`` (the neuron's C_open adjectives, most frequent first, comma-separated) and
``shuffled``: the S_h^c of another neuron of the same layer with a different text (a seeded draw), the chance
control every score is read against. A neuron without a source's explanation has no row for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from and_engine.store.schema import (
    FIRST_RANK,
    POS_ADJECTIVE,
    SOURCE_ADJECTIVES,
    SOURCE_CALIBRATED,
    SOURCE_SHUFFLED,
    SOURCE_SUMMARY,
    closed_source,
)
from and_engine.text.words import concept_text

COLUMNS = ["model", "layer", "neuron", "source", "explanation"]
USABLE_SUMMARY = ("ok", "truncated")  # summaries.status values whose text is an explanation
SHUFFLE_TRIES = 20  # redraws for neurons whose partner has the same text


def _text(neurons: pd.Series, texts: pd.Series, source: str) -> pd.DataFrame:
    df = pd.DataFrame({"neuron": neurons.astype(np.int32).to_numpy(), "source": source,
                       "explanation": texts.fillna("").astype(str).str.strip().to_numpy()})
    return df[df["explanation"] != ""]


def shuffled(calibrated: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """(neuron, explanation) S_h^c rows -> each neuron paired with another neuron's S_h^c whose text differs
    (a random derangement, then redraws for equal texts; a neuron left without one gets no row)."""
    k = len(calibrated)
    if k < 2:
        return calibrated.iloc[:0].assign(source=SOURCE_SHUFFLED)
    texts = calibrated["explanation"].to_numpy()
    perm = rng.permutation(k)
    partner = np.empty(k, dtype=np.int64)
    partner[perm] = np.roll(perm, -1)  # a cyclic shift of a random order: nobody keeps their own
    for _ in range(SHUFFLE_TRIES):
        same = np.nonzero(texts[partner] == texts)[0]
        if not len(same):
            break
        partner[same] = rng.integers(0, k, size=len(same))
    keep = texts[partner] != texts
    return pd.DataFrame({"neuron": calibrated["neuron"].to_numpy()[keep], "source": SOURCE_SHUFFLED,
                         "explanation": texts[partner][keep]})


def collect_explanations(summaries: pd.DataFrame, calibrated: pd.DataFrame, closed: pd.DataFrame,
                         opened: pd.DataFrame, *, model: str, layer: str,
                         rng: np.random.Generator) -> pd.DataFrame:
    """One layer's stored descriptions -> ``explanations`` rows (model, layer, neuron, source, explanation).

    summaries: top-side rows (neuron, summary, status); calibrated: (neuron, calibrated_summary); closed:
    ``closed_concepts`` rows (neuron, method, similarity, rank, concept); opened: (neuron, word, pos, count).
    """
    parts = []
    s = summaries[summaries["status"].isin(USABLE_SUMMARY)]
    parts.append(_text(s["neuron"], s["summary"], SOURCE_SUMMARY))
    cal = _text(calibrated["neuron"], calibrated["calibrated_summary"], SOURCE_CALIBRATED)
    parts.append(cal)
    first = closed[closed["rank"] == FIRST_RANK]
    for (method, sim), g in first.groupby(["method", "similarity"], sort=True):
        parts.append(_text(g["neuron"], g["concept"].map(concept_text), closed_source(method, sim)))
    adj = opened[opened["pos"] == POS_ADJECTIVE].sort_values(["neuron", "count", "word"],
                                                            ascending=[True, False, True])
    words = adj.groupby("neuron")["word"].agg(", ".join)
    parts.append(_text(words.index.to_series(), words, SOURCE_ADJECTIVES))
    parts.append(shuffled(cal.sort_values("neuron").reset_index(drop=True), rng))
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "layer", layer)
    out.insert(0, "model", model)
    return out.sort_values(["neuron", "source"], kind="stable").reset_index(drop=True)[COLUMNS]
