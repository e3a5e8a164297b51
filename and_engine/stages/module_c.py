"""Module C -- open-set concepts from calibrated summaries S_h^c (SPEC section 8).

1. ``tag_words(calibrated, tagger)``: POS-tag every S_h^c -> candidate words per neuron (adjectives and
   nouns by ``schema.PENN_POS``: JJ/JJR/JJS/VBN not negated, NN*) after the rule filter, and the POS counts
   of section 9.
2. ``check_adjectives(adjectives, llm)``: the LLM filter, one question per unique adjective across all
   neurons -> ``adjective_checks`` rows (adjective, accepted, answer).
3. ``open_concepts(words, checks)`` / ``pos_counts(counts, words, checks)`` -> the two result tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pandas as pd

from and_engine.store.schema import PENN_POS, POS_ADJECTIVE, POS_NOUN
from and_engine.text.prompts import build_adjective_prompt, parse_yes_no
from and_engine.text.words import tokenize

VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBP", "VBZ"})  # VBN is counted as an adjective, not twice
PREPOSITION_TAGS = frozenset({"IN"})
NEGATION_WINDOW = 4
APOSTROPHES = ("'", "\u2019")
# Rule filter: generic words that say nothing about a sound (on top of scikit-learn's English stop-words).
GENERIC_WORDS = frozenset({
    "other", "most", "some", "different", "first", "second", "third", "last", "next", "similar", "same",
    "many", "several", "few", "various", "certain", "overall", "such", "own", "main", "specific", "general",
    "common", "particular", "possible", "single", "multiple", "additional", "whole", "entire", "present",
    "available", "given", "based", "described", "mentioned", "provided", "listed", "used", "featured",
    "clip", "clips", "audio", "description", "descriptions", "summary", "commonality", "commonalities",
})
WORD_COLUMNS = ["neuron", "word", "pos", "count"]
COUNT_COLUMNS = ["neuron", "n_nouns", "n_adjectives", "n_verbs", "n_prepositions", "summary_words",
                 "n_basic_adjectives"]


class ModuleCError(ValueError):
    """Bad input to Module C (missing columns, tag count mismatch); the message names it."""


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | GENERIC_WORDS


def is_negated(tokens: Sequence[str], i: int, window: int = NEGATION_WINDOW) -> bool:
    """True when "no" / "not" (or an n't contraction) is among the ``window`` tokens before tokens[i],
    within the same sentence (the window stops at . ! ?)."""
    before = [t.lower() for t in tokens[max(0, i - window):i]]
    ends = [k for k, t in enumerate(before) if t in (".", "!", "?")]
    before = before[ends[-1] + 1:] if ends else before
    return any(t in ("no", "not") or t.endswith("n't") or t.endswith("n\u2019t") for t in before)


def tag_words(calibrated: pd.DataFrame, tagger, basic_adjectives: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """calibrated (neuron, calibrated_summary) -> (words (neuron, word, pos ADJ|NOUN, count) after the
    negation skip and the rule filter, counts (neuron, n_nouns, n_adjectives, n_verbs, n_prepositions,
    summary_words, n_basic_adjectives))."""
    if not {"neuron", "calibrated_summary"} <= set(calibrated.columns):
        raise ModuleCError("Module C needs columns 'neuron' and 'calibrated_summary'")
    stop, basic = _stop_words(), {b.lower() for b in basic_adjectives}
    texts = calibrated["calibrated_summary"].fillna("").astype(str).tolist()
    unique = list(dict.fromkeys(texts))  # neurons sharing a summary are tagged once
    tagged = dict(zip(unique, tagger.tag_batch([tokenize(t) for t in unique])))
    token_lists, tag_lists = [tokenize(t) for t in texts], [tagged[t] for t in texts]
    words, counts = [], []
    for neuron, toks, tags in zip(calibrated["neuron"].astype(int), token_lists, tag_lists):
        if len(tags) != len(toks):
            raise ModuleCError(f"tagger returned {len(tags)} tags for {len(toks)} tokens (neuron {neuron})")
        found: Counter = Counter()
        n_adj = n_basic = 0
        for i, (tok, tag) in enumerate(zip(toks, tags)):
            low = tok.lower()
            kind = PENN_POS.get(tag)
            if kind == POS_ADJECTIVE and any(a in tok for a in APOSTROPHES):
                kind = None  # "man's" tagged JJ: a possessive (or a contraction), never an adjective
            if kind is None or is_negated(toks, i):
                continue
            if kind == POS_ADJECTIVE:
                n_adj += 1
                n_basic += low in basic
            if low not in stop and any(ch.isalpha() for ch in low) and len(low) > 1:
                found[(low, kind)] += 1
        words += [(neuron, w, k, c) for (w, k), c in sorted(found.items())]
        counts.append((neuron, sum(PENN_POS.get(t) == POS_NOUN for t in tags), n_adj, sum(t in VERB_TAGS for t in tags),
                       sum(t in PREPOSITION_TAGS for t in tags), sum(any(ch.isalnum() for ch in t) for t in toks),
                       n_basic))
    return pd.DataFrame(words, columns=WORD_COLUMNS), pd.DataFrame(counts, columns=COUNT_COLUMNS)


def adjective_prompts(adjectives: Sequence[str]) -> tuple[list[str], list[str]]:
    """Adjectives -> (the unique ones, sorted; their filter questions)."""
    unique = sorted(set(adjectives))
    return unique, [build_adjective_prompt(a) for a in unique]


def check_adjectives(adjectives: Sequence[str], llm) -> pd.DataFrame:
    """Unique adjectives -> adjective_checks rows: asked once each; accepted when the answer says yes."""
    unique, prompts = adjective_prompts(adjectives)
    answers = llm.generate(prompts) if unique else []
    return pd.DataFrame({"adjective": unique, "accepted": [parse_yes_no(a) is True for a in answers],
                         "answer": answers}).astype({"adjective": object, "accepted": bool, "answer": object})


def _accepted(checks: pd.DataFrame | None) -> set[str] | None:
    return None if checks is None else set(checks.loc[checks["accepted"].astype(bool), "adjective"])


def open_concepts(words: pd.DataFrame, checks: pd.DataFrame | None, *, model: str, layer: str) -> pd.DataFrame:
    """C_open rows: adjectives accepted by the LLM filter (all, when ``checks`` is None = filter off) + nouns."""
    ok = _accepted(checks)
    keep = (words["pos"] == POS_NOUN) | (words["word"].isin(ok) if ok is not None else True)
    out = words[keep].copy()
    out.insert(0, "layer", layer)
    out.insert(0, "model", model)
    return out.astype({"neuron": "int32", "count": "int32"}).reset_index(drop=True)


def pos_counts(counts: pd.DataFrame, words: pd.DataFrame, checks: pd.DataFrame | None, *, model: str,
               layer: str) -> pd.DataFrame:
    """POS counts + n_open_adjectives (occurrences of the accepted adjectives) -> ``pos_counts`` rows."""
    ok = _accepted(checks)
    adj = words[(words["pos"] == POS_ADJECTIVE) & (words["word"].isin(ok) if ok is not None else True)]
    n_open = adj.groupby("neuron")["count"].sum()
    out = counts.copy()
    out["n_open_adjectives"] = out["neuron"].map(n_open).fillna(0)
    out.insert(0, "layer", layer)
    out.insert(0, "model", model)
    ints = [c for c in out.columns if c.startswith("n_") or c in ("neuron", "summary_words")]
    return out.astype({c: "int32" for c in ints})
