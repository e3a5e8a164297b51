"""Opposite acoustic properties: does one point claim the opposite of another (loud vs quiet, high vs low)?

``POLES`` lists, per axis, the words of its two poles (with the glosses of ``text.rule_phrases``).
``poles(text)`` -> {axis: pole} for the axes a text takes one side of (a text naming both sides of an axis,
"from quiet to loud", takes none). ``opposite(a, b)`` is True when some axis has a on one pole and b on
the other. Module B's ``keep_opposites`` option uses it so that S_l's "quiet" never removes S_h's "loud",
although a sentence encoder scores the two sentences alike (MiniLM: cosine 0.68 to 0.95).
"""

from __future__ import annotations

import re

from and_engine.text.lexicon import PHRASES, lexicon_form

POLES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    axis: (frozenset(high.split()), frozenset(low.split())) for axis, (high, low) in {
        "loudness": ("loud deafening booming thunderous forceful blaring relatively-loud",
                     "quiet soft faint hushed silent subdued barely relatively-quiet"),
        "pitch": ("high-pitched shrill squeaky treble falsetto", "low-pitched deep bassy"),
        "frequency": ("high-frequency bright hissy", "low-frequency dull bass"),
        "texture": ("tonal harmonic pitched pure melodic", "noisy static-like grainy hissing"),
        "duration": ("continuous steady constant sustained unbroken droning stationary",
                     "intermittent brief sporadic occasional momentary transient stuttering"),
        "regularity": ("repetitive rhythmic regular periodic repeated pulsing evenly-spaced",
                       "irregular erratic erratically haphazard random"),
        "dynamics": ("dynamic swings surging", "even-level even"),
        "speed": ("fast rapid quick", "slow"),
        "mood": ("calm peaceful soothing relaxing tranquil serene",
                 "tense alarming chaotic aggressive intimidating frightening menacing urgent"),
    }.items()
}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


def poles(text: str) -> dict[str, int]:
    """A text -> {axis: 1 (high pole) or 0 (low pole)} for the axes it takes exactly one side of."""
    low = str(text or "").lower()
    for pattern, token in PHRASES:  # "louder than most" -> relatively-loud, "an even level" -> even-level
        low = re.sub(pattern, token, low)
    words = set()
    for w in _WORD.findall(low):
        words.add(w)
        form = lexicon_form(w)  # louder -> loud, softer -> soft
        if form:
            words.add(form)
    out = {}
    for axis, (high, low_pole) in POLES.items():
        sides = {1} if words & high else set()
        sides |= {0} if words & low_pole else set()
        if len(sides) == 1:
            out[axis] = sides.pop()
    return out


def opposite(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` take opposite sides of some acoustic axis (loud vs quiet, tonal vs noisy)."""
    pa, pb = poles(a), poles(b)
    return any(pb.get(axis, side) != side for axis, side in pa.items())
