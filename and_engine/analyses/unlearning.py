"""Table 4 over every class of a model: the paper's audio machine-unlearning experiment (section 4.3).

For each method and each class with held-out clips as the target concept: select neurons
(``pruning.select_neurons``), zero them, measure the true-class logit change on the held-out clips
(every selection in one call of ``pruning_engine.PruningEngine``), then average (``pruning.table4``).
Also the helpers that decide which clips / layers take part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from and_engine.analyses.common import AnalysisInputError, require_columns, selection_size
from and_engine.analyses.pruning import pruning_result, select_neurons, table4
from and_engine.probing import heldout_clips


def heldout_labels(clips: pd.DataFrame, class_names: Sequence[str], fold: int) -> tuple[np.ndarray, np.ndarray]:
    """``probing.heldout_clips`` as arrays -> ((n,) clip ids, (n,) class indices into ``class_names``).

    Raises AnalysisInputError when no clip of ``fold`` has one of the classes as its label.
    """
    require_columns(clips, ("clip_id", "label", "fold"), "clips")
    held = heldout_clips(clips, list(class_names), fold)
    if held.empty:
        raise AnalysisInputError(f"no clip in held-out fold {fold} with a label among the model's classes")
    return held["clip_id"].to_numpy(np.int64), held["class_index"].to_numpy(np.int64)


def candidate_layers(layers: pd.DataFrame, include_classifier: bool = False, sae: bool = False) -> dict[str, int]:
    """``layers`` rows of one model -> {layer: n_neurons} of the layers pruning may touch.

    Default: every dissected layer of neurons except the classifier (the paper prunes AST's hidden linear
    layers; zeroing an output unit would trivially erase its class). ``sae=True``: the SAE layers instead
    (their latents are ablated in the reconstruction, ``models.sae``).
    """
    require_columns(layers, ("layer", "kind", "n_neurons"), "layers")
    keep = layers[(layers["kind"] == "sae") == sae]
    keep = keep if include_classifier else keep[keep["kind"] != "classifier"]
    if keep.empty:
        raise AnalysisInputError("no candidate layer for pruning (only a classifier was dissected)" if not sae
                                 else "no SAE layer to prune (models[].sae_layers)")
    return {str(r.layer): int(r.n_neurons) for r in keep.itertuples()}


def closed_top_n(closed_concepts: pd.DataFrame, similarities: Mapping[str, str | None], top_n: int) -> pd.DataFrame:
    """Only the rows ``select_neurons`` can use: each method's chosen similarity, top ``top_n`` ranks per neuron.

    Selection over every class then scans a frame ~25x smaller (paper scale: 4 M -> 0.17 M rows).
    """
    require_columns(closed_concepts, ("layer", "neuron", "method", "similarity", "rank"), "closed_concepts")
    method = closed_concepts["method"]
    keep = pd.Series(False, index=closed_concepts.index)
    for m, sim in similarities.items():
        keep |= (method == m) & ((closed_concepts["similarity"] == sim) if sim is not None else True)
    sub = closed_concepts[keep].sort_values(["method", "layer", "neuron", "rank"])
    return sub.groupby(["method", "layer", "neuron"], sort=False).head(top_n)


def table4_selections(
    labels: np.ndarray, class_names: Sequence[str], closed_concepts: pd.DataFrame, open_concepts: pd.DataFrame,
    layer_sizes: dict[str, int], similarities: Mapping[str, str | None],
    methods: Sequence[str] = ("OCP", "DB", "TAB", "random"), top_n: int = 3, seed: int = 0,
) -> list[tuple[str, str, dict[str, list[int]]]]:
    """(method, target class, {layer: neurons}) for every method x every class among ``labels`` (Table 4's
    selections; random prunes OCP's count for the class, seeded with ``seed + class index``)."""
    targets = [class_names[c] for c in sorted(set(int(x) for x in labels))]
    if not targets:
        raise AnalysisInputError("no held-out clip to evaluate pruning on")
    closed_concepts = closed_top_n(closed_concepts, similarities, top_n)
    chosen = []
    for method in methods:
        for concept in targets:
            n_random = None
            if method == "random":
                n_random = sum(len(v) for v in select_neurons(
                    "OCP", concept, closed_concepts, open_concepts, layer_sizes).values())
            sel = select_neurons(method, concept, closed_concepts, open_concepts, layer_sizes, top_n=top_n,
                                 seed=seed + list(class_names).index(concept), n_random=n_random,
                                 similarity=similarities.get(method))
            chosen.append((method, concept, sel))
    return chosen


def run_table4(
    model, waveforms: np.ndarray, labels: np.ndarray, class_names: Sequence[str], closed_concepts: pd.DataFrame,
    open_concepts: pd.DataFrame, layer_sizes: dict[str, int], similarities: Mapping[str, str | None],
    model_name: str, methods: Sequence[str] = ("OCP", "DB", "TAB", "random"), top_n: int = 3, seed: int = 0,
    batch_size: int = 16, progress=None, engine=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every method x every class with held-out clips -> (``pruning_summary``, ``pruning_per_class``).

    ``waveforms`` (n, samples) held-out clips (unused when ``engine`` is given), ``labels`` (n,) class
    indices. ``similarities``: the similarity function used for DB / TAB selection. Random uses OCP's
    count for the same class and the seed ``seed + class index``. Every selection is made first, then
    evaluated in one call of the pruning engine (``engine``: a ``PruningEngine`` on these clips, else one
    is built with ``batch_size``). ``progress``: optional callable(done, total) (``PruningEngine.logits``).
    """
    chosen = table4_selections(labels, class_names, closed_concepts, open_concepts, layer_sizes, similarities,
                               methods, top_n, seed)
    if engine is None:
        from and_engine.analyses.pruning_engine import PruningEngine  # lazy: torch only when a model runs

        engine = PruningEngine(model, waveforms, batch_size)
    after = engine.logits([sel for _, _, sel in chosen], progress)
    summaries, per_class = [], []
    for method in methods:
        results = {concept: pruning_result(engine.baseline, logits, labels, selection_size(sel))
                   for (m, concept, sel), logits in zip(chosen, after, strict=True) if m == method}
        s, p = table4(results, list(class_names), model_name, method)
        summaries.append(s)
        per_class.append(p)
    return pd.concat(summaries, ignore_index=True), pd.concat(per_class, ignore_index=True)
