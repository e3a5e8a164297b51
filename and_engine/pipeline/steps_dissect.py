"""Steps 6-8 (Module A, B, C) for every (model, layer) that has summaries.

``run_dissect_steps(ctx)``: per (model, layer) with summaries ``module_a`` (DB + TAB) and ``module_b``,
then ``adjective_checks`` (one step over the universal adjective set), then per layer ``module_c`` and
``module_a_icl`` (ICL runs last: with ``icl_summary = "calibrated"`` it reads S_h^c from Module B; by
default it reads S_h). Before the adjective step, LLM round 2 sends every uncached ICL and adjective
prompt of the steps that will run as one request list (``steps_describe.llm_round``); the steps then
read their answers from the cache. Encoders, the TAB model and the tagger are loaded once
(``core.backend``); the DB and TAB matrices are built once per build and kept in ``ctx.objects``.
"""

from __future__ import annotations

import pandas as pd

from and_engine.backends.llm import CachedLLM, Request
from and_engine.backends.registry import make
from and_engine.config import Config, stable_hash
from and_engine.pipeline import graph
from and_engine.pipeline.core import (
    BuildContext,
    backend,
    is_current,
    probing_set,
    run_stage,
    shared,
    text_encoder,
    waveforms,
)
from and_engine.pipeline.steps_describe import cached_llm, llm_round
from and_engine.stages import module_a, module_b, module_c
from and_engine.stages.concept_sets import load_concept_set
from and_engine.store.results import ResultsStore
from and_engine.text.prompts import ADJECTIVE_TEMPLATE_ID, ICL_TEMPLATE_ID


def _llm(ctx: BuildContext, template: str) -> CachedLLM:
    """The summaries' LLM behind the shared cache (one backend per build, shared with the describe steps)."""
    return cached_llm(ctx, ctx.config.summaries.llm, template)


def _concepts(ctx: BuildContext) -> list[str]:
    spec = ctx.config.module_a.concept_set
    return shared(ctx, ("concepts", spec), lambda: load_concept_set(
        spec, probing_set(ctx).class_names if spec == "probing-labels" else None, ctx.config.resolve(".")))


def _db_matrix(ctx: BuildContext, concepts: list[str]):
    cfg = ctx.config.module_a

    def embed():
        caps = ctx.store.read("captions", columns=["clip_id", "caption"], order_by=["clip_id"])
        n = len(probing_set(ctx).clips)
        if caps["clip_id"].tolist() != list(range(n)):
            raise module_a.ModuleAError(f"captions must cover clip ids 0..{n - 1} once each (run the describe steps)")
        return module_a.db_concept_matrix(caps["caption"].tolist(), concepts, text_encoder(ctx, cfg.text_encoder))
    return shared(ctx, ("db-matrix", cfg.text_encoder, tuple(concepts), ctx.fingerprints[("captions", ())]), embed)


def _tab(ctx: BuildContext):
    name, dev = ctx.config.module_a.audio_text_model, ctx.config.device
    return backend(ctx, ("audio-text", name), lambda: make(
        "audio_text", name, {"text_encoder": text_encoder(ctx, "minilm"), "device": dev.audio_text,
                             "batch_size": dev.audio_batch_size}))


def _tab_matrix(ctx: BuildContext, concepts: list[str]):
    """TAB's (clips, concepts) scores, from waveforms decoded at the audio-text model's own rate (CLAP: 48 kHz)."""
    key = ("tab-matrix", ctx.config.module_a.audio_text_model, tuple(concepts), ctx.fingerprints[("clips", ())])
    tab = _tab(ctx)
    return shared(ctx, key, lambda: tab.similarity(waveforms(ctx, tab.sample_rate), concepts))


