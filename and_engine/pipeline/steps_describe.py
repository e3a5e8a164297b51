"""Steps 2 and 5 (captions, summaries): wiring between the store and the describe stages.

``run_describe_steps(ctx)``: captions (scope {}) depend only on the probing set. Summaries run per
(model, layer) for every ``extremes`` step of this build, through the ``llm_cache`` (a rerun with the
same prompts makes zero LLM calls, even after the step itself is invalidated).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from and_engine.backends.llm import CachedLLM
from and_engine.backends.registry import CAPTION_SAMPLE_RATE, make
from and_engine.config import LLMConfig
from and_engine.pipeline.core import BuildContext, backend, probing_set, run_stage, waveforms
from and_engine.stages.captions import compute_captions
from and_engine.stages.summaries import assign_llms, compute_summaries
from and_engine.text.prompts import SUMMARY_TEMPLATE_ID


def _captioner(ctx: BuildContext):
    return backend(ctx, ("captioner", ctx.config.captions),
                   lambda: make("captioner", ctx.config.captions.backend, ctx.config.captions))


def llm_backend(ctx: BuildContext, cfg: LLMConfig):
    """The LLM backend for ``cfg``, made once per build and shared by every step (one model load)."""
    key = ("llm-backend", cfg)
    if key not in ctx.objects:
        local = cfg.backend in ("llama-cpp", "transformers") and cfg.model and not cfg.model.startswith("package:")
        if local and not Path(cfg.model).expanduser().is_absolute():  # config paths are relative to the project
            cfg = dataclasses.replace(cfg, model=str(ctx.config.resolve(cfg.model)))
        ctx.objects[key] = make("llm", cfg.backend, cfg)
    return ctx.objects[key]


def cached_llm(ctx: BuildContext, cfg: LLMConfig, template: str) -> CachedLLM:
    """``llm_backend`` behind the store's llm_cache for prompts of ``template`` (one instance per build)."""
    key = ("cached-llm", cfg, template)
    if key not in ctx.objects:
        # commit every few batches (a crash loses at most one chunk); the instant rule backend commits in bulk
        chunk = 1024 if cfg.backend == "rule" else max(cfg.batch_size, 1) * 4
        ctx.objects[key] = CachedLLM(llm_backend(ctx, cfg), ctx.store.cache_get, ctx.store.cache_put,
                                     template=template, chunk_size=chunk)
    return ctx.objects[key]


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


def run_summaries_step(ctx: BuildContext, model: str, layer: str) -> str:
    cfg = ctx.config.summaries
    neurons = ctx.store.read("extremes", ["neuron"], model=model, layer=layer)["neuron"].to_numpy()
    plan = assign_llms(model, layer, neurons, cfg, ctx.config.run.seed)
    llms = [cached_llm(ctx, llm_cfg, SUMMARY_TEMPLATE_ID) for llm_cfg, _ in plan]
    extra = {"groups": [{"llm": llm.describe(), "n_neurons": int(len(ns))} for llm, (_, ns) in zip(llms, plan)],
             "template": SUMMARY_TEMPLATE_ID}

    def compute():
        extremes = ctx.store.read("extremes", model=model, layer=layer, order_by=["neuron"])
        captions = ctx.store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
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
    """Captions once, then summaries for every (model, layer) whose extremes this build has."""
    run_captions_step(ctx)
    for stage, scope in list(ctx.fingerprints):
        if stage == "extremes":
            run_summaries_step(ctx, **dict(scope))
