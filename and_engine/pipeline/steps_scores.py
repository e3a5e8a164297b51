"""Scores and ground truth (docs/scores.md): wiring between the store and ``stages/{scoring_sets, explanations,
scores, llm_scores, ground_truth}``.

``run_scores_steps(ctx)``: ``caption_truth`` once, then per (model, layer) dissected in this build ``scores``
(scoring sets, explanations, the embedding and audio-text scores); LLM round 3 sends the judge prompts of every
``llm_scores`` step that will run (when ``scores.llm_scorers`` is set; the summaries' LLM, through the
llm_cache); then per layer ``llm_scores`` and ``ground_truth``. Captions and clips are embedded
once per build and shared by every layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from and_engine.backends.llm import Request
from and_engine.backends.registry import make
from and_engine.pipeline import graph
from and_engine.pipeline.core import BuildContext, backend, is_current, run_stage, shared, text_encoder, waveforms
from and_engine.pipeline.steps_describe import cached_llm, llm_round
from and_engine.stages import ground_truth as gt
from and_engine.stages.explanations import collect_explanations
from and_engine.stages.llm_scores import judge_prompts, judge_scores, sample_neurons
from and_engine.stages.scores import (
    METHOD,
    score_rows,
    separation,
    similarity_at_sets,
    summarise,
    text_vectors,
    unique_texts,
)
from and_engine.stages.scoring_sets import QUANTILE_BINS, ScoringSets, draw_scoring_sets, layer_rng
from and_engine.text.labels import read_label_words
from and_engine.text.prompts import JUDGE_TEMPLATE_IDS


def _audio_text(ctx: BuildContext):
    """The scorer's audio-text model (the same object as Module A's TAB when the names agree: clips embed once)."""
    name, dev = ctx.config.scores.audio_text_model, ctx.config.device
    return backend(ctx, ("audio-text", name), lambda: make(
        "audio_text", name, {"text_encoder": text_encoder(ctx, "minilm"), "device": dev.audio_text,
                             "batch_size": dev.audio_batch_size}))


def _captions(ctx: BuildContext) -> list[str]:
    """Every clip's caption in clip_id order, read once per build."""
    return shared(ctx, ("captions-list", ctx.fingerprints[("captions", ())]), lambda: ctx.store.read(
        "captions", ["clip_id", "caption"], order_by=["clip_id"])["caption"].fillna("").astype(str).tolist())


def _scorer_inputs(ctx: BuildContext, scorer: str):
    """(clip embeddings (N, d), a function texts -> (U, d)) of a scorer, clips embedded once per build."""
    if scorer == "embedding":
        enc = text_encoder(ctx, ctx.config.scores.text_encoder)
        key = ("caption-embeddings", ctx.config.scores.text_encoder, ctx.fingerprints[("captions", ())])
        return shared(ctx, key, lambda: enc.encode(_captions(ctx))), enc.encode
    model = _audio_text(ctx)
    key = ("audio-embeddings", ctx.config.scores.audio_text_model, ctx.fingerprints[("clips", ())])
    return shared(ctx, key, lambda: model.audio_embeddings(waveforms(ctx, model.sample_rate))), model.text_embeddings


def _layer_inputs(ctx: BuildContext, model: str, layer: str) -> dict:
    read = ctx.store.read
    return {"summaries": read("summaries", ["neuron", "summary", "status"], model=model, layer=layer, side="top"),
            "calibrated": read("calibrated_summaries", ["neuron", "calibrated_summary"], model=model, layer=layer),
            "closed": read("closed_concepts", ["neuron", "method", "similarity", "rank", "concept"], model=model,
                           layer=layer),
            "opened": read("open_concepts", ["neuron", "word", "pos", "count"], model=model, layer=layer)}


def _scores_step(ctx: BuildContext, model: str, layer: str) -> str:
    cfg = ctx.config.scores
    extra = {"quantile_bins": QUANTILE_BINS, "method": METHOD,
             "text_encoder": text_encoder(ctx, cfg.text_encoder).describe() if "embedding" in cfg.scorers else None,
             "audio_text": _audio_text(ctx).describe() if "audio-text" in cfg.scorers else None}

    def compute():
        u = ctx.store.read_activations(model, layer)
        ext = ctx.store.read("extremes", ["neuron", "topk_clip_ids"], model=model, layer=layer, order_by=["neuron"])
        rng = layer_rng(ctx.config.run.seed, model, layer)
        sets = draw_scoring_sets(u, len(ext["topk_clip_ids"].iloc[0]), cfg.n_activating, cfg.n_non_activating,
                                 cfg.activating_fraction, rng)
        expl = collect_explanations(**_layer_inputs(ctx, model, layer), model=model, layer=layer, rng=rng)
        rows = expl["neuron"].to_numpy(dtype=np.int64)
        texts, idx = unique_texts(expl["explanation"])
        frames = []
        for scorer in cfg.scorers:
            clip_emb, embed = _scorer_inputs(ctx, scorer)
            sim = similarity_at_sets(text_vectors(texts, embed), idx, rows, clip_emb, sets)
            auc, r = separation(sim, rows, sets, u)
            frames.append(score_rows(expl, scorer, auc, r, None, sets.valid[rows].sum(axis=1)))
        scores = pd.concat(frames, ignore_index=True) if frames else score_rows(expl.iloc[:0], "embedding", [], [],
                                                                                 None, [])
        return {"explanations": expl, "scoring_sets": sets.frame(model, layer), "explanation_scores": scores,
                "score_summary": summarise(scores)}
    return run_stage(ctx, "scores", {"model": model, "layer": layer}, extra, compute)


