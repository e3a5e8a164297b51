"""Concept-specific pruning (paper section 4.3, Table 4, Figure 10): select neurons, zero them, measure.

``select_neurons`` picks the neurons tied to a target concept by OCP (open-set concepts), DB or TAB
(closed-set top-N) or at random; ``evaluate_pruning`` runs a TargetModel before / after zeroing them (through
``pruning_engine.PruningEngine``, which evaluates many selections at once); ``pruning_result`` is the arithmetic;
``concept_deltas`` is ΔA / ΔR of one pruning; ``table4`` turns one method's per-concept results into the
Table 4 row and the Figure 10 rows. The app calls ``select_neurons`` (on rows found by the same matching
rules, ``matching_words`` / ``matching_concepts``), ``evaluate_pruning`` and ``concept_deltas`` live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from and_engine.analyses.common import (
    AnalysisInputError,
    check_neurons_in_layers,
    neuron_pool,
    require_columns,
    selection_size,
    to_selection,
)
from and_engine.store.schema import FIRST_RANK, PRUNING_METHODS
from and_engine.text.concepts import content_stems, normalise_name

METHODS = PRUNING_METHODS


def matching_words(concept: str, words: Iterable[str]) -> list[str]:
    """OCP's rule: the distinct open-set ``words`` sharing a content-word stem with ``concept`` (each stemmed once)."""
    target = content_stems(concept)
    return [w for w in dict.fromkeys(map(str, words)) if content_stems(w) & target]


def matching_concepts(concept: str, names: Iterable[str]) -> list[str]:
    """DB / TAB's rule: the distinct closed-set concept ``names`` equal to ``concept`` after ``normalise_name``."""
    target = normalise_name(concept)
    return [c for c in dict.fromkeys(map(str, names)) if normalise_name(c) == target]


def ocp_neurons(concept: str, open_concepts: pd.DataFrame, layer_sizes: dict[str, int]) -> pd.DataFrame:
    """(layer, neuron) rows whose C_open (its nouns and adjectives) holds a word matching ``concept``."""
    require_columns(open_concepts, ("layer", "neuron", "word"), "open_concepts")
    if not content_stems(concept):
        raise AnalysisInputError(f"concept {concept!r} has no content word to match")
    oc = check_neurons_in_layers(open_concepts, layer_sizes, "open_concepts")
    return oc.loc[oc["word"].isin(matching_words(concept, oc["word"].unique())), ["layer", "neuron"]].drop_duplicates()


def closed_neurons(
    method: str, concept: str, closed_concepts: pd.DataFrame, layer_sizes: dict[str, int],
    top_n: int, similarity: str | None,
) -> pd.DataFrame:
    """(layer, neuron) rows with ``concept`` among their top-``top_n`` closed-set concepts of ``method``
    (ranks start at ``schema.FIRST_RANK``, so top-N is ``rank < FIRST_RANK + N``)."""
    require_columns(closed_concepts, ("layer", "neuron", "method", "similarity", "rank", "concept"), "closed_concepts")
    cc = closed_concepts[closed_concepts["method"] == method]
    sims = sorted(cc["similarity"].astype(str).unique())
    if not sims:
        raise AnalysisInputError(f"closed_concepts holds no {method} rows")
    if similarity is None:
        if len(sims) > 1:
            raise AnalysisInputError(f"closed_concepts holds {method} with similarities {sims}: pass similarity=")
    elif similarity not in sims:
        raise AnalysisInputError(f"similarity {similarity!r} not in closed_concepts for {method}; has {sims}")
    else:
        cc = cc[cc["similarity"] == similarity]
    cc = cc[(cc["rank"] < FIRST_RANK + top_n) & cc["concept"].isin(matching_concepts(concept, cc["concept"].unique()))]
    return check_neurons_in_layers(cc, layer_sizes, "closed_concepts")[["layer", "neuron"]].drop_duplicates()


