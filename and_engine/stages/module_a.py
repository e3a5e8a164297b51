"""Module A -- closed-set concepts by DB, TAB and ICL (SPEC section 6) -> ``closed_concepts`` rows.

* DB: ``db_concept_matrix(captions, concepts, encoder)`` P (N, M) = softmax over concepts of 100 cos.
* TAB: P (N, M) = the audio-text model's cos-like scores (``and_engine.backends.audio_text``), no softmax.
* ``closed_concepts(u, P, ...)`` scores every neuron with each similarity function and keeps the top-n.
* ICL: ``icl_closed_concepts(descriptions, ...)`` asks the LLM (paper Table 5 prompt), parses the text
  after "Answer:" and maps it to the nearest concepts by sentence-embedding cosine (similarity "llm").
Rows: model, layer, neuron, method, similarity, rank (1 = best), concept, score.
**No concept** is a neuron without rows for a (method, similarity): where every concept, or more than
top-n of them, share the best score (e.g. ``rank_reorder`` scoring them all -0: the first concepts in list
order would win), where the neuron's activation does not vary over the clips
it is scored on (a dead neuron: any ranking would only reflect the clip order), or where ICL got no usable
answer (empty, garbage, or one naming no class: "none", "unknown"; never a guess).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import softmax

from and_engine.stages.similarity import score_all
from and_engine.store.schema import FIRST_RANK, ICL_SIMILARITY
from and_engine.text.answers import clean_answer, is_no_answer
from and_engine.text.prompts import build_icl_prompt, parse_icl_answer
from and_engine.text.words import concept_text

COLUMNS = ["model", "layer", "neuron", "method", "similarity", "rank", "concept", "score"]
NO_CONCEPT_RULE = "ties-over-top-n+flat+no-answer-v1"  # when a neuron gets no rows (provenance: part of the steps)
DB_TEMPERATURE = 100.0  # P = softmax(100 * cos(caption, concept)), as CLIP's logit scale
SCOPES = ("all", "topk")
_QUOTED = re.compile(r"^['\"\u2018\u201c]([^'\"\u2019\u201d\n]+)['\"\u2019\u201d]")
_CLAUSE_END = re.compile(r"(?:[.;!?](?:\s|$)|\s[-\u2013(]|\n)")


class ModuleAError(ValueError):
    """Bad input to Module A (shapes, scope, empty concept set); the message names it."""


def db_concept_matrix(captions: Sequence[str], concepts: Sequence[str], encoder) -> np.ndarray:
    """N captions (clip_id order) + M concepts -> P (N, M) float64 = softmax_c(100 cos(d_i, c))."""
    if len(captions) == 0 or len(concepts) == 0:
        raise ModuleAError(f"DB needs captions and concepts, got {len(captions)} and {len(concepts)}")
    d = encoder.encode([str(c) for c in captions]).astype(np.float64)
    c = encoder.encode([concept_text(x) for x in concepts]).astype(np.float64)
    return softmax(DB_TEMPERATURE * (d @ c.T), axis=1)


def tied_rows(scores: np.ndarray, top_n: int) -> np.ndarray:
    """scores (n, M) -> (n,) bool: no concept can be named because the best score is shared by every concept,
    or by more than ``top_n`` of them (the stored top-n would be the first ones in list order), or no
    score is a number."""
    n, m = scores.shape
    if m < 2 or n == 0:
        return np.zeros(n, dtype=bool)
    with np.errstate(invalid="ignore"):
        best = np.nanmax(np.where(np.isnan(scores), -np.inf, scores), axis=1)
        n_best = (scores == best[:, None]).sum(axis=1)
    return ~np.isfinite(best) | (n_best == m) | (n_best > top_n)


def top_n_rows(scores: np.ndarray, concepts: Sequence[str], top_n: int, skip: np.ndarray | None = None,
               **fixed) -> pd.DataFrame:
    """scores (n, M) -> long rows (neuron, rank 1..top_n, concept, score) + constant ``fixed`` columns; a neuron
    whose best score too many concepts share (``tied_rows``) or that ``skip`` (n,) bool marks gets no rows."""
    drop = tied_rows(scores, top_n) if skip is None else tied_rows(scores, top_n) | skip
    keep = np.flatnonzero(~drop)
    scores = scores[keep]
    n, m = scores.shape
    k = min(top_n, m)
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    frame = pd.DataFrame({
        "neuron": np.repeat(keep.astype(np.int32), k),
        "rank": np.tile(np.arange(FIRST_RANK, FIRST_RANK + k, dtype=np.int32), n),
        "concept": np.asarray(concepts, dtype=object)[idx.ravel()],
        "score": np.take_along_axis(scores, idx, axis=1).ravel().astype(np.float64),
    })
    for col, value in fixed.items():
        frame[col] = value
    return frame


def closed_concepts(u: np.ndarray, P: np.ndarray, concepts: Sequence[str], *, model: str, layer: str, method: str,
                    similarities: Sequence[str], top_n: int = 5, scope: str = "all",
                    topk_ids: np.ndarray | None = None) -> pd.DataFrame:
    """u (N, n) activations, P (N, M) concept matrix -> top-n concepts per neuron and similarity function.

    ``scope="topk"`` restricts each neuron to its K top clips ``topk_ids`` (n, K) (the paper's code for
    hidden layers); ``"all"`` uses every clip.
    """
    if scope not in SCOPES:
        raise ModuleAError(f"module_a.db_scope must be one of {SCOPES}, got {scope!r}")
    if P.shape[1] != len(concepts):
        raise ModuleAError(f"P has {P.shape[1]} concept columns but {len(concepts)} concepts were given")
    if scope == "topk" and topk_ids is None:
        raise ModuleAError("scope 'topk' needs each neuron's top-K clip ids (topk_ids)")
    if top_n < 1 or not similarities:
        raise ModuleAError(f"module_a needs top_n >= 1 and >= 1 similarity function, got {top_n}, {similarities}")
    scores = score_all(similarities, u, P, topk_ids if scope == "topk" else None)
    seen = np.take_along_axis(u, np.asarray(topk_ids).T, axis=0) if scope == "topk" else u  # (clips, n)
    flat = ~(seen.max(axis=0) > seen.min(axis=0))  # a neuron with one activation on every clip it is scored on
    frames = [top_n_rows(scores[name], concepts, top_n, skip=flat, similarity=name) for name in similarities]
    out = pd.concat(frames, ignore_index=True)
    out["model"], out["layer"], out["method"] = model, layer, method
    return out[COLUMNS]


def icl_answer_text(response: str, concepts: Sequence[str]) -> str:
    """An LLM response -> the answer to map: after the last "Answer:", a leading quoted name or the text up
    to the first sentence / clause break; without "Answer:", the one concept named verbatim, else the
    whole cleaned response; "" for an empty or garbage response or one that names no class ("none")."""
    raw = response or ""
    idx = raw.lower().rfind("answer:")
    if idx >= 0:  # keep a leading quoted name, else cut extra text at the first sentence / clause break
        line = raw[idx + len("answer:"):].strip().strip("*").strip()
        quoted = _QUOTED.match(line)
        answer = quoted.group(1) if quoted else parse_icl_answer("Answer: " + _CLAUSE_END.split(line, 1)[0])
        if answer.strip():
            return "" if is_no_answer(answer) else answer.strip()
    cleaned, status = clean_answer(response)
    if status in ("empty", "garbage") or not cleaned:
        return ""
    low = cleaned.lower()
    named = [c for c in concepts if re.search(rf"\b{re.escape(concept_text(c).lower())}\b", low)]
    return named[0] if len(named) == 1 else "" if is_no_answer(cleaned) else cleaned


def icl_prompts(descriptions: pd.DataFrame, concepts: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """descriptions (neuron, description) -> (the rows with a non-empty description, their ICL prompts)."""
    if not {"neuron", "description"} <= set(descriptions.columns):
        raise ModuleAError("ICL descriptions need columns 'neuron' and 'description'")
    names = [concept_text(c) for c in concepts]
    rows = descriptions[descriptions["description"].fillna("").str.strip() != ""]
    return rows, [build_icl_prompt(names, d) for d in rows["description"]]


def icl_closed_concepts(descriptions: pd.DataFrame, concepts: Sequence[str], llm, encoder, *, model: str,
                        layer: str, top_n: int = 5) -> tuple[pd.DataFrame, int]:
    """descriptions (neuron, description) -> (closed_concepts rows with method ICL / similarity llm,
    number of neurons without a usable answer: empty description, empty / garbage response, or an answer
    naming no class; those neurons get no rows)."""
    names = [concept_text(c) for c in concepts]
    rows, prompts = icl_prompts(descriptions, concepts)
    responses = llm.generate(prompts) if prompts else []
    answers = [icl_answer_text(r, concepts) for r in responses]
    keep = [i for i, a in enumerate(answers) if a]
    n_missing = len(descriptions) - len(keep)
    cos = (encoder.encode([answers[i] for i in keep]).astype(np.float64) @ encoder.encode(names).astype(np.float64).T
           if keep else np.zeros((0, len(names))))  # no answer: typed, empty rows
    out = top_n_rows(cos, concepts, top_n, model=model, layer=layer, method="ICL", similarity=ICL_SIMILARITY)
    n_missing += len(keep) - out["neuron"].nunique()  # an answer as close to every concept (ties)
    out["neuron"] = rows["neuron"].to_numpy(dtype=np.int32)[keep][out["neuron"].to_numpy()]
    return out[COLUMNS], n_missing