def _module_a_step(ctx: BuildContext, model: str, layer: str) -> str:
    cfg, concepts = ctx.config.module_a, _concepts(ctx)
    extra = {"concepts": concepts, "text_encoder": text_encoder(ctx, cfg.text_encoder).describe(),
             "audio_text": _tab(ctx).describe(), "no_concept": module_a.NO_CONCEPT_RULE}

    def compute():
        u = ctx.store.read_activations(model, layer)
        topk = None
        if cfg.db_scope == "topk":
            ext = ctx.store.read("extremes", columns=["neuron", "topk_clip_ids"], order_by=["neuron"],
                                 model=model, layer=layer)
            topk = pd.DataFrame(ext["topk_clip_ids"].tolist()).to_numpy()
        common = dict(model=model, layer=layer, similarities=cfg.similarities, top_n=cfg.top_n)
        db = module_a.closed_concepts(u, _db_matrix(ctx, concepts), concepts, method="DB",
                                      scope=cfg.db_scope, topk_ids=topk, **common)
        tab = module_a.closed_concepts(u, _tab_matrix(ctx, concepts), concepts, method="TAB", **common)
        return {"closed_concepts": pd.concat([db, tab], ignore_index=True)}
    return run_stage(ctx, "module_a", {"model": model, "layer": layer}, extra, compute)


def _module_b_step(ctx: BuildContext, model: str, layer: str) -> str:
    cfg = ctx.config.module_b
    encoder = text_encoder(ctx, cfg.sentence_encoder)
    extra = {"encoder": encoder.describe(), "min_point_words": module_b.MIN_POINT_WORDS}

    def compute():
        summ = ctx.store.read("summaries", columns=["neuron", "side", "summary"], model=model, layer=layer)
        points = module_b.calibration_points(summ, encoder, model=model, layer=layer,
                                             keep_opposites=cfg.keep_opposites)
        neurons = sorted(set(summ["neuron"].astype(int)))
        return {"calibration_points": points, "calibrated_summaries": module_b.calibrated_summaries(
            points, neurons, cfg.threshold, model=model, layer=layer)}
    return run_stage(ctx, "module_b", {"model": model, "layer": layer}, extra, compute)


def _tagger(ctx: BuildContext):
    return backend(ctx, ("tagger", ctx.config.module_c.tagger),
                   lambda: make("pos_tagger", ctx.config.module_c.tagger))


def _words(ctx: BuildContext, model: str, layer: str):
    """(words, counts) of a layer's calibrated summaries, tagged once per build."""
    def tag():
        cal = ctx.store.read("calibrated_summaries", columns=["neuron", "calibrated_summary"],
                             order_by=["neuron"], model=model, layer=layer)
        return module_c.tag_words(cal, _tagger(ctx), ctx.config.analyses.basic_adjectives)
    b_fp = ctx.fingerprints[("module_b", graph.scope_of({"model": model, "layer": layer}))]
    return shared(ctx, ("module_c_words", model, layer, b_fp), tag)


def _module_c_extra(ctx: BuildContext) -> dict:
    return {"tagger": _tagger(ctx).describe(), "rule_filter": stable_hash(sorted(module_c.GENERIC_WORDS)),
            "negation_window": module_c.NEGATION_WINDOW}


def _adjective_inputs(ctx: BuildContext) -> tuple[CachedLLM | None, dict]:
    """(the filter's LLM or None when the filter is off, the step's extra params)."""
    llm = _llm(ctx, ADJECTIVE_TEMPLATE_ID) if ctx.config.module_c.adjective_filter else None
    return llm, {**_module_c_extra(ctx), "llm": llm.describe() if llm else None}


def _adjectives(ctx: BuildContext, layers: list[tuple[str, str]]) -> list[str]:
    adjectives = set()
    for model, layer in layers:
        words, _ = _words(ctx, model, layer)
        adjectives |= set(words.loc[words["pos"] == "ADJ", "word"])
    return sorted(adjectives)


def _adjective_step(ctx: BuildContext, layers: list[tuple[str, str]]) -> str:
    llm, extra = _adjective_inputs(ctx)

    def compute():
        if llm is None:
            return {"adjective_checks": module_c.check_adjectives([], None)}
        return {"adjective_checks": module_c.check_adjectives(_adjectives(ctx, layers), llm)}
    return run_stage(ctx, "adjective_checks", {}, extra, compute)


def _module_c_step(ctx: BuildContext, model: str, layer: str) -> str:
    on = ctx.config.module_c.adjective_filter

    def compute():
        words, counts = _words(ctx, model, layer)
        checks = ctx.store.read("adjective_checks", columns=["adjective", "accepted"]) if on else None
        return {"open_concepts": module_c.open_concepts(words, checks, model=model, layer=layer),
                "pos_counts": module_c.pos_counts(counts, words, checks, model=model, layer=layer)}
    return run_stage(ctx, "module_c", {"model": model, "layer": layer}, _module_c_extra(ctx), compute)


