"""Stage 5 (summaries): S_h and S_l of every neuron from its top-K / bottom-K captions (SPEC section 5).

Pure: ``extremes`` + ``captions`` DataFrames and injected LLMs (``CachedLLM``) -> ``summaries`` rows.
The captions of a top-K (bottom-K) set are listed in clip-id order, so the prompt is a function of the
*set*: neurons sharing a set share one prompt, one cache key and one LLM call. ``assign_llms`` splits a
layer's neurons between the run's LLM and the per-subset overrides (``SummariesConfig.overrides``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from and_engine.config import LLMConfig, SummariesConfig, stable_hash
from and_engine.store.schema import columns
from and_engine.text.answers import clean_answer
from and_engine.text.prompts import build_summary_prompt

SIDES = {"top": "topk_clip_ids", "bottom": "bottomk_clip_ids"}  # S_h from top-K, S_l from bottom-K
EMPTY_CAPTION = "(no description was produced for this clip)"


class SummariesInputError(ValueError):
    """Inputs of the summaries stage are inconsistent (missing captions, neurons without an LLM)."""


class SummaryLLM(Protocol):
    """What the stage needs from an LLM: ``CachedLLM`` (generate, key, backend, model)."""

    backend: str
    model: str

    def generate(self, prompts: list[str]) -> list[str]: ...

    def key(self, prompt: str) -> str: ...


def assign_llms(model: str, layer: str, neurons: np.ndarray, cfg: SummariesConfig,
                seed: int) -> list[tuple[LLMConfig, np.ndarray]]:
    """Split a layer's neurons between overrides (in order; first match wins) and the default LLM.

    An override matches when its ``models`` / ``layers`` are empty or contain this model / layer; with
    ``sample_neurons > 0`` it takes a seeded sample (same seed -> same neurons) of the neurons left.
    """
    left = np.sort(np.asarray(neurons, dtype=np.int64))
    groups = []
    for i, ov in enumerate(cfg.overrides):
        if (ov.models and model not in ov.models) or (ov.layers and layer not in ov.layers) or not len(left):
            continue
        if 0 < ov.sample_neurons < len(left):
            rng = np.random.default_rng(int(stable_hash([seed, model, layer, i]), 16))
            take = np.sort(rng.choice(left, size=ov.sample_neurons, replace=False))
        else:
            take = left
        groups.append((ov.llm, take))
        left = np.setdiff1d(left, take)
    if len(left):
        groups.append((cfg.llm, left))
    return groups


def summary_prompts(extremes: pd.DataFrame, captions: pd.DataFrame) -> pd.DataFrame:
    """extremes rows -> (model, layer, neuron, side, prompt), two rows per neuron (top, bottom)."""
    missing_cols = {"model", "layer", "neuron", *SIDES.values()} - set(extremes.columns)
    if missing_cols:
        raise SummariesInputError(f"extremes is missing columns {sorted(missing_cols)}")
    text = dict(zip(captions["clip_id"].astype(int), captions["caption"].astype(str)))
    rows = []
    for r in extremes.itertuples(index=False):
        for side, col in SIDES.items():
            ids = sorted(int(c) for c in getattr(r, col))
            absent = [c for c in ids if c not in text]
            if absent:
                raise SummariesInputError(f"no caption for clip(s) {absent[:5]} (neuron {r.neuron} of {r.layer})")
            prompt = build_summary_prompt([" ".join(text[c].split()) or EMPTY_CAPTION for c in ids])
            rows.append((r.model, r.layer, int(r.neuron), side, prompt))
    return pd.DataFrame(rows, columns=["model", "layer", "neuron", "side", "prompt"])


def compute_summaries(extremes: pd.DataFrame, captions: pd.DataFrame, groups: Sequence[tuple[np.ndarray, SummaryLLM]],
                      chunk: int = 256, progress: Callable[[int], object] | None = None) -> pd.DataFrame:
    """extremes + captions + [(neurons, llm)] -> ``summaries`` rows (without step_id), S_h and S_l per neuron.

    Every neuron of ``extremes`` must be in exactly one group. Answers are cleaned by
    ``clean_answer`` (chatter removed; empty / garbage -> "" with its status); this never raises on text.
    """
    prompts = summary_prompts(extremes, captions)
    owner: dict[int, int] = {}
    for g, (neurons, _) in enumerate(groups):
        for n in np.asarray(neurons, dtype=np.int64).tolist():
            if n in owner:
                raise SummariesInputError(f"neuron {n} is assigned to two LLMs")
            owner[n] = g
    unassigned = sorted(set(prompts["neuron"]) - set(owner))
    if unassigned:
        raise SummariesInputError(f"neurons without an LLM: {unassigned[:10]}")
    out = []
    prompts["group"] = prompts["neuron"].map(owner)
    for g, part in prompts.groupby("group", sort=True):
        llm = groups[int(g)][1]
        texts = part["prompt"].tolist()
        answers: list[str] = []
        for s in range(0, len(texts), chunk):
            answers.extend(llm.generate(texts[s : s + chunk]))
            if progress is not None:
                progress(len(texts[s : s + chunk]))
        cleaned = [clean_answer(a) for a in answers]
        out.append(part.assign(summary=[c for c, _ in cleaned], status=[st for _, st in cleaned],
                               cache_key=[llm.key(p) for p in texts], backend=llm.backend, llm_model=llm.model))
    if not out:
        return pd.DataFrame(columns=columns("summaries")[1:])
    df = pd.concat(out, ignore_index=True).sort_values(["neuron", "side"], ascending=[True, False], kind="stable")
    df["neuron"] = df["neuron"].astype(np.int32)
    return df[columns("summaries")[1:]].reset_index(drop=True)
