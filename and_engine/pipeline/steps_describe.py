"""Steps 2 and 5 (captions, summaries): wiring between the store and the describe stages.

``run_describe_steps(ctx)``: captions (scope {}) depend only on the probing set. Summaries run per
(model, layer) for every ``extremes`` step of this build, through the ``llm_cache`` (a rerun with the
same prompts makes zero LLM calls, even after the step itself is invalidated). Before the steps, LLM
round 1 (``llm_round``) sends every uncached summary prompt of every layer whose step will run to each
backend as one request list; the steps then read their answers from the cache.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from and_engine.backends.llm import CachedLLM, Request, run_round
from and_engine.backends.llm_exec import commit_size
from and_engine.backends.registry import CAPTION_SAMPLE_RATE, make
from and_engine.config import Config, LLMConfig
from and_engine.pipeline.core import BuildContext, backend, is_current, probing_set, run_stage, waveforms
from and_engine.stages.captions import compute_captions
from and_engine.stages.summaries import assign_llms, compute_summaries, summary_prompts
from and_engine.text.prompts import SUMMARY_TEMPLATE_ID


def _captioner(ctx: BuildContext):
    return backend(ctx, ("captioner", ctx.config.captions),
                   lambda: make("captioner", ctx.config.captions.backend, ctx.config.captions))


def resolved_llm_config(config: Config, cfg: LLMConfig) -> LLMConfig:
    """``cfg`` with a relative local model path (llama-cpp, transformers) resolved against the project."""
    local = cfg.backend in ("llama-cpp", "transformers") and cfg.model and not cfg.model.startswith("package:")
    if local and not Path(cfg.model).expanduser().is_absolute():  # config paths are relative to the project
        return dataclasses.replace(cfg, model=str(config.resolve(cfg.model)))
    return cfg


def llm_backend(ctx: BuildContext, cfg: LLMConfig):
    """The LLM backend for ``cfg``, made once per build and shared by every step (one model load)."""
    key = ("llm-backend", cfg)
    if key not in ctx.objects:
        resolved = resolved_llm_config(ctx.config, cfg)
        ctx.objects[key] = make("llm", resolved.backend, resolved)
    return ctx.objects[key]


def cached_llm(ctx: BuildContext, cfg: LLMConfig, template: str) -> CachedLLM:
    """``llm_backend`` behind the store's llm_cache for prompts of ``template`` (one instance per build),
    committing every ``llm_exec.commit_size(cfg)`` answers (a crash loses at most one chunk)."""
    key = ("cached-llm", cfg, template)
    if key not in ctx.objects:
        executor = backend(ctx, ("llm-executor", "local"), lambda: make("llm_executor", "local"))
        ctx.objects[key] = CachedLLM(llm_backend(ctx, cfg), ctx.store.cache_get, ctx.store.cache_put,
                                     template=template, chunk_size=commit_size(cfg), executor=executor)
    return ctx.objects[key]


def llm_round(ctx: BuildContext, name: str, requests: list[Request]) -> None:
    """Plan -> execute -> ingest one round of LLM requests (``backends.llm.run_round``), with a progress
    bar and one log line; afterwards the steps find every answer in the cache."""
    if not requests:
        return
    with ctx.progress.bar(0, f"LLM {name}: prompts sent") as bar:
        stats = run_round(requests, on_chunk=bar.update, on_plan=lambda st: bar.reset(total=st.sent))
    ctx.progress.log(f"LLM {name}: {stats.prompts} prompt(s), {stats.unique} unique, {stats.cached} cached, "
                     f"{stats.sent} sent as {stats.lists} request list(s), committed in {stats.chunks} chunk(s)")


def run_captions_step(ctx: BuildContext) -> str:
    captioner = _captioner(ctx)

    def compute():
        audio = waveforms(ctx, CAPTION_SAMPLE_RATE)
        ids = probing_set(ctx).clips["clip_id"].to_numpy()
        with ctx.progress.bar(len(ids), "captioning clips") as bar:
            return compute_captions(audio, CAPTION_SAMPLE_RATE, captioner, ids,
                                    batch_size=64, progress=bar.update)

    fingerprint = run_stage(ctx, "captions", {}, {"captioner": captioner.describe()}, compute)
    if hasattr(captioner, "release"):  # free the GPU before an LLM engine (vLLM) asks for its share of it
        captioner.release()
    return fingerprint


def _summaries_inputs(ctx: BuildContext, model: str, layer: str) -> tuple[list, list[CachedLLM], dict]:
    """(the layer's neuron groups per LLM, their cached LLMs, the step's extra params): one derivation for
    the step and for round 1."""
    cfg = ctx.config.summaries
    neurons = ctx.store.read("extremes", ["neuron"], model=model, layer=layer)["neuron"].to_numpy()
    plan = assign_llms(model, layer, neurons, cfg, ctx.config.run.seed)
    llms = [cached_llm(ctx, llm_cfg, SUMMARY_TEMPLATE_ID) for llm_cfg, _ in plan]
    extra = {"groups": [{"llm": llm.describe(), "n_neurons": int(len(ns))} for llm, (_, ns) in zip(llms, plan)],
             "template": SUMMARY_TEMPLATE_ID}
    return plan, llms, extra


def _read_summary_inputs(ctx: BuildContext, model: str, layer: str):
    extremes = ctx.store.read("extremes", model=model, layer=layer, order_by=["neuron"])
    return extremes, ctx.store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])


def summary_requests(ctx: BuildContext, model: str, layer: str) -> list[Request]:
    """The summary prompts of a layer whose step will run, one request per LLM group ([] if up to date)."""
    plan, llms, extra = _summaries_inputs(ctx, model, layer)
    if is_current(ctx, "summaries", {"model": model, "layer": layer}, extra):
        return []
    prompts = summary_prompts(*_read_summary_inputs(ctx, model, layer))
    return [(llm, prompts.loc[prompts["neuron"].isin(ns), "prompt"].tolist()) for llm, (_, ns) in zip(llms, plan)]


def run_summaries_step(ctx: BuildContext, model: str, layer: str) -> str:
    plan, llms, extra = _summaries_inputs(ctx, model, layer)

    def compute():
        extremes, captions = _read_summary_inputs(ctx, model, layer)
        groups = [(ns, llm) for llm, (_, ns) in zip(llms, plan)]
        with ctx.progress.bar(2 * len(extremes), f"summaries {model}/{layer}") as bar:
            rows = compute_summaries(extremes, captions, groups, progress=bar.update)
        calls = sum(llm.stats["calls"] for llm in llms)
        bad = int((rows["status"] != "ok").sum())
        ctx.progress.log(f"summaries {model}/{layer}: {len(rows)} rows, {calls} LLM call(s) so far in this build, "
                         f"{bad} answer(s) not ok (empty/garbage/truncated)")
        return {"summaries": rows}

    return run_stage(ctx, "summaries", {"model": model, "layer": layer}, extra, compute)


def run_describe_steps(ctx: BuildContext) -> None:
    """Captions once, then round 1 (every summary prompt to send), then summaries for every (model, layer)
    whose extremes this build has."""
    run_captions_step(ctx)
    layers = [dict(scope) for stage, scope in list(ctx.fingerprints) if stage == "extremes"]
    llm_round(ctx, "round 1 (summaries)", [r for s in layers for r in summary_requests(ctx, **s)])
    for scope in layers:
        run_summaries_step(ctx, **scope)