def _icl_inputs(ctx: BuildContext) -> tuple[list[str], CachedLLM, object, dict]:
    """(concepts, the ICL LLM, the sentence encoder, the step's extra params)."""
    concepts = _concepts(ctx)
    llm, encoder = _llm(ctx, ICL_TEMPLATE_ID), text_encoder(ctx, ctx.config.module_a.text_encoder)
    return concepts, llm, encoder, {"concepts": concepts, "llm": llm.describe(), "encoder": encoder.describe(),
                                    "no_concept": module_a.NO_CONCEPT_RULE}


def icl_descriptions(store: ResultsStore, config: Config, model: str, layer: str) -> pd.DataFrame:
    """(neuron, description) ICL reads: S_h^c with ``icl_summary = "calibrated"``, else S_h (also ``plan``)."""
    if config.module_a.icl_summary == "calibrated":
        desc = store.read("calibrated_summaries", columns=["neuron", "calibrated_summary"],
                          order_by=["neuron"], model=model, layer=layer)
    else:
        desc = store.read("summaries", columns=["neuron", "summary"], order_by=["neuron"],
                          model=model, layer=layer, side="top")
    desc.columns = ["neuron", "description"]
    return desc


def _icl_step(ctx: BuildContext, model: str, layer: str) -> str:
    concepts, llm, encoder, extra = _icl_inputs(ctx)

    def compute():
        desc = icl_descriptions(ctx.store, ctx.config, model, layer)
        rows, missing = module_a.icl_closed_concepts(desc, concepts, llm, encoder, model=model, layer=layer,
                                                     top_n=ctx.config.module_a.top_n)
        if missing:
            ctx.progress.log(f"ICL {model}/{layer}: {missing} neuron(s) without a usable description or answer")
        return {"closed_concepts": rows}
    return run_stage(ctx, "module_a_icl", {"model": model, "layer": layer}, extra, compute)


def _round2_requests(ctx: BuildContext, layers: list[tuple[str, str]]) -> list[Request]:
    """Round 2: the adjective questions and the ICL prompts of the steps that will run."""
    requests: list[Request] = []
    llm, extra = _adjective_inputs(ctx)
    if llm is not None and not is_current(ctx, "adjective_checks", {}, extra):
        requests.append((llm, module_c.adjective_prompts(_adjectives(ctx, layers))[1]))
    icl = graph.STAGE["module_a_icl"]
    for model, layer in layers:
        scope = {"model": model, "layer": layer}
        if graph.exists(icl, ctx.config, scope):
            concepts, llm, _, extra = _icl_inputs(ctx)
            if not is_current(ctx, "module_a_icl", scope, extra):
                desc = icl_descriptions(ctx.store, ctx.config, model, layer)
                requests.append((llm, module_a.icl_prompts(desc, concepts)[1]))
    return requests


def run_dissect_steps(ctx: BuildContext) -> None:
    """Module A, B, C (and ICL when configured) for every (model, layer) whose summaries this build has;
    LLM round 2 (ICL + adjective filter) once every Module B step has run."""
    if ctx.config.module_a.icl_summary not in ("calibrated", "top"):
        raise module_a.ModuleAError(f"module_a.icl_summary must be calibrated or top, got "
                                    f"{ctx.config.module_a.icl_summary!r}")
    layers = [(dict(scope)["model"], dict(scope)["layer"]) for stage, scope in list(ctx.fingerprints)
              if stage == "summaries"]
    for model, layer in layers:
        _module_a_step(ctx, model, layer)
        _module_b_step(ctx, model, layer)
    llm_round(ctx, "round 2 (ICL, adjective filter)", _round2_requests(ctx, layers))
    _adjective_step(ctx, layers)
    icl = graph.STAGE["module_a_icl"]
    for model, layer in layers:
        _module_c_step(ctx, model, layer)
        if graph.exists(icl, ctx.config, {"model": model, "layer": layer}):
            _icl_step(ctx, model, layer)
