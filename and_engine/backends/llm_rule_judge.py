"""The ``rule`` LLM's answers to the scorers' judge prompts (detection, simulation): word overlap, no weights.

A caption's *fit* is the share of the explanation's content words (Porter stems, stop words, count words
and the words every summary frame uses left out) that the caption contains. Simulation answers
round(10 x fit) per clip; detection answers 1 where fit >= ``DETECTION_FIT``. A deterministic CPU stand-in
for an LLM judge, so the scorers run (and are tested) end to end offline; a real LLM is one switch away.
"""

from __future__ import annotations

import re

from and_engine.text.concepts import stem
from and_engine.text.lexicon import STOP_WORDS

DETECTION_FIT = 0.3  # detection says "fits" when at least this share of the explanation's words is found
_WORD = re.compile(r"[a-z]+")
# words of the summaries' and captions' frames that say nothing about a clip ("three of the five clips ...")
FRAME_WORDS = frozenset(
    "clip clips all both one two three four five six seven eight nine ten single of the audio sound sounds "
    "recording heard feature features present contain contains can be is are it its this these with and "
    "common commonality share shared".split())


def _stems(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(str(text).lower()) if w not in STOP_WORDS and w not in FRAME_WORDS
            and len(w) > 2}


def fit(explanation: str, caption: str) -> float:
    """Share of the explanation's content stems found in the caption (0 when it has none)."""
    want = _stems(explanation)
    return len(want & _stems(caption)) / len(want) if want else 0.0


def judge(kind: str, explanation: str, captions: list[str]) -> str:
    """``detection`` / ``simulation`` + explanation + captions -> an answer of the form 'Answer: [v1, v2, ...]'."""
    fits = [fit(explanation, c) for c in captions]
    values = [int(f >= DETECTION_FIT) for f in fits] if kind == "detection" else [round(10 * f) for f in fits]
    return "Answer: [" + ", ".join(str(v) for v in values) + "]"
