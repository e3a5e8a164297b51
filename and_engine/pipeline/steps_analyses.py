"""Step 9 (analyses): the paper's experiments from the stored dissection, one step per (analysis, model).

Stages: ``clusters`` (global: caption sentences, K-means, elbow, word weights), and per model
``lastlayer``, ``pruning`` (Table 4 + Figure 10), ``feature_importance`` (Figure 4), ``adjectives``
(Figure 5 + top-20), ``interpretability`` (Figure 6) and ``acoustic_check`` (Appendix C). Analyses that
need the model's classes to be the probing labels (last layer, pruning, feature importance) are skipped,
with a log line, for a model whose classes are not (pretrained YAMNet's 521 AudioSet outputs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from and_engine.analyses import adjectives, clusters
from and_engine.analyses.acoustic_check import acoustic_check
from and_engine.analyses.common import AnalysisInputError, varying_units
from and_engine.analyses.feature_importance import feature_importance
from and_engine.analyses.lastlayer import best_similarity, lastlayer_accuracy, missing_classes
from and_engine.analyses.unlearning import candidate_layers, heldout_labels, run_table4
from and_engine.pipeline.core import BuildContext, probing_set, run_stage, shared, text_encoder, waveforms
from and_engine.probing import classes_are_labels


def _encoder(ctx: BuildContext):
    return text_encoder(ctx, ctx.config.analyses.sentence_encoder)


def _concept_set(ctx: BuildContext) -> list[str]:
    """The configured concept set D_c (the same loader Module A uses)."""
    from and_engine.stages.concept_sets import load_concept_set

    spec = ctx.config.module_a.concept_set
    return load_concept_set(spec, probing_set(ctx).class_names if spec == "probing-labels" else None,
                            ctx.config.resolve("."))


def _model_info(ctx: BuildContext, model: str) -> tuple[list[str], int, pd.DataFrame]:
    """(class names, held-out fold, layers rows) of a model from the store."""
    info = ctx.store.read("models", model=model)
    if info.empty:
        raise AnalysisInputError(f"model {model!r} is not in the models table (run the models step first)")
    row = info.iloc[0]
    fold = row["heldout_fold"]
    fold = ctx.config.probing_set.heldout_fold if pd.isna(fold) else int(fold)
    layers = ctx.store.read("layers", model=model, order_by=["layer_index"])
    return [str(c) for c in row["class_names"]], fold, layers


def _classes_are_labels(ctx: BuildContext, classes: list[str]) -> bool:
    return classes_are_labels(classes, probing_set(ctx).class_names)


def _cluster_step(ctx: BuildContext) -> pd.DataFrame:
    cfg = ctx.config.analyses
    state: dict = {}

    def compute():
        sents = clusters.caption_sentences(ctx.store.read("captions", order_by=["clip_id"]))
        emb = _encoder(ctx).encode(sents["sentence"].tolist())
        labels, elbow = clusters.kmeans_clusters(emb, cfg.n_clusters, ctx.config.run.seed, cfg.elbow_max_k)
        sents = sents.assign(cluster=labels)
        n_found = len(np.unique(labels))
        if n_found < cfg.n_clusters:
            ctx.progress.log(f"clusters: only {n_found} distinct sentence embeddings, k capped from {cfg.n_clusters}")
        state["sentences"] = sents
        return {"caption_sentences": sents, "cluster_elbow": elbow,
                "cluster_words": clusters.cluster_words(sents, cfg.cluster_words_n)}

    run_stage(ctx, "clusters", {}, {"encoder": _encoder(ctx).describe()}, compute)
    sents = state.get("sentences")
    if sents is None:
        sents = ctx.store.read("caption_sentences", ["clip_id", "cluster"])
    return sents


def _engine(ctx: BuildContext, model: str, classes: list[str], fold: int):
    """(PruningEngine of a trained variant on its held-out clips, labels (n,)): built once per build and shared
    by the pruning and feature-importance steps (front-end features and unpruned logits computed once)."""

    def create():
        from and_engine.analyses.pruning_engine import PruningEngine, auto_workers
        from and_engine.pipeline.steps_models import get_target_model

        acfg = ctx.config.activations
        target = get_target_model(ctx, model).to(acfg.device)
        clip_ids, labels = heldout_labels(probing_set(ctx).clips, classes, fold)
        workers = ctx.config.analyses.workers or auto_workers(target.device)
        wav = waveforms(ctx, target.sample_rate)[clip_ids]
        return PruningEngine(target, wav, acfg.batch_size, acfg.precision, workers), labels

    return shared(ctx, ("pruning_engine", model), create)


def _bar_progress(bar):
    """A tqdm bar as the engine's ``progress(done, total)``."""
    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
    return update