def select_neurons(
    method: str, concept: str, closed_concepts: pd.DataFrame, open_concepts: pd.DataFrame,
    layer_sizes: dict[str, int], top_n: int = 3, seed: int = 0, n_random: int | None = None,
    similarity: str | None = None,
) -> dict[str, list[int]]:
    """Neurons to prune for ``concept`` -> {layer: sorted neuron indices} over the candidate ``layer_sizes``.

    OCP: C_open holds a matching noun / adjective. DB / TAB: the concept is among the neuron's top
    ``top_n`` for ``similarity`` (required when several are stored). random: ``n_random`` neurons (default:
    OCP's count for the concept) drawn uniformly, seeded, from all neurons of the same layers.
    """
    if method not in METHODS:
        raise AnalysisInputError(f"unknown pruning method {method!r}; use one of {METHODS}")
    if top_n < 1:
        raise AnalysisInputError(f"top_n must be >= 1, got {top_n}")
    if method == "OCP":
        return to_selection(ocp_neurons(concept, open_concepts, layer_sizes))
    if method in ("DB", "TAB"):
        return to_selection(closed_neurons(method, concept, closed_concepts, layer_sizes, top_n, similarity))
    pool = neuron_pool(layer_sizes)
    n = len(ocp_neurons(concept, open_concepts, layer_sizes)) if n_random is None else int(n_random)
    if not 0 <= n <= len(pool):
        raise AnalysisInputError(f"n_random={n} outside 0..{len(pool)} (neurons in the candidate layers)")
    rows = np.random.default_rng(seed).choice(len(pool), size=n, replace=False)
    return to_selection(pool.iloc[np.sort(rows)])


@dataclass(frozen=True)
class PruningResult:
    """Before / after one pruning, on n clips of C classes."""

    logit_before: np.ndarray  # (n,) true-class logit of each clip, unpruned
    logit_after: np.ndarray  # (n,) the same with the neurons zeroed
    per_class_delta: np.ndarray  # (C,) mean (after - before) over each class's clips; NaN for a class with no clip
    accuracy_before: float
    accuracy_after: float
    n_pruned: int

    @property
    def delta(self) -> np.ndarray:
        """(n,) change of each clip's true-class logit."""
        return self.logit_after - self.logit_before


def check_labels(labels: np.ndarray, n_clips: int, n_classes: int) -> np.ndarray:
    """(n,) integer class indices in [0, n_classes) for ``n_clips`` clips, else AnalysisInputError."""
    labels = np.asarray(labels)
    if labels.shape != (n_clips,) or not np.issubdtype(labels.dtype, np.integer):
        raise AnalysisInputError(f"labels must be ({n_clips},) class indices, got {labels.dtype} {labels.shape}")
    if n_clips and (labels.min() < 0 or labels.max() >= n_classes):
        raise AnalysisInputError(f"labels / baseline_logits do not fit {n_clips} clips x {n_classes} classes")
    return labels


