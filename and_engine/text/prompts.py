"""The paper's prompt templates (Appendix A.2 / A.3, SPEC sections 5, 6, 8), builders and parsers.

Every module that talks to an LLM builds its prompts here, so the templates are defined once and the
``rule`` backend can recognise each prompt kind by its fixed wording:

* summary   -- ``build_summary_prompt(captions)``: S_h / S_l of a neuron from its top-K / bottom-K captions.
* icl       -- ``build_icl_prompt(concepts, description)``: pick a closed-set concept (Table 5, 2-shot).
* adjective -- ``build_adjective_prompt(adjective)``: is this adjective acoustic? (Module C filter).
* detection / simulation -- ``build_judge_prompt(kind, explanation, captions)``: which captioned clips fit an
  explanation (0/1 each, Delphi's detection) / how strongly the neuron fires on each (0-10, OpenAI's
  simulation); ``parse_number_list`` reads the answer (docs/scores.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SUMMARY_INSTRUCTION = (
    "Here are descriptions of some audio clips. "
    "Please summarize these descriptions by identifying their commonalities."
)
SUMMARY_TEMPLATE_ID = "and-summary-v1"

ADJECTIVE_TEMPLATE = (
    "Can the adjective '{adjective}' be used to describe the tone, emotion, or acoustic features of audio, "
    "music, or any other form of sound? Answer yes or no and give the reason."
)
ADJECTIVE_TEMPLATE_ID = "and-adjective-v1"

ICL_INSTRUCTION = (
    "You have a set of object classnames: [{concepts}]\n"
    "The following is a description about some audio clips. Based on the description, select a classname "
    "out of the above classnames that matches the description most."
)
ICL_TEMPLATE_ID = "and-icl-2shot-v1"
ICL_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "The audio features a car meowing: All of the clips contain the sound of a cat meowing. Loud sound: "
        "These clips are all of loud sound but with varying degrees of intensity. Repetitive barking: Clips 1 "
        "and 4 are repetitive, with the cat meowing multiple times in each clip. Poor audio quality: All clips "
        "have poor audio quality, with either distortion, muffling, or apparent background noises.",
        "We know these clips are about the class 'cat' in the concept set. We can get this answer since the "
        "description mentions All of the clips contain the sound of a cat meowing.",
        "cat",
    ),
    (
        "They all feature a person snoring loudly. The snoring starts off slow and gets louder over time. The "
        "audio is recorded in mono. There are no other sounds in the background. The snoring is described as "
        "loud and intense. The audio clips differ in the following ways. The first clip features a man "
        "snoring, while the second and fourth clips feature a person snoring (gender not specified). The third "
        "clip features a zombie growling and snarling, while the other clips only feature snoring. The third "
        "clip is described as scary and creepy, while the other clips are not. The third clip is intended for "
        "use in a horror movie or zombie video game, while the other clips do not have specific intended uses "
        "stated. The third clip is of poor quality, while the other clips are not specified as such.",
        "Based on the description, the most suitable classname for the audio clips would be 'snoring' or "
        "'zombie growling and snarling'. Both of these classnames match the description of loud sounds with a "
        "strong emotional impact, specifically fear and terror. But 'zombie growling and snarling' is not in "
        "the given classname set. So the answer is 'snoring'",
        "snoring",
    ),
)


JUDGE_HEAD = "A neuron of an audio network is explained as follows."
JUDGE_TASKS = {
    "detection": ("Below are descriptions of audio clips. For each clip, decide whether the explanation fits it, "
                  "that is, whether the neuron would respond to it. Reply with one number per clip, 1 if it fits "
                  "and 0 if not, as a list in clip order, for example [1, 0, 0, 1]."),
    "simulation": ("Below are descriptions of audio clips. For each clip, predict how strongly the neuron responds "
                   "to it, from 0 (not at all) to 10 (as strongly as it ever does). Reply with one whole number per "
                   "clip, as a list in clip order, for example [0, 10, 3, 0]."),
}
JUDGE_RANGES = {"detection": (0, 1), "simulation": (0, 10)}  # the values an answer may hold
DETECTION_TEMPLATE_ID, SIMULATION_TEMPLATE_ID = "and-detection-v1", "and-simulation-v1"
JUDGE_TEMPLATE_IDS = {"detection": DETECTION_TEMPLATE_ID, "simulation": SIMULATION_TEMPLATE_ID}


class PromptError(ValueError):
    """A prompt cannot be built (bad input) or parsed (unknown kind); the message says which."""


def build_summary_prompt(captions: Sequence[str]) -> str:
    """K captions -> the summary prompt: the instruction, then one numbered caption per line."""
    if len(captions) == 0:
        raise PromptError("build_summary_prompt: no captions given (K must be >= 1)")
    lines = []
    for i, caption in enumerate(captions, start=1):
        text = " ".join(str(caption).split())
        if not text:
            raise PromptError(f"build_summary_prompt: caption {i} is empty")
        lines.append(f"{i}. {text}")
    return SUMMARY_INSTRUCTION + "\n" + "\n".join(lines)


def build_adjective_prompt(adjective: str) -> str:
    """One adjective -> the Module C yes/no question (SPEC section 8)."""
    adjective = " ".join(str(adjective).split())
    if not adjective:
        raise PromptError("build_adjective_prompt: empty adjective")
    return ADJECTIVE_TEMPLATE.format(adjective=adjective)


def build_icl_prompt(concepts: Sequence[str], description: str) -> str:
    """Concept set D_c + a (calibrated) summary -> the 2-shot ICL prompt of Table 5, ending in 'Answer:'."""
    names = [" ".join(str(c).split()) for c in concepts]
    if not names or any(not n or "," in n for n in names):
        raise PromptError("build_icl_prompt: concepts must be non-empty names without commas")
    description = " ".join(str(description).split())
    parts = [ICL_INSTRUCTION.format(concepts=", ".join(names))]
    for i, (desc, response, answer) in enumerate(ICL_EXAMPLES, start=1):
        parts.append(f"Example {i}:\nDescription: {desc}\nResponse: {response}\nAnswer: {answer}")
    parts.append(f"Now your turn:\nDescription: {description}\nResponse:")
    return "\n\n".join(parts)


def _line(text: str) -> str:
    return " ".join(str(text).split())


def build_judge_prompt(kind: str, explanation: str, captions: Sequence[str]) -> str:
    """``detection`` / ``simulation`` + an explanation (one line) + n captions -> the prompt, ending 'Answer:'."""
    if kind not in JUDGE_TASKS:
        raise PromptError(f"build_judge_prompt: kind must be one of {list(JUDGE_TASKS)}, got {kind!r}")
    if not _line(explanation) or not captions or any(not _line(c) for c in captions):
        raise PromptError("build_judge_prompt: an explanation and non-empty captions are needed")
    clips = "\n".join(f"Clip {i}: {_line(c)}" for i, c in enumerate(captions, start=1))
    return f"{JUDGE_HEAD} {JUDGE_TASKS[kind]}\nExplanation: {_line(explanation)}\n{clips}\nAnswer:"


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt recognised by its template: kind in {summary, icl, adjective, detection, simulation} and its
    fields (a judge prompt's explanation is in ``description``)."""

    kind: str
    captions: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    description: str = ""
    adjective: str = ""