def _similarities(ctx: BuildContext, lastlayer: pd.DataFrame | None, stored: pd.DataFrame) -> dict[str, str]:
    """Similarity function per closed-set method for pruning: the configured one or the best of Table 2.

    ``stored``: the (method, similarity) pairs Module A wrote for the model's candidate layers.
    """
    wanted = ctx.config.analyses.pruning_similarity
    out = {}
    for method in ("DB", "TAB"):
        sims = sorted(stored.loc[stored["method"].astype(str).str.upper() == method, "similarity"].astype(str).unique())
        if not sims:
            continue
        best = best_similarity(lastlayer, method) if lastlayer is not None and wanted == "best" else None
        out[method] = best if best in sims else (wanted if wanted in sims else sims[0])
    return out


def _lastlayer_step(ctx: BuildContext, model: str, classes: list[str], layers: pd.DataFrame) -> pd.DataFrame | None:
    """Table 2 for the classifier layer -> its rows (None when it does not apply, with a log line)."""
    head = layers.loc[layers["kind"] == "classifier", "layer"].tolist()
    head_rows = ctx.store.read("closed_concepts", model=model, layer=head) if head else pd.DataFrame()
    concept_set = _concept_set(ctx)
    if head_rows.empty or missing_classes(classes, concept_set):
        ctx.progress.log(f"analyses: {model}: no closed-set concepts of the classifier, or classes outside the "
                         "concept set -> last-layer accuracy skipped")
        return None
    extra = {"encoder": _encoder(ctx).describe(), "concept_set": concept_set, "classes": classes}
    run_stage(ctx, "lastlayer", {"model": model}, extra, lambda: {
        "lastlayer_accuracy": lastlayer_accuracy(head_rows, classes, concept_set, _encoder(ctx), model)})
    return ctx.store.read("lastlayer_accuracy", model=model)


def _eval_steps(ctx: BuildContext, model: str, classes: list[str], fold: int, layers: pd.DataFrame) -> None:
    """Last-layer accuracy, Table 4 pruning and Figure 4 feature importance of a trained variant."""
    cfg, scope, read = ctx.config.analyses, {"model": model}, ctx.store.read
    lastlayer = _lastlayer_step(ctx, model, classes, layers)
    try:
        sizes = candidate_layers(layers, cfg.prune_classifier)
    except AnalysisInputError as exc:
        ctx.progress.log(f"analyses: {model}: {exc} -> pruning and feature importance skipped")
        return
    stored = read("closed_concepts", ["method", "similarity"], model=model, layer=next(iter(sizes)))
    sims = _similarities(ctx, lastlayer, stored)
    methods = ["OCP", *sims, "random"]
    common = {"fold": fold, "classes": classes, "candidate_layers": sizes}

    def pruning():
        engine, labels = _engine(ctx, model, classes, fold)
        closed, opened = read("closed_concepts", model=model), read("open_concepts", model=model)
        with ctx.progress.bar(len(methods) * len(set(labels.tolist())) * len(labels), f"pruning {model}") as bar:
            summary, per_class = run_table4(engine.model, None, labels, classes, closed, opened, sizes, sims, model,
                                            methods, cfg.closed_top_n_for_pruning, ctx.config.run.seed,
                                            progress=_bar_progress(bar), engine=engine)
        return {"pruning_summary": summary, "pruning_per_class": per_class}

    run_stage(ctx, "pruning", scope, {**common, "similarities": sims, "methods": methods}, pruning)

    def importance():
        engine, labels = _engine(ctx, model, classes, fold)
        with ctx.progress.bar(1, f"feature importance {model}") as bar:
            return {"feature_importance": feature_importance(
                engine.model, None, labels, read("pos_counts", model=model), read("open_concepts", model=model),
                sizes, model, cfg.prune_percents, cfg.seeds, cfg.basic_adjectives, progress=_bar_progress(bar),
                engine=engine)}

    run_stage(ctx, "feature_importance", scope, common, importance)