def pruning_result(before: np.ndarray, after: np.ndarray, labels: np.ndarray, n_pruned: int) -> PruningResult:
    """Unpruned and pruned logits (n, C) of the same clips + their (n,) class indices -> PruningResult."""
    labels = check_labels(labels, len(before), before.shape[1])
    idx = np.arange(len(labels))
    tb, ta = before[idx, labels], after[idx, labels]
    n_classes = before.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.bincount(labels, weights=ta - tb, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return PruningResult(
        logit_before=tb, logit_after=ta, per_class_delta=per_class,
        accuracy_before=float(np.mean(before.argmax(1) == labels)),
        accuracy_after=float(np.mean(after.argmax(1) == labels)),
        n_pruned=n_pruned,
    )


def evaluate_pruning(
    model, waveforms: np.ndarray, labels: np.ndarray, neurons: Mapping[str, list[int]], batch_size: int = 16,
    baseline_logits: np.ndarray | None = None, engine=None,
) -> PruningResult:
    """Zero ``neurons`` of ``model`` (a TargetModel) and compare true-class logits on (n, samples) ``waveforms``.

    ``labels``: (n,) class indices into the model's outputs. ``engine``: a ``PruningEngine`` already built on
    these clips (its front-end features and unpruned logits are reused; else one is built). ``baseline_logits``
    (n, C), when given without an engine, lets an empty selection skip every forward pass.
    """
    waveforms = np.asarray(waveforms)
    if waveforms.ndim != 2 or len(waveforms) == 0:
        raise AnalysisInputError(f"waveforms must be a non-empty (n_clips, n_samples) array, got {waveforms.shape}")
    if np.asarray(labels).shape != (len(waveforms),):
        raise AnalysisInputError(f"labels must be ({len(waveforms)},) class indices, got {np.asarray(labels).shape}")
    n = selection_size(neurons)
    if engine is None and baseline_logits is not None and n == 0:
        before = np.asarray(baseline_logits, dtype=np.float64)
        return pruning_result(before, before, labels, 0)  # pruning nothing changes nothing: no forward pass
    if engine is None:
        from and_engine.analyses.pruning_engine import PruningEngine  # lazy: torch only when a model runs

        check_labels(labels, len(waveforms), len(model.class_names))
        engine = PruningEngine(model, waveforms, batch_size)
    before = engine.baseline if baseline_logits is None else np.asarray(baseline_logits, dtype=np.float64)
    return pruning_result(before, engine.logits([neurons])[0], labels, n)


@dataclass(frozen=True)
class ConceptDeltas:
    """ΔA / ΔR of one pruning for one target class (true-class logit changes, after - before)."""

    delta_a: float  # mean change on the target class's clips
    delta_r: float  # mean over the other classes with clips of their mean change (NaN when there is none)

    @property
    def delta_a_minus_r(self) -> float:
        """The paper's printed "ΔA − ΔR" column: ΔR − ΔA (positive = the target drops more than the rest)."""
        return self.delta_r - self.delta_a


def concept_deltas(per_class_delta: np.ndarray, target: int) -> ConceptDeltas:
    """(C,) mean logit change per class (NaN for a class without clips) + the target class index -> ΔA, ΔR."""
    d = np.asarray(per_class_delta, dtype=np.float64)
    others = np.delete(d, target)
    others = others[~np.isnan(others)]
    return ConceptDeltas(float(d[target]), float(others.mean()) if len(others) else float("nan"))


def table4(results: Mapping[str, PruningResult], class_names: list[str], model: str, method: str,
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One method's {target class name: PruningResult} -> (pruning_summary row, pruning_per_class rows).

    Per target class t: ΔA, ΔR as ``concept_deltas``; the row averages them over the targets.
    ``delta_a_minus_r`` keeps the paper's printed sign: ΔR − ΔA, i.e. how much more the target's logit
    drops than the rest's (positive = concept-specific; paper's OCP 3.90).
    """
    if not results:
        raise AnalysisInputError(f"table4: no pruning results for {model}/{method}")
    index = {normalise_name(c): i for i, c in enumerate(class_names)}
    rows, per_class = [], []
    for concept, res in results.items():
        t = index.get(normalise_name(concept))
        if t is None:
            raise AnalysisInputError(f"table4: target concept {concept!r} is not one of the model's classes")
        d = res.per_class_delta
        if len(d) != len(class_names) or np.isnan(d[t]):
            raise AnalysisInputError(f"table4: no held-out clip of target class {concept!r} ({model})")
        deltas = concept_deltas(d, t)
        rows.append((res.n_pruned, deltas.delta_a, deltas.delta_r, deltas.delta_a_minus_r))
        per_class += [(model, method, concept, class_names[c], float(d[c]), res.n_pruned)
                      for c in range(len(class_names)) if not np.isnan(d[c])]
    arr = np.array(rows, dtype=np.float64)
    summary = pd.DataFrame([{
        "model": model, "method": method, "mean_pruned": float(arr[:, 0].mean()),
        "delta_a": float(arr[:, 1].mean()), "delta_r": float(np.nanmean(arr[:, 2])),
        "delta_a_minus_r": float(np.nanmean(arr[:, 3])), "n_concepts": len(rows),
    }])
    cols = ["model", "method", "target_concept", "class_name", "delta_logit", "n_pruned"]
    return summary, pd.DataFrame(per_class, columns=cols)
