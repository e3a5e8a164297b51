"""An acoustic lexicon for the ``rule`` LLM: descriptor categories, acoustic adjectives, stop words.

Hand-written word lists (no data download): which words describe loudness, pitch, timbre, time
structure, recording quality or the emotion / tone of a sound. ``acoustic_category(word)`` maps a word
(including simple inflections: louder -> loud, noisier -> noisy, ear-piercing -> piercing) to its category.
"""

from __future__ import annotations

DESCRIPTOR_CATEGORIES: dict[str, tuple[str, ...]] = {
    "loudness": (
        "loud", "quiet", "soft", "faint", "moderate", "deafening", "booming", "thunderous",
        "intense", "powerful", "gentle", "subtle", "muted", "hushed", "silent", "audible", "strong", "weak",
        "dynamic", "even-level", "relatively-loud", "relatively-quiet", "moderately-loud",
        "forceful", "blaring", "subdued", "surging",  # words of the summary glosses (text/rule_phrases)
    ),
    "pitch": (
        "high-pitched", "low-pitched", "mid-pitched", "mid-range", "high-frequency", "low-frequency",
        "high", "low", "deep", "shrill", "squeaky", "bassy",
        "treble", "piercing", "sharp", "bright", "dark", "screeching", "whistling", "falsetto",
        "middle-register", "hissy", "dull",
    ),
    "timbre": (
        "noisy", "tonal", "harmonic", "pure", "buzzing", "hissing", "rumbling", "rough", "smooth", "harsh",
        "metallic", "wooden", "hollow", "resonant", "raspy", "hoarse", "breathy", "crisp", "clear", "muffled",
        "distorted", "crackling", "static", "droning", "humming", "ringing", "twangy", "warm", "thin", "full",
        "rich", "melodic", "musical", "percussive", "electronic", "mechanical", "airy", "watery", "gritty",
        "grating", "sizzling", "chirpy", "nasal", "throaty", "guttural", "whooshing", "echoing", "reverberant",
        "grainy", "static-like", "pitched",
    ),
    "time": (
        "repetitive", "rhythmic", "continuous", "steady", "constant", "brief", "short", "long", "sustained",
        "intermittent", "sporadic", "periodic", "regular", "irregular", "sudden", "abrupt", "transient",
        "rapid", "fast", "slow", "fading", "decaying", "rising", "staccato", "pulsing", "repeated",
        "stationary", "momentary", "lingering", "quick", "frequent", "occasional",
        "stop-and-start", "unbroken", "repeating", "evenly-spaced",
    ),
    "quality": (
        "high-quality", "low-quality", "poor", "clean", "lo-fi", "hi-fi", "mono", "stereo", "compressed",
        "recorded", "ambient", "background", "distant", "close", "near", "far", "dry", "wet", "live",
    ),
    "emotion": (
        "calm", "peaceful", "soothing", "relaxing", "tense", "dramatic", "eerie", "scary", "creepy",
        "ominous", "happy", "cheerful", "joyful", "sad", "melancholic", "angry", "aggressive", "playful",
        "energetic", "lively", "annoying", "pleasant", "unpleasant", "tranquil", "intimidating", "urgent",
        "alarming", "frightening", "chaotic", "busy", "serene", "haunting", "exciting", "somber", "menacing",
    ),
}
CATEGORY_ORDER: tuple[str, ...] = tuple(DESCRIPTOR_CATEGORIES)  # the order of a summary's acoustic points
ACOUSTIC_ADJECTIVES: frozenset[str] = frozenset(w for ws in DESCRIPTOR_CATEGORIES.values() for w in ws)
_CATEGORY_OF = {w: cat for cat, ws in DESCRIPTOR_CATEGORIES.items() for w in ws}

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers him his how i if in into is it its itself just me more most my no nor not now of off on
once only or other our out over own same she should so some such than that the their them then there these
they this those through to too under until up very was we were what when where which while who whom why
will with would you your audio clip clips sound sounds recording heard hear hearing features feature
featuring described describes throughout seems appears like there's it's one two three four five
several many various different similar first second third fourth fifth overall also well include
includes including along whole entire around mostly slightly somewhat quite rather fairly part
quality texture level levels changes change set active components time seconds second events per lasting
bursts heard possibly together present unidentified unclear hard tell produces source something may
contain contains containing way moments moment
""".split())
# Multi-word descriptors rewritten to one token before counting (so "strong changes in level" is one idea).
PHRASES: tuple[tuple[str, str], ...] = (
    (r"strong changes in (the )?(sound )?level", "dynamic"),
    (r"moderately loud", "moderately-loud"),
    (r"(at )?an even level", "even-level"),
    (r"louder than most( clips)?( in the set)?", "relatively-loud"),
    (r"(softer|quieter) than most( clips)?( in the set)?", "relatively-quiet"),
)

# Category of a few non-acoustic adjectives, so 'no' answers can say what the word describes instead.
NON_ACOUSTIC_HINTS = {
    "visual appearance": ("red", "blue", "green", "yellow", "colorful", "shiny", "transparent", "visible"),
    "size or shape": ("big", "small", "large", "tiny", "round", "square", "tall", "wide", "narrow"),
    "position in a list": ("other", "first", "second", "last", "next", "previous", "similar", "different"),
}


def _base_forms(word: str) -> list[str]:
    w = word.lower().strip(" .,;:!?'\"()")
    forms = [w]
    for suffix, repl in (("ier", "y"), ("iest", "y"), ("er", ""), ("est", ""), ("ly", ""), ("ness", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            forms.append(w[: -len(suffix)] + repl)
    if len(forms) > 1 and forms[-1] and forms[-1][-1] == forms[-1][-2:-1]:  # bigger -> big
        forms.append(forms[-1][:-1])
    if "-" in w:
        forms.extend(part for part in w.split("-")[::-1] if part)
    return forms


def lexicon_form(word: str) -> str | None:
    """A word -> the lexicon entry it inflects (louder -> loud, ear-piercing -> piercing) or None."""
    return next((form for form in _base_forms(word) if form in _CATEGORY_OF), None)


def acoustic_category(word: str) -> str | None:
    """A word -> its descriptor category (loudness, pitch, timbre, time, quality, emotion) or None."""
    form = lexicon_form(word)
    return None if form is None else _CATEGORY_OF[form]


def non_acoustic_hint(word: str) -> str | None:
    """A word -> what it describes when it is a known non-acoustic adjective (for 'no' answers)."""
    w = word.lower().strip()
    return next((hint for hint, ws in NON_ACOUSTIC_HINTS.items() if w in ws), None)