def _neuron_rows(rows: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """``rows`` of the neuron layers only: the per-model figures (top adjectives, acoustic check) count neurons as
    the paper does; SAE layers keep their per-layer rows (adjective stats, interpretability)."""
    sae = layers.loc[layers["kind"] == "sae", "layer"]
    return rows[~rows["layer"].isin(sae)] if len(sae) else rows


def _model_steps(ctx: BuildContext, model: str, membership: np.ndarray) -> None:
    """Every analysis of one model."""
    cfg, read = ctx.config.analyses, ctx.store.read
    classes, fold, layers = _model_info(ctx, model)
    scope = {"model": model}

    def adjective_tables():
        opened = read("open_concepts", model=model)
        return {"adjective_stats": adjectives.adjective_stats(opened, read("pos_counts", model=model), layers, model),
                "top_adjectives": adjectives.top_adjectives(_neuron_rows(opened, layers), model, cfg.top_adjectives_n)}

    run_stage(ctx, "adjectives", scope, {}, adjective_tables)
    top_k = ["layer", "neuron", "topk_clip_ids"]
    values = [*top_k, "topk_values", "bottomk_values"]
    run_stage(ctx, "interpretability", scope, {}, lambda: {  # units of constant activation have no top-K: left out
        "interpretability": clusters.interpretability(varying_units(read("extremes", values, model=model)), layers,
                                                      membership, cfg.taus, model)})
    run_stage(ctx, "acoustic_check", scope, {}, lambda: {
        "acoustic_check": acoustic_check(*(_neuron_rows(read(t, model=model), layers) for t in (
            "open_concepts", "pos_counts")), _neuron_rows(read("extremes", top_k, model=model), layers),
            read("acoustic_features"), model, cfg.acoustic_adjectives)})
    if not _classes_are_labels(ctx, classes):
        ctx.progress.log(f"analyses: {model}: its {len(classes)} classes are not the probing labels -> "
                         "last-layer accuracy, pruning and feature importance skipped")
        return
    _eval_steps(ctx, model, classes, fold, layers)


def _related_step(ctx: BuildContext) -> None:
    """Related neurons and cross-model partners over every dissected layer of every model (one global step)."""
    from and_engine.analyses.related import related_neurons

    def compute():
        layers = ctx.store.read("layers", ["model", "layer"], model=[m.name for m in ctx.config.models],
                                order_by=["model", "layer_index"])
        acts = {(r.model, r.layer): ctx.store.read_activations(r.model, r.layer) for r in layers.itertuples()}
        related, partners = related_neurons(acts, ctx.config.analyses.related_top_n)
        return {"related_neurons": related, "neuron_partners": partners}

    run_stage(ctx, "related_neurons", {}, {}, compute)


def run_analyses_steps(ctx: BuildContext) -> None:
    """Write every analysis table: the clusters, related neurons, then every analysis of every configured model."""
    sents = _cluster_step(ctx)
    _related_step(ctx)
    membership = clusters.clip_cluster_matrix(sents, len(probing_set(ctx).clips))
    for m in ctx.config.models:
        _model_steps(ctx, m.name, membership)
