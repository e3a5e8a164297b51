"""Does a text name a probing label? Ground truth's one rule (``stages/ground_truth.py``, the benchmarks).

A label is named by any of its *terms*: the label itself (all of its content words: ``sea_waves`` needs
"sea" and "wave"), and each extra term of a label-words table, a CSV ``label,words`` whose ``words`` are
terms separated by ``;`` (``sea_waves,ocean;waves;surf``). A term matches when every one of its words
occurs in the text as the same Porter stem (``waves`` / ``wave``, ``chirping`` / ``chirps``). The table is
a measuring instrument: it lives in ``benchmarks/label_words.csv`` and no captioner or summariser reads it
(``tests/test_scores_ground_truth.py`` checks the imports).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from and_engine.text.concepts import CONCEPT_STOP_WORDS, normalise_name, stem

_WORD = re.compile(r"[a-z0-9]+")
LabelWords = Mapping[str, tuple[str, ...]]  # label -> extra terms


class LabelWordsError(ValueError):
    """The label-words file is missing or malformed; the message names the file and line."""


def read_label_words(path: str | Path) -> dict[str, tuple[str, ...]]:
    """A CSV ``label,words`` (terms separated by ``;``) -> {label: terms}; a label may appear on several lines."""
    path = Path(path)
    if not path.is_file():
        raise LabelWordsError(f"label-words file not found: {path}")
    out: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh)
        if rows.fieldnames is None or [f.strip() for f in rows.fieldnames] != ["label", "words"]:
            raise LabelWordsError(f"{path}: the header must be 'label,words', got {rows.fieldnames}")
        for line, row in enumerate(rows, start=2):
            label, words = (row.get("label") or "").strip(), (row.get("words") or "").strip()
            if not label or not words:
                raise LabelWordsError(f"{path}:{line}: a label and at least one word are needed, got {row}")
            out.setdefault(label, []).extend(w.strip() for w in words.split(";") if w.strip())
    return {label: tuple(dict.fromkeys(terms)) for label, terms in out.items()}


@lru_cache(maxsize=65536)
def text_stems(text: str) -> frozenset[str]:
    """Stems of every word of a text (stop words kept: a term decides what it needs)."""
    return frozenset(stem(w) for w in _WORD.findall(str(text).lower()))


@lru_cache(maxsize=4096)
def term_stems(term: str) -> frozenset[str]:
    """Stems of a term's content words (``chirping_birds`` -> {chirp, bird}; ``sound of rain`` -> {rain})."""
    words = [w for w in _WORD.findall(normalise_name(term)) if w not in CONCEPT_STOP_WORDS]
    return frozenset(stem(w) for w in words)


def label_terms(label: str, table: LabelWords | None = None) -> tuple[frozenset[str], ...]:
    """The terms that name ``label``: the label itself, then its extra terms in ``table`` (empty ones dropped)."""
    terms = [label, *((table or {}).get(label, ()))]
    return tuple(t for t in dict.fromkeys(term_stems(x) for x in terms) if t)


def names_label(text: str | None, terms: Sequence[frozenset[str]]) -> bool:
    """Whether ``text`` holds every stem of at least one of ``terms`` (``label_terms``)."""
    if not text or not terms:
        return False
    found = text_stems(str(text))
    return any(t <= found for t in terms)
