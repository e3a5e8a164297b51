"""Words of a text: tokens for the POS tagger, a concept's words, and a tagger's adjective check.

* ``tokenize(text)`` -> word tokens that keep hyphenated compounds ("high-pitched") and contractions whole.
* ``concept_text(concept)`` -> the words a text encoder or an LLM sees (``crying_baby`` -> ``crying baby``).
* ``adjective_scores(tagger, sentences, gold)`` -> token-level adjective precision / recall of a POS tagger.
"""

from __future__ import annotations

import re

from and_engine.store.schema import PENN_POS, POS_ADJECTIVE

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-'\u2019][A-Za-z0-9]+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Text -> tokens: words (hyphen / apostrophe compounds kept whole), numbers, punctuation marks."""
    return _TOKEN.findall(str(text or ""))


def concept_text(concept: str) -> str:
    """A concept as words for an encoder / LLM: underscores (and commas: the ICL prompt lists concepts
    comma-separated) -> spaces, whitespace collapsed."""
    return " ".join(concept.replace("_", " ").replace(",", " ").split())


def adjective_scores(tagger, sentences: list[str], gold: list[set[str]]) -> dict:
    """A POS tagger (``backends.registry.POSTagger``: ``tag_batch``) -> its token-level adjective detection
    (Module C's: ``schema.PENN_POS``, JJ/JJR/JJS/VBN) against hand labels: precision, recall, F1, token
    accuracy of the adjective / not-adjective decision, missed / spurious words."""
    tokens = [tokenize(s) for s in sentences]
    tp = fp = fn = correct = total = 0
    missed, spurious = [], []
    for toks, tags, adjs in zip(tokens, tagger.tag_batch(tokens), gold):
        for tok, tag in zip(toks, tags):
            predicted, actual = PENN_POS.get(tag) == POS_ADJECTIVE, tok.lower() in adjs
            tp, fp, fn = tp + (predicted and actual), fp + (predicted and not actual), fn + (actual and not predicted)
            correct, total = correct + (predicted == actual), total + 1
            (missed if actual and not predicted else spurious if predicted and not actual else []).append(tok)
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            "accuracy": correct / max(total, 1), "missed": missed, "spurious": spurious}
