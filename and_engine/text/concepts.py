"""Concept-word matching: is a label / concept / open-concept word the same concept as another?

A concept such as ``chirping_birds`` or ``crackling fire`` is split on ``_``, ``-``, ``/`` and spaces,
lower-cased, stop-words dropped, and each word reduced to its Porter stem (``birds`` -> ``bird``,
``crackling`` / ``crackle`` -> ``crackl``). The stemmer needs no NLTK data, so it runs offline. Used by the
probing set (class names vs labels), open-concept pruning, the acoustic checks and the app's candidates.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SPLIT = re.compile(r"[\s_\-/]+")
_NON_WORD = re.compile(r"[^a-z0-9']+")
# Function words that never carry a concept (ESC-50 names such as "sound of rain" stay matchable).
CONCEPT_STOP_WORDS = frozenset(
    "a an and the of on in at to with by for from into over under or sound sounds noise".split()
)

def normalise_name(name: str) -> str:
    """``'Chirping_Birds '`` -> ``'chirping birds'`` (lower case, ``_``/``-`` as spaces, squeezed)."""
    return " ".join(_SPLIT.split(str(name).strip().lower())).strip()


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem import PorterStemmer  # lazy: nltk is only needed for word matching

    return PorterStemmer()


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Porter stem of one lower-case word (``'drops'`` -> ``'drop'``)."""
    return _stemmer().stem(word)


@lru_cache(maxsize=65536)
def content_stems(text: str) -> frozenset[str]:
    """Stems of the content words of a concept or open-concept word (``'water_drops'`` -> {water, drop})."""
    words = (_NON_WORD.sub("", w) for w in _SPLIT.split(str(text).lower()))
    return frozenset(stem(w) for w in words if w and w not in CONCEPT_STOP_WORDS)
