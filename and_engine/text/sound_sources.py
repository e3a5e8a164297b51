"""Sound sources in plain words: AudioSet class names -> the nouns a caption uses, and which to name.

``audioset_sources.csv`` (next to this module) maps each of YAMNet's 521 AudioSet display names to plain
words ("Chicken, rooster" -> chicken, "Oink" -> pig oinking, "Waves, surf" -> waves) and a kind:
``specific`` (a source), ``generic`` (an ontology parent such as Animal or Vehicle) or ``none`` (a scene or
signal property such as Silence, Inside small room, Reverberation: never named as a source). It is a
general AudioSet vocabulary: no probing set's labels are consulted.

``name_sources(window_scores (W, C), class_names, ...)`` reads the tagger's evidence over time (one row
per 0.96 s window) and returns the sources heard through the clip (ranked by the mean over windows) and
those heard only at moments (a high score in the best window).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOURCE_KINDS = ("specific", "generic", "none")
MIN_SOURCE_SCORE = 0.05  # a source heard through the clip needs at least this mean score (hedged below threshold)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, tuple[str, str]]:
    with open(Path(__file__).with_name("audioset_sources.csv"), newline="") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return {r["audioset_class"]: (r["source"], r["kind"]) for r in rows}


def plain_source(class_name: str) -> tuple[str, str]:
    """An AudioSet class name -> (plain words, kind); a name outside the map -> (its first comma part, specific)."""
    known = _table().get(class_name)
    if known is not None:
        return known
    return class_name.split(",")[0].split("(")[0].strip().lower(), "specific"


@dataclass(frozen=True)
class NamedSources:
    """A clip's sources: ``through`` [(words, confident)] ranked by mean score; ``moments`` [words]; the
    evidence behind them as ``tags`` ("Chicken, rooster:0.45; Cluck:0.08 (peak 0.52)")."""

    through: list[tuple[str, bool]]
    moments: list[str]
    tags: str


@functools.lru_cache(maxsize=8)
def _sources_of(class_names: tuple[str, ...]) -> list[tuple[str, str, frozenset[str]]]:
    """Class names -> per class (plain words, kind, the set of its words), computed once per tagger."""
    return [(words, kind, frozenset(words.split())) for words, kind in map(plain_source, class_names)]


def _best_per_source(scores: np.ndarray, class_names: Sequence[str], limit: int | None = None,
                     min_score: float = -np.inf) -> list[tuple[str, float, int, str]]:
    """-> [(source words, score, class index, kind)], highest first: the best class per source; kind 'none'
    left out, and so is a source that repeats a better one: its words are included in the better one's (pig
    after pig oinking) or include those of a better *specific* one (chicken clucking after chicken; motor
    vehicle after the generic vehicle says more and stays). Stops after ``limit`` sources or at the first score
    below ``min_score`` (the list so far is the same prefix: a source is judged only against better ones)."""
    sources = _sources_of(tuple(class_names))
    best: list[tuple[str, float, int, str]] = []
    kept: list[tuple[frozenset[str], bool]] = []  # (words, specific) of ``best``
    for j in np.argsort(-scores, kind="stable"):
        if scores[j] < min_score or (limit is not None and len(best) >= limit):
            break
        words, kind, mine = sources[j]
        if kind != "none" and not any(mine <= theirs or (specific and theirs <= mine) for theirs, specific in kept):
            best.append((words, float(scores[j]), int(j), kind))
            kept.append((mine, kind == "specific"))
    return best


def name_sources(window_scores: np.ndarray, class_names: Sequence[str], threshold: float, max_sources: int,
                 max_moments: int = 1) -> NamedSources:
    """(W windows, C classes) tagger scores of one clip -> its named sources.

    Through the clip: the ``max_sources`` best sources by mean score over the windows, each with mean >=
    ``MIN_SOURCE_SCORE`` (confident when >= ``threshold``), specific ones before generic ones. At moments:
    up to ``max_moments`` further sources whose best window scores >= ``threshold`` (a dog that barks once
    in five seconds).
    """
    w = np.asarray(window_scores, dtype=np.float64).reshape(-1, len(class_names))
    mean, peak = w.mean(axis=0), w.max(axis=0)
    through = [t for t in _best_per_source(mean, class_names, limit=max_sources) if t[1] >= MIN_SOURCE_SCORE]
    through.sort(key=lambda t: (t[1] < threshold, t[3] == "generic"))  # stable: by score within each group
    named = [set(t[0].split()) for t in through]
    moments = [t for t in _best_per_source(peak, class_names, min_score=threshold)
               if t[1] >= threshold and not any(set(t[0].split()) & n for n in named)][:max_moments]
    tags = [f"{class_names[j]}:{mean[j]:.2f}" for _, _, j, _ in through]
    tags += [f"{class_names[j]}:{mean[j]:.2f} (peak {peak[j]:.2f})" for _, _, j, _ in moments]
    return NamedSources([(t[0], t[1] >= threshold) for t in through], [t[0] for t in moments], "; ".join(tags))
