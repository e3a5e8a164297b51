"""Measured acoustic descriptors -> truthful words, and the caption sentences built from them.

``descriptor_words(row)`` turns one row of ``measure_acoustics`` into words by fixed thresholds
(``THRESHOLDS``, documented in docs/backends.md), never two that contradict each other: one loudness scale
(the level of the active part), pitch words and "tonal" only for a stable, voiced pitch (``pitch_hz`` is
measured only then), "noisy" only without one. ``compose_caption(sources, moments, words, seed)`` writes
2-5 varied sentences in the manner of an audio-language model asked to "describe the audio in detail".
The variant of each sentence is picked from ``seed`` so captions are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

THRESHOLDS = {
    "loud_db": -20.0, "moderate_db": -35.0, "quiet_db": -50.0,  # rms_db of the active part (dBFS)
    "high_pitch_hz": 1000.0, "low_pitch_hz": 250.0,  # pitch_hz of a stable, voiced pitch
    "high_freq_hz": 3000.0, "low_freq_hz": 500.0,  # median_frequency_hz of sounds without one
    "noisy_flatness": 0.3,  # tonal = a stable pitch was measured; noisy = no pitch and flatness >= this
    "repetitive_regularity": 0.75, "min_onsets": 3, "continuous_share": 0.8, "brief_s": 1.0,
    "wide_range_db": 30.0, "even_range_db": 6.0,
}


def _ok(x: object) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(float(x))


def descriptor_words(row: Mapping[str, float], clip_seconds: float) -> dict[str, str]:
    """One clip's measurements -> {loudness, pitch, texture, time, dynamics} phrases ('' = none)."""
    t = THRESHOLDS
    db = row["rms_db"]
    loud = ("loud" if db >= t["loud_db"] else "moderately loud" if db >= t["moderate_db"]
            else "quiet" if db >= t["quiet_db"] else "very quiet")
    pitch_hz, med = row.get("pitch_hz"), row.get("median_frequency_hz")
    if _ok(pitch_hz):
        pitch = ("high-pitched" if pitch_hz >= t["high_pitch_hz"] else "low-pitched" if pitch_hz <= t["low_pitch_hz"]
                 else "mid-pitched")
    elif _ok(med):
        pitch = ("high-frequency" if med >= t["high_freq_hz"] else "low-frequency" if med <= t["low_freq_hz"]
                 else "mid-range")
    else:
        pitch = ""
    flat = row.get("spectral_flatness")
    texture = "tonal" if _ok(pitch_hz) else "noisy" if _ok(flat) and flat >= t["noisy_flatness"] else ""
    n_on, reg, active = int(row.get("n_onsets", 0)), row.get("onset_regularity"), float(row.get("active_s", 0.0))
    if n_on >= t["min_onsets"] and _ok(reg) and reg >= t["repetitive_regularity"]:
        time = f"repetitive and rhythmic, about {row['onset_rate_hz']:.1f} events per second"
    elif n_on >= t["min_onsets"]:
        time = "intermittent, with irregular bursts"
    elif active >= t["continuous_share"] * clip_seconds:
        time = "continuous and steady"
    elif 0 < active < t["brief_s"]:
        time = f"brief, lasting about {active:.1f} seconds"
    else:
        time = f"active for about {active:.1f} of {clip_seconds:.0f} seconds" if active > 0 else ""
    dr = row.get("dynamic_range_db", float("nan"))
    dynamics = ("with strong changes in level" if _ok(dr) and dr >= t["wide_range_db"]
                else "at an even level" if _ok(dr) and dr <= t["even_range_db"] else "")
    return {"loudness": loud, "pitch": pitch, "texture": texture, "time": time, "dynamics": dynamics}


def _join(items: Sequence[str]) -> str:
    items = [i for i in items if i]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _source_sentences(sources: Sequence[tuple[str, bool]], moments: Sequence[str], v: int) -> list[str]:
    sure, maybe = [w for w, ok in sources if ok], [w for w, ok in sources if not ok]
    if sure:
        rest = _join(sure[1:])
        first = [f"The audio features {sure[0]}" + (f", along with {rest}." if rest else "."),
                 f"This is a recording of {sure[0]}" + (f", with {rest} also present." if rest else "."),
                 f"The sound of {sure[0]} can be heard" + (f", together with {rest}." if rest else ".")][v]
        out = [first] + ([f"It possibly also contains {_join(maybe)}."] if maybe else [])
    elif maybe:
        out = [[f"The audio possibly features {_join(maybe)}.", f"This may be a recording of {_join(maybe)}.",
                f"What can be heard is possibly {_join(maybe)}."][v]]
    else:
        out = [["The audio contains an unidentified sound.", "It is hard to tell what produces this sound.",
                "The source of this sound is unclear."][v]]
    if moments:
        m = _join(list(moments))
        out.append([f"At moments, {m} can be heard.", f"{m[0].upper() + m[1:]} can be heard at moments.",
                    f"At moments there is also {m}."][v])
    return out


def compose_caption(sources: Sequence[tuple[str, bool]], words: Mapping[str, str], seed: int,
                    moments: Sequence[str] = ()) -> str:
    """Sound sources heard through the clip [(plain words, confident)] + descriptor words (+ sources heard at
    moments) -> 2-5 sentences; ``seed`` picks the phrasing variant. Unconfident sources are hedged
    ("possibly"); no source at all -> "an unidentified sound"."""
    v = seed % 3
    sentences = _source_sentences([(w.lower(), ok) for w, ok in sources], [m.lower() for m in moments], v)
    qual = _join([words["loudness"], words["pitch"]])
    texture = {"tonal": "with a tonal quality", "noisy": "with a noisy texture"}.get(words["texture"], "")
    second = ", ".join(x for x in (qual, texture) if x)
    if second:
        sentences.append(("The sound is " if (seed // 3) % 2 == 0 else "It is ") + second + ".")
    time_part = ", ".join(x for x in (words["time"], words["dynamics"]) if x)
    if time_part:
        sentences.append(["It is " + time_part + ".", "Over time, it is " + time_part + ".",
                          "The sound is " + time_part + "."][(seed // 6) % 3])
    return " ".join(s for s in sentences if s)
