"""The LLM part of ``plan``: per round, kind and LLM, the prompts a build will send and their tokens.

Round 1 = summaries (S_h and S_l of every neuron of every layer whose step will run), round 2 = ICL and
the adjective filter, round 3 = the LLM scorers (detection, simulation; only with ``scores.llm_scorers``)
(``backends.llm.run_round``). For each (round, kind, LLM):

* **exact** when a step's inputs are in the database and up to date: its prompts are built by the
  functions the steps use (``summary_prompts``, ``module_a.icl_prompts``, ``llm_scores.judge_prompts``), keyed
  as ``CachedLLM`` keys
  them, de-duplicated and looked up in ``llm_cache``;
* **estimated** otherwise: at most one prompt per neuron-side (summaries; neurons sharing a top-K set
  share one, which is known only once the activations exist) or per neuron (ICL); the adjective filter
  asks as many adjectives as the last build did, else ``ASSUMED_ADJECTIVES``; a judge asks per sampled
  neuron and explanation source ⌈scoring clips / ``llm_clips_per_prompt``⌉ prompts.

Tokens: the LLM's own tokenizer when it is a local directory with one, else characters / 4 (the usual
ratio for English text and BPE tokenizers); the chat template (about 10 tokens a prompt) is not
counted. Prompts not built yet: the template + K captions of the stored mean length (else
``ASSUMED_CAPTION_CHARS``). Answers: at most ``max_new_tokens`` each; typically the mean length of the
answers of that kind already in ``llm_cache`` for this LLM, when there are any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from and_engine.backends.llm import cache_key
from and_engine.backends.registry import make
from and_engine.config import Config, LLMConfig
from and_engine.pipeline import graph
from and_engine.pipeline.steps_describe import resolved_llm_config
from and_engine.pipeline.steps_dissect import icl_descriptions
from and_engine.pipeline.steps_scores import llm_score_inputs
from and_engine.stages import module_a
from and_engine.stages.concept_sets import ConceptSetError, load_concept_set
from and_engine.stages.llm_scores import judge_prompts, sample_neurons
from and_engine.stages.scoring_sets import layer_rng, set_size
from and_engine.stages.summaries import assign_llms, summary_prompts
from and_engine.store.results import ResultsStore, scope_key
from and_engine.text.prompts import (
    ADJECTIVE_TEMPLATE,
    ADJECTIVE_TEMPLATE_ID,
    ICL_EXAMPLES,
    ICL_INSTRUCTION,
    ICL_TEMPLATE_ID,
    JUDGE_HEAD,
    JUDGE_TASKS,
    JUDGE_TEMPLATE_IDS,
    SUMMARY_INSTRUCTION,
    SUMMARY_TEMPLATE_ID,
    build_adjective_prompt,
    build_icl_prompt,
    build_judge_prompt,
)

RUNS = ("stale", "new", "maybe new")  # step states whose steps a build computes
CHARS_PER_TOKEN = 4.0
ASSUMED_CAPTION_CHARS = {"features": 200, "audio-llm": 400}  # features: the demo's mean (197)
ASSUMED_SUMMARY_CHARS = {"rule": 320}  # an ICL description; rule: the demo's mean (323); others 600
ASSUMED_ADJECTIVES = {"rule": 100}  # distinct adjectives without a previous build (demo, rule: 47); others 2,000
TEMPLATES = {"summaries": SUMMARY_TEMPLATE_ID, "ICL": ICL_TEMPLATE_ID, "adjective filter": ADJECTIVE_TEMPLATE_ID,
             **JUDGE_TEMPLATE_IDS}
PREFIXES = {"summaries": SUMMARY_INSTRUCTION, "ICL": ICL_INSTRUCTION.split("[")[0],
            "adjective filter": ADJECTIVE_TEMPLATE.split("{")[0],
            **{k: f"{JUDGE_HEAD} {task}" for k, task in JUDGE_TASKS.items()}}  # a cached prompt's kind, by its start


@dataclass
class LLMRound:
    """What one round asks one LLM for one kind of prompt. ``exact`` False: ``prompts`` and ``unique`` are
    upper bounds (``estimated`` of them not built yet)."""

    round: int
    kind: str  # summaries | ICL | adjective filter | detection | simulation
    llm: str  # "backend model"
    steps: int  # steps of this kind that will run
    prompts: int  # what the steps ask, duplicates included
    unique: int
    cached: int
    estimated: int
    prompt_tokens: int  # of the prompts to send
    answer_tokens_max: int
    answer_tokens_typical: int | None

    @property
    def send(self) -> int:
        return self.unique - self.cached


@dataclass
class _Ask:
    steps: int = 0
    prompts: list[str] = field(default_factory=list)  # built exactly
    estimated: int = 0  # not built yet: one per neuron-side / neuron / adjective / judge prompt
    estimate_chars: float = 0.0  # characters of one estimated prompt


def token_counter(config: Config, cfg: LLMConfig) -> tuple[Callable[[list[str]], int], float, str]:
    """(texts -> tokens, characters per token, how): the model's tokenizer for a local directory that has one
    (transformers, vllm), else characters / 4."""
    path = Path(resolved_llm_config(config, cfg).model or "-").expanduser()
    if cfg.backend in ("transformers", "vllm") and path.is_dir() and (
            (path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists()):
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError):
            tok = None
        if tok is not None:
            def count(texts: list[str]) -> int:
                return sum(sum(len(ids) for ids in tok(texts[s:s + 1000], add_special_tokens=False)["input_ids"])
                           for s in range(0, len(texts), 1000))
            prose = " ".join(d for d, _, _ in ICL_EXAMPLES)
            return count, len(prose) / max(count([prose]), 1), f"the model's tokenizer ({path.name})"
    return (lambda texts: round(sum(map(len, texts)) / CHARS_PER_TOKEN), CHARS_PER_TOKEN,
            "characters / 4 (no local tokenizer for this LLM)")


def _concepts(config: Config, labels: list[str] | None, notes: list[str]) -> list[str]:
    try:
        return load_concept_set(config.module_a.concept_set, labels, config.resolve("."))
    except (ConceptSetError, OSError) as exc:
        notes.append(f"ICL prompt length assumes 50 concepts: {exc}")
        return [f"concept {i}" for i in range(50)]


def _mean_caption_chars(config: Config, captions: pd.DataFrame | None) -> float:
    if captions is not None and len(captions):
        return float(captions["caption"].str.len().mean())
    return ASSUMED_CAPTION_CHARS.get(config.captions.backend, 400)


def _asks(config: Config, store: ResultsStore | None, states: pd.DataFrame, layers: dict[tuple[str, str], int],
          labels: list[str] | None, notes: list[str]) -> dict[tuple[int, str, LLMConfig], _Ask]:
    """(round, kind, LLM config) -> the prompts that round's steps will send, built or estimated."""
    state = {(r.stage, r.scope): r.state for r in states.itertuples()}

    def current(stage: str, scope: dict) -> bool:
        return store is not None and state.get((stage, scope_key(scope))) == "up to date"

    def runs(stage: str, scope: dict) -> bool:
        return state.get((stage, scope_key(scope))) in RUNS

    captions = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"]) if store else None
    caption_chars = _mean_caption_chars(config, captions)
    summary_chars = len(SUMMARY_INSTRUCTION) + 1 + config.activations.top_k * (caption_chars + 4)
    llm, concepts = config.summaries.llm, _concepts(config, labels, notes)
    icl_chars = len(build_icl_prompt(concepts, "")) + ASSUMED_SUMMARY_CHARS.get(llm.backend, 600)
    asks: dict[tuple[int, str, LLMConfig], _Ask] = {}
    icl_stage, icl_source = graph.STAGE["module_a_icl"], (
        "module_b" if config.module_a.icl_summary == "calibrated" else "summaries")
    for (model, layer), n in layers.items():
        scope = {"model": model, "layer": layer}
        if runs("summaries", scope):
            built = None
            if current("captions", {}) and current("extremes", scope):
                built = summary_prompts(store.read("extremes", model=model, layer=layer, order_by=["neuron"]),
                                        captions)
            for llm_cfg, neurons in assign_llms(model, layer, np.arange(n), config.summaries, config.run.seed):
                ask = asks.setdefault((1, "summaries", llm_cfg), _Ask(estimate_chars=summary_chars))
                ask.steps += 1
                if built is not None:
                    ask.prompts += built.loc[built["neuron"].isin(neurons), "prompt"].tolist()
                else:
                    ask.estimated += 2 * len(neurons)
        if graph.exists(icl_stage, config, scope) and runs("module_a_icl", scope):
            ask = asks.setdefault((2, "ICL", llm), _Ask(estimate_chars=icl_chars))
            ask.steps += 1
            if current(icl_source, scope) and current("summaries", scope):
                ask.prompts += module_a.icl_prompts(icl_descriptions(store, config, model, layer), concepts)[1]
            else:
                ask.estimated += n
    if config.module_c.adjective_filter and runs("adjective_checks", {}):
        ask = asks.setdefault((2, "adjective filter", llm), _Ask(estimate_chars=len(build_adjective_prompt("loud"))))
        ask.steps += 1
        last = store.read("adjective_checks", ["adjective"])["adjective"].tolist() if store else []
        if last:
            ask.prompts += [build_adjective_prompt(a) for a in last]
            notes.append(f"adjective filter: as many adjectives as the last build asked about ({len(last)})")
        else:
            ask.estimated += ASSUMED_ADJECTIVES.get(llm.backend, 2000)
            notes.append(f"adjective filter: {ask.estimated} distinct adjectives assumed (known after Module C "
                         "tags the calibrated summaries; the filter is a small share of the tokens either way)")
    _judge_asks(config, store, layers, current, runs, captions, len(labels) if labels is not None else None, asks)
    return asks


