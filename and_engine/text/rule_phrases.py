"""Sentences for the ``rule`` LLM's commonality summaries: count phrases, sound-source points, acoustic points.

Every point is content-first: it names the shared property and spells it out with several words of
its own (a *gloss*) so that a sentence embedding (MiniLM, Module B) is dominated by what the clips
share, not by the sentence frame. Opposite properties get glosses with no words in common ("loud and
forceful, blaring at high volume" vs "quiet, faint and hushed, barely audible"), because antonyms alone
("loud" / "quiet") in the same frame embed almost identically (cosine 0.85-0.95; docs/backends.md).
Glosses use acoustic adjectives and acoustic nouns (volume, rhythm, notes) only, never a sound-source
noun, so Module C does not find sources that no caption named.
``IDEAS`` maps a canonical property to (aliases, sentence); ``{count}`` is where the clip count goes.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

IDEAS: dict[str, tuple[tuple[str, ...], str]] = {
    # loudness
    "loud": (("loud", "deafening", "booming", "thunderous"),
             "{Count} [are/is] loud and forceful, blaring at high volume."),
    "moderately-loud": (("moderately-loud", "moderate"),
                        "{Count} [sit/sits] at a medium, moderate volume, in the middle of the range."),
    "quiet": (("quiet", "soft", "faint", "hushed", "silent"),
              "{Count} [are/is] quiet, faint and hushed, barely audible."),
    "relatively-loud": (("relatively-loud",), "Compared with the rest, {count} [are/is] turned up higher and louder."),
    "relatively-quiet": (("relatively-quiet",), "{Count} [are/is] softer and more subdued than most other clips."),
    "dynamic": (("dynamic",), "Big dynamic swings in level, surging up and dropping away, run through {count}."),
    "even-level": (("even-level",), "{Count} [hold/holds] an even, stable level without swells or drops."),
    # pitch
    "high-pitched": (("high-pitched", "shrill", "squeaky"),
                     "A shrill, squeaky, high-pitched whine pierces through {count}."),
    "low-pitched": (("low-pitched", "deep", "bassy"), "A deep, bassy, low-pitched hum underlies {count}."),
    "mid-pitched": (("mid-pitched",), "{Count} [are/is] mid-pitched, hovering in a middle register."),
    "high-frequency": (("high-frequency",), "Bright, treble-heavy high-frequency energy fills {count}."),
    "low-frequency": (("low-frequency",), "Heavy, dull low-frequency bass weighs down {count}."),
    "mid-range": (("mid-range",), "{Count} [have/has] a balanced, neutral mid-range spectrum."),
    # timbre
    "noisy": (("noisy",), "A grainy, hissing, static-like noisy texture pervades {count}."),
    "tonal": (("tonal", "harmonic"), "{Count} [are/is] tonal, with a stable, clearly pitched note."),
    # time structure
    "repetitive": (("repetitive", "rhythmic", "repeated", "periodic", "regular", "pulsing"),
                   "{Count} [repeat/repeats] events in a regular, repetitive rhythm, evenly spaced like a beat."),
    "intermittent": (("intermittent", "irregular", "sporadic", "occasional"),
                     "{Count} [are/is] intermittent, stuttering erratically in scattered, haphazard bursts."),
    "continuous": (("continuous", "steady", "constant", "sustained", "stationary"),
                   "{Count} [are/is] continuous, going on unbroken and steady."),
    "brief": (("brief", "short", "momentary", "transient"),
              "{Count} [are/is] brief, over almost instantly, a momentary sound."),
}
IDEA_OF: dict[str, str] = {alias: idea for idea, (aliases, _) in IDEAS.items() for alias in aliases}

# Properties the gloss table does not know (e.g. from an audio-LLM captioner): a frame per category.
CATEGORY_FRAMES = {
    "loudness": "{Count} [are/is] {word} in loudness.",
    "pitch": "{Count} [are/is] {word} in pitch.",
    "timbre": "{Count} [have/has] a {word} timbre.",
    "time": "{Count} [are/is] {word} over time.",
    "quality": "{Count} [are/is] {word} in recording quality.",
    "emotion": "{Count} [feel/feels] {word} in mood.",
}
# Sound-source frames, picked by a checksum of the words: same sources -> same frame, others vary.
SOURCE_FRAMES = (
    "{Count} [feature/features] {sources} prominently.",
    "{Sources} can be heard in {count}.",
    "{Count} [contain/contains] recognisable {sources}.",
    "{Sources} [[are/is]] present in {count}.",
)
HEDGED_FRAME = "{Sources} can possibly be heard in {count}."  # most captions naming them only said "possibly"
MIN_WORDS = 6  # Module B drops points of 5 words or fewer
_VERB = re.compile(r"\[(\w+)/(\w+)\]")  # [plural/singular] verb form, agreeing with the count
_NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def number_word(n: int) -> str:
    return _NUMBERS[n] if 0 <= n < len(_NUMBERS) else str(n)


def count_phrase(n: int, k: int) -> str:
    """How many of the K clips share a property, in words: 'all five clips', 'three of the five clips'."""
    if n == k:
        return "the single clip" if k == 1 else "both clips" if k == 2 else f"all {number_word(k)} clips"
    return f"{number_word(n)} of the {number_word(k)} clips"


def join_words(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _fill(frame: str, count: str, one: bool, **fields: str) -> str:
    text = _VERB.sub(lambda m: m.group(2) if one else m.group(1), frame)
    return text.format(count=count, Count=count[0].upper() + count[1:], **fields)


def source_point(words: Sequence[str], n: int, k: int, hedged: bool = False) -> str:
    """Shared sound-source words + how many clips share them -> one sentence of at least 6 words;
    ``hedged``: the captions mostly named them as possible only, and so does the sentence."""
    sources = join_words(list(words))
    frame = HEDGED_FRAME if hedged else SOURCE_FRAMES[zlib.crc32(" ".join(words).encode()) % len(SOURCE_FRAMES)]
    frame = frame.replace("[[are/is]]", "are" if len(words) > 1 else "is")
    text = _fill(frame, count_phrase(n, k), n == 1, sources=sources, Sources=sources[0].upper() + sources[1:])
    if len(text.split()) < MIN_WORDS:  # e.g. "Both clips feature rain prominently."
        text = _fill(SOURCE_FRAMES[1], count_phrase(n, k), n == 1, Sources=sources[0].upper() + sources[1:])
    return text


def acoustic_point(word: str, category: str, n: int, k: int) -> str:
    """A shared acoustic property (an IDEAS key or a lexicon word of ``category``) -> one sentence."""
    frame = IDEAS[word][1] if word in IDEAS else CATEGORY_FRAMES[category]
    return _fill(frame, count_phrase(n, k), n == 1, word=word)
