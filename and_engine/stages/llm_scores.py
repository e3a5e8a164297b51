"""The LLM scorers: an LLM reads the captions of a neuron's scoring clips and judges them against an explanation.

* ``detection`` (EleutherAI Delphi's detection scorer): for each clip 1 if the explanation fits it, else 0.
  balanced accuracy = (TPR + TNR) / 2 of the predictions for activating vs non-activating clips (chance
  0.5); AUC of the predictions (Delphi's AUC uses the log-probability of "1"; from text answers the AUC of
  0/1 predictions equals the balanced accuracy).
* ``simulation`` (OpenAI's automated interpretability): the LLM predicts the activation 0-10 of each clip;
  the score is Pearson r of the predictions with the real activations (chance 0); AUC as above.

Clips go ``clips_per_prompt`` to a prompt, in a seeded order per neuron (the same for every source), so
activating clips are not grouped. An answer without the right number of values in range is *malformed*:
its clips get no prediction and it is counted (``n_malformed``), never fatal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from and_engine.stages.scores import auc, pearson, score_rows
from and_engine.stages.scoring_sets import ScoringSets
from and_engine.text.prompts import JUDGE_RANGES, build_judge_prompt, parse_number_list


class LLMScoreError(ValueError):
    """Bad settings of an LLM scorer; the message names the key."""


def sample_neurons(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """The neurons an LLM scorer reads: all (k = 0 or k >= n) or a seeded sample of k, sorted."""
    return np.arange(n) if k <= 0 or k >= n else np.sort(rng.choice(n, size=k, replace=False))


def _check_settings(kind: str, clips_per_prompt: int) -> None:
    if kind not in JUDGE_RANGES:
        raise LLMScoreError(f"scores.llm_scorers: unknown scorer {kind!r}; known: {list(JUDGE_RANGES)}")
    if clips_per_prompt < 1:
        raise LLMScoreError(f"scores.llm_clips_per_prompt must be >= 1, got {clips_per_prompt}")


def judge_prompts(kind: str, explanations: pd.DataFrame, sets: ScoringSets, captions: Sequence[str],
                  clips_per_prompt: int, rng: np.random.Generator) -> tuple[list[str], list[tuple[int, np.ndarray]]]:
    """-> (prompts, where): ``where[i]`` = (row of ``explanations``, scoring-set slots of prompt i). One
    derivation for the build's LLM round and for ``judge_scores``."""
    _check_settings(kind, clips_per_prompt)
    n, m = sets.clip_ids.shape
    order = np.argsort(rng.random((n, m)) + ~sets.valid, axis=1)  # valid slots first, in a random order
    rows = explanations["neuron"].to_numpy(dtype=np.int64)
    prompts, where = [], []
    for e, (neuron, text) in enumerate(zip(rows, explanations["explanation"])):
        slots = order[neuron][: int(sets.valid[neuron].sum())]
        for s in range(0, len(slots), clips_per_prompt):
            chunk = slots[s:s + clips_per_prompt]
            prompts.append(build_judge_prompt(kind, text, [captions[sets.clip_ids[neuron, j]] for j in chunk]))
            where.append((e, chunk))
    return prompts, where


def judge_scores(kind: str, explanations: pd.DataFrame, sets: ScoringSets, captions: Sequence[str], u: np.ndarray,
                 llm, clips_per_prompt: int, rng: np.random.Generator) -> pd.DataFrame:
    """``explanations`` rows of one layer (neuron, source, explanation, ...), scoring sets, captions by clip id,
    activations u (N, n), an LLM (``generate``) -> ``explanation_scores`` rows of scorer ``kind``."""
    prompts, where = judge_prompts(kind, explanations, sets, captions, clips_per_prompt, rng)
    low, high = JUDGE_RANGES[kind]
    m = sets.clip_ids.shape[1]
    rows = explanations["neuron"].to_numpy(dtype=np.int64)
    answers = llm.generate(prompts) if prompts else []
    pred = np.full((len(rows), m), np.nan)
    malformed = np.zeros(len(rows), dtype=np.int64)
    for (e, chunk), answer in zip(where, answers):
        values = parse_number_list(answer, len(chunk), low, high)
        if values is None:
            malformed[e] += 1
        else:
            pred[e, chunk] = values
    ok = sets.valid[rows] & ~np.isnan(pred)
    act = sets.activating[rows]
    p = np.nan_to_num(pred)
    auc_ = auc(p, ok & act, p, ok & ~act)
    if kind == "detection":
        pos, neg = (ok & act).sum(axis=1), (ok & ~act).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr, tnr = ((p >= 0.5) & ok & act).sum(axis=1) / pos, ((p < 0.5) & ok & ~act).sum(axis=1) / neg
        balanced = np.where((pos > 0) & (neg > 0), (tpr + tnr) / 2, np.nan)
        return score_rows(explanations, kind, auc_, None, balanced, ok.sum(axis=1), malformed)
    real = np.take_along_axis(np.asarray(u, dtype=np.float64).T[rows], np.maximum(sets.clip_ids[rows], 0), axis=1)
    return score_rows(explanations, kind, auc_, pearson(p, real, ok), None, ok.sum(axis=1), malformed)