def _judge_asks(config: Config, store: ResultsStore | None, layers: dict[tuple[str, str], int], current, runs,
                captions: pd.DataFrame | None, n_clips: int | None, asks: dict) -> None:
    """Round 3: the judge prompts of the llm_scores steps that will run, built when their scores step is up to
    date, else estimated (sampled neurons x explanation sources x prompts per scoring set of ``set_size``)."""
    sc, llm, stage = config.scores, config.summaries.llm, graph.STAGE["llm_scores"]
    per, seed = sc.llm_clips_per_prompt, config.run.seed
    sources = 4 + 2 * len(config.module_a.similarities) + int(config.module_a.icl)  # S_h, S_h^c, adj., shuffled
    clips = sc.n_activating + sc.n_non_activating if n_clips is None else set_size(
        n_clips, config.activations.top_k, sc.n_activating, sc.n_non_activating, sc.activating_fraction)
    per_neuron = sources * -(-clips // per)
    caption_chars = _mean_caption_chars(config, captions)
    texts = captions["caption"].fillna("").astype(str).tolist() if captions is not None else []
    for kind in sc.llm_scorers:
        chars = len(build_judge_prompt(kind, "x" * ASSUMED_SUMMARY_CHARS.get(llm.backend, 600),
                                       ["x" * round(caption_chars)] * per))
        for (model, layer), n in layers.items():
            scope = {"model": model, "layer": layer}
            if not (graph.exists(stage, config, scope) and runs("llm_scores", scope)):
                continue
            ask = asks.setdefault((3, kind, llm), _Ask(estimate_chars=chars))
            ask.steps += 1
            if current("scores", scope) and current("captions", {}):
                sets, expl = llm_score_inputs(store, config, model, layer, n)
                ask.prompts += judge_prompts(kind, expl, sets, texts, per, layer_rng(seed, model, layer))[0]
            else:
                ask.estimated += len(sample_neurons(n, sc.llm_neurons, layer_rng(seed, model, layer))) * per_neuron


def llm_rounds(config: Config, store: ResultsStore | None, states: pd.DataFrame, layers: dict[tuple[str, str], int],
               labels: list[str] | None) -> tuple[list[LLMRound], list[str]]:
    """Config + database (None: not built yet) + step states (``status.step_states``) + {(model, layer):
    neurons} + probing labels -> (one LLMRound per round, kind and LLM; notes on how it was counted)."""
    notes: list[str] = []
    out = []
    counters: dict[LLMConfig, tuple] = {}
    for (rnd, kind, llm_cfg), ask in sorted(_asks(config, store, states, layers, labels, notes).items(),
                                            key=lambda item: item[0][:2]):
        cfg = resolved_llm_config(config, llm_cfg)
        info = make("llm", cfg.backend, cfg).describe()
        if llm_cfg not in counters:
            counters[llm_cfg] = token_counter(config, llm_cfg)
            notes.append(f"tokens of {info['backend']} {info['model']}: {counters[llm_cfg][2]}")
        count, chars_per_token, _ = counters[llm_cfg]
        unique = {cache_key(p, TEMPLATES[kind], info["backend"], info["model"], info.get("params", {})): p
                  for p in ask.prompts}
        hits = store.cache_get(sorted(unique)) if store and unique else {}
        to_send = [p for k, p in unique.items() if k not in hits]
        send = len(to_send) + ask.estimated
        typical = None
        if store is not None:
            n_cached, mean_chars = store.cache_lengths(info["backend"], info["model"], PREFIXES[kind])
            typical = round(send * mean_chars / chars_per_token) if n_cached else None
        out.append(LLMRound(
            round=rnd, kind=kind, llm=f"{info['backend']} {info['model']}".strip(), steps=ask.steps,
            prompts=len(ask.prompts) + ask.estimated, unique=len(unique) + ask.estimated, cached=len(hits),
            estimated=ask.estimated,
            prompt_tokens=count(to_send) + round(ask.estimated * ask.estimate_chars / chars_per_token),
            answer_tokens_max=send * cfg.max_new_tokens, answer_tokens_typical=typical))
    return out, notes
