"""Concept sets D_c for Module A: the probing set's class names, ESC-50's 50 classes, or a word list.

``load_concept_set(spec, class_names)`` -> list of M concept strings, in a stable order. A concept keeps
its original spelling (so it compares equal to a class label, e.g. ``crying_baby``); ``text.words.concept_text``
gives the words a text encoder or an LLM sees (``crying baby``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# ESC-50 (Piczak, 2015): the 50 class names as the dataset's meta/esc50.csv spells them, by target index.
ESC50_CLASSES: tuple[str, ...] = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening",
    "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
    "fireworks", "hand_saw",
)


class ConceptSetError(ValueError):
    """The concept set spec or its contents are invalid; the message names the spec / line."""


def _validated(concepts: Sequence[str], where: str) -> list[str]:
    out = [str(c).strip() for c in concepts]
    if not out:
        raise ConceptSetError(f"concept set {where} is empty")
    seen: set[str] = set()
    for c in out:
        if not c:
            raise ConceptSetError(f"concept set {where} holds an empty concept")
        if c in seen:
            raise ConceptSetError(f"concept {c!r} appears twice in {where}")
        seen.add(c)
    return out


def read_word_list(path: Path) -> list[str]:
    """A text file, one concept per line; blank lines and lines starting with '#' are skipped."""
    if not path.is_file():
        raise ConceptSetError(f"concept word list not found: {path}")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return _validated([ln for ln in lines if ln and not ln.startswith("#")], str(path))


def load_concept_set(spec: str, class_names: Sequence[str] | None = None, root: Path | None = None) -> list[str]:
    """``probing-labels`` | ``esc50`` | ``file:<path>`` -> concepts (relative paths resolve against ``root``)."""
    if spec == "probing-labels":
        if not class_names:
            raise ConceptSetError("concept set 'probing-labels' needs a labelled probing set (no labels found)")
        return _validated(sorted(set(class_names)), "probing-labels")
    if spec == "esc50":
        return list(ESC50_CLASSES)
    if spec.startswith("file:"):
        path = Path(spec[5:]).expanduser()
        if not path.is_absolute() and root is not None:
            path = root / path
        return read_word_list(path)
    raise ConceptSetError(f"module_a.concept_set: unknown spec {spec!r}; use probing-labels, esc50 or file:<path>")
