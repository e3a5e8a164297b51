"""Ground truth where the probing set has labels: do captions and explanations name the sound source?

* ``caption_truth``: per clip, whether its caption names its label (``text.labels.names_label``).
* ``neuron_truth``: per neuron, the majority label of its top-K clips (ties: the label of the highest-ranked
  clip), its share (purity) and how many top-K captions name it.
* ``explanation_truth``: per explanation (``explanations`` rows), whether it names the neuron's majority label.
* ``truth_rates`` per layer: ``captions_name_label`` (over the layer's (neuron, top-K clip) pairs),
  ``names_majority`` per source (over the neurons with that explanation) and
  ``names_majority_where_captions_do`` per source (over the neurons whose top-K are at least ``PURE_SHARE``
  one label and at least a majority of whose top-K captions name it: the issue's "≥ 4/5 and ≥ 3 captions").
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from and_engine.text.labels import LabelWords, label_terms, names_label

PURE_SHARE = 0.8  # 4 of 5 top-K clips of one label
RATE_COLUMNS = ["model", "layer", "measure", "source", "hits", "total", "rate"]


def captions_needed(k: int) -> int:
    """The top-K captions that must name the label before a summary is expected to: a majority (3 of 5)."""
    return k // 2 + 1


def caption_truth(clips: pd.DataFrame, captions: pd.DataFrame, table: LabelWords | None) -> pd.DataFrame:
    """clips (clip_id, label), captions (clip_id, caption) -> ``caption_truth`` rows (clip_id, label, names_label)."""
    df = clips[["clip_id", "label"]].merge(captions[["clip_id", "caption"]], on="clip_id", how="left")
    names = [names_label(c, label_terms(str(lab), table)) for lab, c in zip(df["label"], df["caption"])]
    return pd.DataFrame({"clip_id": df["clip_id"].astype(np.int32), "label": df["label"].astype(str),
                         "names_label": np.asarray(names, dtype=bool)})


def _majority(labels: list[str]) -> tuple[str, int]:
    counts = Counter(labels)
    best = max(counts.values())
    return next(lab for lab in labels if counts[lab] == best), best  # ties: the highest-ranked clip's label


def neuron_truth(extremes: pd.DataFrame, clips: pd.DataFrame, captions: pd.DataFrame, table: LabelWords | None,
                 *, model: str, layer: str) -> pd.DataFrame:
    """extremes (neuron, topk_clip_ids), clips (clip_id, label), captions (clip_id, caption) -> ``neuron_truth``."""
    label = dict(zip(clips["clip_id"].astype(int), clips["label"].astype(str)))
    caption = dict(zip(captions["clip_id"].astype(int), captions["caption"]))
    rows = []
    for neuron, ids in zip(extremes["neuron"], extremes["topk_clip_ids"]):
        ids = [int(i) for i in ids]
        major, count = _majority([label[i] for i in ids])
        terms = label_terms(major, table)
        naming = sum(names_label(caption.get(i), terms) for i in ids)
        rows.append((int(neuron), major, count / max(len(ids), 1), naming))
    out = pd.DataFrame(rows, columns=["neuron", "majority_label", "purity", "n_naming_captions"])
    out.insert(0, "layer", layer)
    out.insert(0, "model", model)
    return out.astype({"neuron": np.int32, "n_naming_captions": np.int32})


def explanation_truth(explanations: pd.DataFrame, truth: pd.DataFrame, table: LabelWords | None) -> pd.DataFrame:
    """``explanations`` rows + ``neuron_truth`` rows -> ``explanation_truth`` rows (names_majority per source)."""
    major = dict(zip(truth["neuron"].astype(int), truth["majority_label"]))
    e = explanations[explanations["neuron"].astype(int).isin(major)]
    names = [names_label(text, label_terms(major[int(n)], table)) for n, text in zip(e["neuron"], e["explanation"])]
    return e[["model", "layer", "neuron", "source"]].reset_index(drop=True).assign(
        names_majority=np.asarray(names, dtype=bool))


def truth_rates(truth: pd.DataFrame, named: pd.DataFrame, extremes: pd.DataFrame, captions_truth: pd.DataFrame,
                k: int, *, model: str, layer: str) -> pd.DataFrame:
    """``neuron_truth``, ``explanation_truth``, extremes (neuron, topk_clip_ids), ``caption_truth`` -> the
    layer's ``truth_rates`` rows (hits, total, rate = hits / total; NaN for an empty total)."""
    by_clip = dict(zip(captions_truth["clip_id"].astype(int), captions_truth["names_label"]))
    pairs = [bool(by_clip.get(int(i), False)) for ids in extremes["topk_clip_ids"] for i in ids]
    rows = [("captions_name_label", "", sum(pairs), len(pairs))]
    clear = set(truth.loc[(truth["purity"] >= PURE_SHARE - 1e-9)
                          & (truth["n_naming_captions"] >= captions_needed(k)), "neuron"].astype(int))
    for source, g in named.groupby("source", sort=True):
        rows.append(("names_majority", source, int(g["names_majority"].sum()), len(g)))
        c = g[g["neuron"].astype(int).isin(clear)]
        rows.append(("names_majority_where_captions_do", source, int(c["names_majority"].sum()), len(c)))
    out = pd.DataFrame(rows, columns=["measure", "source", "hits", "total"])
    out["rate"] = np.where(out["total"] > 0, out["hits"] / out["total"].clip(lower=1), np.nan)
    out.insert(0, "layer", layer)
    out.insert(0, "model", model)
    return out.astype({"hits": np.int32, "total": np.int32})[RATE_COLUMNS]