def _llm_inputs(ctx: BuildContext) -> tuple[dict, dict]:
    """({scorer: its cached LLM}, the llm_scores step's extra params)."""
    llms = {k: cached_llm(ctx, ctx.config.summaries.llm, JUDGE_TEMPLATE_IDS[k]) for k in ctx.config.scores.llm_scorers}
    return llms, {"llm": next(iter(llms.values())).describe(), "templates": [JUDGE_TEMPLATE_IDS[k] for k in llms]}


def llm_score_inputs(store, config, model: str, layer: str, n_neurons: int) -> tuple[ScoringSets, pd.DataFrame]:
    """(the stored scoring sets, the explanations of the neurons the LLM scorers sample) of a layer (also ``plan``)."""
    sets = ScoringSets.from_frame(store.read("scoring_sets", ["neuron", "clip_ids", "activating"], model=model,
                                             layer=layer), n_neurons)
    keep = sample_neurons(n_neurons, config.scores.llm_neurons, layer_rng(config.run.seed, model, layer + "/llm"))
    expl = store.read("explanations", ["model", "layer", "neuron", "source", "explanation"], model=model, layer=layer,
                      neuron=keep.tolist(), order_by=["neuron", "source"])
    return sets, expl


def _llm_layer_data(ctx: BuildContext, model: str, layer: str):
    """(activations u, the stored scoring sets, the explanations of the sampled neurons) of a layer."""
    u = ctx.store.read_activations(model, layer)
    return (u, *llm_score_inputs(ctx.store, ctx.config, model, layer, u.shape[1]))


def _llm_requests(ctx: BuildContext, layers: list[tuple[str, str]]) -> list[Request]:
    """LLM round 3: the judge prompts of every llm_scores step that will run (the steps then read the cache)."""
    stage, requests = graph.STAGE["llm_scores"], []
    for model, layer in layers:
        scope = {"model": model, "layer": layer}
        if not graph.exists(stage, ctx.config, scope):
            continue
        llms, extra = _llm_inputs(ctx)
        if is_current(ctx, "llm_scores", scope, extra):
            continue
        _, sets, expl = _llm_layer_data(ctx, model, layer)
        per, seed = ctx.config.scores.llm_clips_per_prompt, ctx.config.run.seed
        for kind, llm in llms.items():
            prompts, _ = judge_prompts(kind, expl, sets, _captions(ctx), per, layer_rng(seed, model, layer))
            requests.append((llm, prompts))
    return requests


def _llm_scores_step(ctx: BuildContext, model: str, layer: str) -> str:
    cfg = ctx.config.scores
    llms, extra = _llm_inputs(ctx)

    def compute():
        u, sets, expl = _llm_layer_data(ctx, model, layer)
        frames = []
        for kind, llm in llms.items():
            frames.append(judge_scores(kind, expl, sets, _captions(ctx), u, llm,
                                       cfg.llm_clips_per_prompt, layer_rng(ctx.config.run.seed, model, layer)))
            bad = int(frames[-1]["n_malformed"].sum())
            if bad:
                ctx.progress.log(f"{kind} {model}/{layer}: {bad} malformed answer(s), their clips left unscored")
        scores = pd.concat(frames, ignore_index=True)
        return {"explanation_scores": scores, "score_summary": summarise(scores)}
    return run_stage(ctx, "llm_scores", {"model": model, "layer": layer}, extra, compute)


def _label_words(ctx: BuildContext) -> dict[str, tuple[str, ...]]:
    path = ctx.config.ground_truth.label_words
    return shared(ctx, ("label-words", path),
                  lambda: read_label_words(ctx.config.resolve(path)) if path else {})


def _caption_truth_step(ctx: BuildContext) -> str:
    table = _label_words(ctx)
    return run_stage(ctx, "caption_truth", {}, {"label_words": sorted(table.items())}, lambda: {
        "caption_truth": gt.caption_truth(ctx.store.read("clips", ["clip_id", "label"]),
                                          ctx.store.read("captions", ["clip_id", "caption"]), table)})


def _ground_truth_step(ctx: BuildContext, model: str, layer: str) -> str:
    table = _label_words(ctx)

    def compute():
        read = ctx.store.read
        ext = read("extremes", ["neuron", "topk_clip_ids"], model=model, layer=layer, order_by=["neuron"])
        clips, caps = read("clips", ["clip_id", "label"]), read("captions", ["clip_id", "caption"])
        truth = gt.neuron_truth(ext, clips, caps, table, model=model, layer=layer)
        expl = read("explanations", ["model", "layer", "neuron", "source", "explanation"], model=model, layer=layer)
        named = gt.explanation_truth(expl, truth, table)
        rates = gt.truth_rates(truth, named, ext, read("caption_truth"), len(ext["topk_clip_ids"].iloc[0]),
                               model=model, layer=layer)
        return {"neuron_truth": truth, "explanation_truth": named, "truth_rates": rates}
    return run_stage(ctx, "ground_truth", {"model": model, "layer": layer}, {"label_words": sorted(table.items())},
                     compute)


def run_scores_steps(ctx: BuildContext) -> None:
    """Caption truth, scores of every dissected layer, LLM round 3 (the judge prompts of the llm_scores steps
    that will run), then LLM scores (when configured) and ground truth of every layer."""
    layers = [(dict(scope)["model"], dict(scope)["layer"]) for stage, scope in list(ctx.fingerprints)
              if stage == "module_b"]
    _caption_truth_step(ctx)
    for model, layer in layers:
        _scores_step(ctx, model, layer)
    llm_round(ctx, "round 3 (detection, simulation scorers)", _llm_requests(ctx, layers))
    llm = graph.STAGE["llm_scores"]
    for model, layer in layers:
        if graph.exists(llm, ctx.config, {"model": model, "layer": layer}):
            _llm_scores_step(ctx, model, layer)
        _ground_truth_step(ctx, model, layer)
