"""The embedded ``rule`` LLM: a deterministic extractive answerer for the three prompt kinds.

* summary   -> numbered points naming what several of the K captions share (sound sources,
  loudness, pitch, timbre, time structure, quality, emotion), with how many clips share each.
* icl       -> the concept whose words the description mentions most, ending "Answer: <class>".
* adjective -> "Yes"/"No" from the acoustic lexicon, with the reason.

Prompts are recognised by their fixed templates (``and_engine.backends.prompts.parse_prompt``).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

from and_engine.backends.llm_lexicon import PHRASES, STOP_WORDS, acoustic_category, non_acoustic_hint
from and_engine.backends.prompts import ParsedPrompt, parse_prompt

RULE_MODEL = "rule-extractive-v2"  # bump when the algorithm changes: it is part of every cache key
_TITLES = {
    "source": "Common sound sources", "loudness": "Loudness", "pitch": "Pitch", "timbre": "Timbre and texture",
    "time": "Temporal structure", "quality": "Recording quality", "emotion": "Mood",
}
_VERBS = {"source": "feature", "quality": "are described as"}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


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


def _count_phrase(n: int, k: int) -> str:
    return f"all {k} clips" if n == k else f"{n} of the {k} clips"


class RuleLLM:
    """Deterministic extractive LLM stand-in (CPU, no weights); ``generate`` never samples."""

    min_share: int = 2  # a term is a commonality when at least this many captions (or all, if K < 2) use it
    max_terms: int = 4  # per point

    def describe(self) -> dict:
        return {"backend": "rule", "model": RULE_MODEL,
                "params": {"min_share": self.min_share, "max_terms": self.max_terms}}

    def generate(self, prompts: list[str]) -> list[str]:
        return [self._answer(parse_prompt(p)) for p in prompts]

    def _answer(self, parsed: ParsedPrompt) -> str:
        if parsed.kind == "summary":
            return self.summarize(list(parsed.captions))
        if parsed.kind == "icl":
            return self.pick_concept(list(parsed.concepts), parsed.description)
        return self.judge_adjective(parsed.adjective)

    def summarize(self, captions: list[str]) -> str:
        """K captions -> numbered commonality points (the shape of an LLM summary)."""
        k = len(captions)
        surface: dict[str, Counter] = defaultdict(Counter)
        clips_with: dict[str, set[int]] = defaultdict(set)
        for i, caption in enumerate(captions):
            for word in _terms(caption):
                stem = _stem(word)
                surface[stem][word] += 1
                clips_with[stem].add(i)
        need = min(self.min_share, k)
        shared = [(len(ids), min(ids), stem) for stem, ids in clips_with.items() if len(ids) >= need]
        by_cat: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for n, _, stem in sorted(shared, key=lambda t: (-t[0], t[1], t[2])):
            word = surface[stem].most_common(1)[0][0]
            by_cat[acoustic_category(word) or "source"].append((word, n))
        points = []
        for cat in _TITLES:
            terms = by_cat.get(cat, [])[: self.max_terms]
            if not terms:
                continue
            verb = _VERBS.get(cat, "are")
            parts = [f"{w} ({_count_phrase(n, k)})" for w, n in terms]
            listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            points.append(f"{_TITLES[cat]}: the clips {verb} {listed}.")
        if not points:
            return ("1. No clear commonality: the descriptions do not share a sound source or an acoustic "
                    "property.")
        lines = [f"{i}. {p}" for i, p in enumerate(points, start=1)]
        top = [w for cat in _TITLES for w, _ in by_cat.get(cat, [])[:1]]
        lines.append("Overall, these clips have in common: " + ", ".join(top) + ".")
        return "\n".join(lines)

    def pick_concept(self, concepts: list[str], description: str) -> str:
        """Concept set + description -> a response naming the best-matching concept, then 'Answer: <c>'."""
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
        if matched:
            reason = f"the description mentions {', '.join(sorted(set(matched)))}"
        else:
            reason = "no classname is mentioned, so this is the first listed classname (a guess)"
        return (f"Based on the description, the most suitable classname is '{best}', since {reason}.\n"
                f"Answer: {best}")

    def judge_adjective(self, adjective: str) -> str:
        """Adjective -> 'Yes. ...' when the lexicon knows it as an acoustic word, else 'No. ...'."""
        cat = acoustic_category(adjective)
        if cat is not None:
            what = "the emotion or tone" if cat == "emotion" else f"the {cat}" if cat != "time" else "the timing"
            return f"Yes. '{adjective}' can describe {what} of a sound."
        hint = non_acoustic_hint(adjective)
        about = f"describes {hint}" if hint else "is not an acoustic word in the lexicon"
        return f"No. '{adjective}' {about}; it does not describe the tone, emotion, or acoustic features of sound."