_ADJ_RE = re.compile(  # the adjective may hold a quote ("man's"): the template's fixed text around it delimits it
    "^" + re.escape(ADJECTIVE_TEMPLATE).replace(re.escape("{adjective}"), "(?P<adj>.+)") + "$"
)
_ICL_HEAD = ICL_INSTRUCTION.split("[", 1)[0]


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Recognise a prompt built by this module (inverse of the builders); PromptError otherwise."""
    if prompt.startswith(SUMMARY_INSTRUCTION + "\n"):
        body = prompt[len(SUMMARY_INSTRUCTION) + 1 :].splitlines()
        caps = tuple(re.sub(r"^\d+\.\s*", "", line).strip() for line in body if line.strip())
        return ParsedPrompt("summary", captions=caps)
    m = _ADJ_RE.match(prompt.strip())
    if m:
        return ParsedPrompt("adjective", adjective=m.group("adj"))
    for kind, task in JUDGE_TASKS.items():
        if prompt.startswith(f"{JUDGE_HEAD} {task}\n"):
            lines = prompt.splitlines()[1:]
            explanation = lines[0].removeprefix("Explanation: ") if lines else ""
            caps = tuple(re.sub(r"^Clip \d+: ", "", line) for line in lines[1:] if re.match(r"^Clip \d+: ", line))
            return ParsedPrompt(kind, captions=caps, description=explanation)
    if prompt.startswith(_ICL_HEAD):
        concepts = prompt[len(_ICL_HEAD) + 1 :].split("]", 1)[0]
        desc = prompt.rsplit("Now your turn:\nDescription: ", 1)[-1].rsplit("\nResponse:", 1)[0]
        return ParsedPrompt("icl", concepts=tuple(c.strip() for c in concepts.split(",")), description=desc)
    raise PromptError(f"unrecognised prompt (not built by and_engine.text.prompts): {prompt[:80]!r}")


def parse_icl_answer(text: str) -> str:
    """An ICL answer -> the text after the last 'Answer:' (first line, quotes stripped); '' if none."""
    idx = text.lower().rfind("answer:")
    if idx < 0:
        return ""
    line = text[idx + len("answer:") :].strip().splitlines()
    return line[0].strip().strip("'\"‘’“”.* ").strip() if line else ""


def parse_yes_no(text: str) -> bool | None:
    """An adjective answer -> True (yes), False (no), or None when it says neither first."""
    m = re.search(r"\b(yes|no)\b", text.lower())
    return None if m is None else m.group(1) == "yes"


_LIST = re.compile(r"\[([^\[\]]*)\]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CLIP_LINE = re.compile(r"clip\s*(\d+)\s*[:=\-]\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_number_list(text: str, n: int, low: float, high: float) -> list[float] | None:
    """A judge's answer -> n numbers in [low, high], or None when it holds no such answer (a malformed answer).

    Read after the last 'Answer:' if there is one: the last bracketed list of n numbers, else n 'Clip i: v'
    lines, else the text's numbers when there are exactly n."""
    text = str(text or "")
    idx = text.lower().rfind("answer:")
    tail = text[idx + len("answer:"):] if idx >= 0 else text
    candidates = [[float(x) for x in _NUMBER.findall(m)] for m in _LIST.findall(tail)][::-1]
    lines = {int(i): float(v) for i, v in _CLIP_LINE.findall(tail)}
    if sorted(lines) == list(range(1, n + 1)):
        candidates.append([lines[i] for i in range(1, n + 1)])
    candidates.append([float(x) for x in _NUMBER.findall(tail)])
    for values in candidates:
        if len(values) == n and all(low <= v <= high for v in values):
            return values
    return None
