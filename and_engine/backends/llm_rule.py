"""The embedded ``rule`` LLM: a deterministic extractive answerer for the three prompt kinds.

* summary   -> numbered points stating what a majority (more than half) of the K captions share,
  strongest first: sound sources, then acoustic properties (loudness, pitch, timbre, time structure,
  quality, mood), each as a content-first sentence (``text.rule_phrases``) saying how many clips share it.
  A source that most of its captions name only in a hedged sentence ("possibly", "may") stays hedged.
* icl       -> the concept whose words the description mentions most, ending "Answer: <class>";
  "Answer: none" when it mentions no concept's words (never a guess: Module A stores no concept then).
* adjective -> "Yes"/"No" from the acoustic lexicon, with the reason.
* detection / simulation -> the scorers' judges by word overlap (``llm_rule_judge``).

Prompts are recognised by their fixed templates (``and_engine.text.prompts.parse_prompt``). Made by
``registry.make("llm", "rule")`` (the sampling settings do not apply: it never samples).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

from and_engine.backends.llm_rule_judge import judge
from and_engine.config import LLMConfig
from and_engine.text.lexicon import (
    CATEGORY_ORDER,
    PHRASES,
    STOP_WORDS,
    acoustic_category,
    lexicon_form,
    non_acoustic_hint,
)
from and_engine.text.prompts import ParsedPrompt, parse_prompt
from and_engine.text.rule_phrases import IDEA_OF, acoustic_point, source_point

RULE_MODEL = "rule-extractive-v4"  # bump when the algorithm changes: it is part of every cache key
NO_COMMONALITY = ("1. No clear commonality: the descriptions do not share a sound source or an acoustic "
                  "property.")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
_HEDGE = re.compile(r"\b(possibly|may|might|perhaps|maybe|probably)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and acoustic_category(word) is None:
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> list[str]:
    text = text.lower()
    for pattern, token in PHRASES:
        text = re.sub(pattern, token, text)
    return [w for w in _WORD.findall(text) if w not in STOP_WORDS and len(w) > 2]


def majority(k: int) -> int:
    """The fewest of K captions that make a commonality: more than half (3 of 5, 2 of 3, 1 of 1)."""
    return k // 2 + 1


class RuleLLM:
    """Deterministic extractive LLM stand-in (CPU, no weights); ``generate`` never samples."""

    max_sources: int = 3  # sound-source words per point
    max_source_points: int = 3
    max_points: int = 6

    def describe(self) -> dict:
        return {"backend": "rule", "model": RULE_MODEL,
                "params": {"share": "majority", "max_sources": self.max_sources,
                           "max_source_points": self.max_source_points, "max_points": self.max_points}}

    def generate(self, prompts: list[str]) -> list[str]:
        return [self._answer(parse_prompt(p)) for p in prompts]

    def _answer(self, parsed: ParsedPrompt) -> str:
        if parsed.kind == "summary":
            return self.summarize(list(parsed.captions))
        if parsed.kind == "icl":
            return self.pick_concept(list(parsed.concepts), parsed.description)
        if parsed.kind in ("detection", "simulation"):  # the scorers' judge prompts (llm_rule_judge)
            return judge(parsed.kind, parsed.description, list(parsed.captions))
        return self.judge_adjective(parsed.adjective)

    def summarize(self, captions: list[str]) -> str:
        """K captions -> numbered points (sources first, then acoustic properties), each shared by a
        majority of the captions, strongest first; a single "no clear commonality" point when none is."""
        k = len(captions)
        surface: dict[str, Counter] = defaultdict(Counter)
        clips_with: dict[str, set[int]] = defaultdict(set)
        sure_in: dict[str, set[int]] = defaultdict(set)  # clips naming a key in a sentence without a hedge
        category: dict[str, str] = {}  # acoustic keys (an IDEAS key or a lexicon entry) -> their category
        for i, caption in enumerate(captions):
            for sentence in _SENTENCE_END.split(caption):
                hedged = bool(_HEDGE.search(sentence))
                for word in _terms(sentence):
                    form = lexicon_form(word)
                    key = _stem(word) if form is None else IDEA_OF.get(form, form)
                    if form is not None:
                        category[key] = acoustic_category(form)
                    surface[key][word] += 1
                    clips_with[key].add(i)
                    if not hedged:
                        sure_in[key].add(i)
        shared = sorted(((len(ids), min(ids), key) for key, ids in clips_with.items() if len(ids) >= majority(k)),
                        key=lambda t: (-t[0], t[1], t[2]))
        by_count: dict[tuple[int, bool], list[str]] = defaultdict(list)
        acoustic: list[tuple[int, int, str, str]] = []
        for n, _, key in shared:
            cat = category.get(key)
            if cat is None:
                by_count[n, len(sure_in[key]) < majority(k)].append(surface[key].most_common(1)[0][0])
            else:
                acoustic.append((-n, CATEGORY_ORDER.index(cat), key, cat))
        points = [source_point(words[: self.max_sources], n, k, hedged) for (n, hedged), words in by_count.items()]
        points = points[: self.max_source_points]
        points += [acoustic_point(word, cat, -neg_n, k) for neg_n, _, word, cat in sorted(acoustic)]
        if not points:
            return NO_COMMONALITY
        return "\n".join(f"{i}. {p}" for i, p in enumerate(points[: self.max_points], start=1))

    def pick_concept(self, concepts: list[str], description: str) -> str:
        """Concept set + description -> a response naming the best-matching concept, then 'Answer: <c>';
        'Answer: none' when the description mentions no concept's words."""
        words = [_stem(w) for w in _terms(description)]
        counts, first = Counter(words), {w: i for i, w in reversed(list(enumerate(words)))}
        best, best_key, matched = concepts[0], None, []
        for order, concept in enumerate(concepts):
            cwords = [_stem(w) for w in _terms(concept)] or [_stem(w) for w in _WORD.findall(concept.lower())]
            hits = [w for w in cwords if w in counts]
            cover = len(hits) / max(len(cwords), 1)
            strength = sum(math.log1p(counts[w]) for w in hits)
            key = (cover, strength, -min((first[w] for w in hits), default=10**9), -order)
            if best_key is None or key > best_key:
                best, best_key, matched = concept, key, hits
        if not matched:
            return "The description mentions none of the classnames, so no classname can be selected.\nAnswer: none"
        return (f"Based on the description, the most suitable classname is '{best}', since the description "
                f"mentions {', '.join(sorted(set(matched)))}.\nAnswer: {best}")

    def judge_adjective(self, adjective: str) -> str:
        """Adjective -> 'Yes. ...' when the lexicon knows it as an acoustic word, else 'No. ...'."""
        cat = acoustic_category(adjective)
        if cat is not None:
            what = "the emotion or tone" if cat == "emotion" else f"the {cat}" if cat != "time" else "the timing"
            return f"Yes. '{adjective}' can describe {what} of a sound."
        hint = non_acoustic_hint(adjective)
        about = f"describes {hint}" if hint else "is not an acoustic word in the lexicon"
        return f"No. '{adjective}' {about}; it does not describe the tone, emotion, or acoustic features of sound."


def create(argument: str, cfg: LLMConfig) -> RuleLLM:
    return RuleLLM()
