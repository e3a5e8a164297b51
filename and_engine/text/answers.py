"""Cleaning LLM answers: chatter removal and robust handling of empty, garbage and truncated text.

``clean_answer(text) -> (cleaned, status)`` never raises. ``status`` is one of ``ANSWER_STATUSES``:
``ok``; ``truncated`` (a cut-off trailing fragment was dropped); ``empty`` (nothing left after cleaning);
``garbage`` (mostly non-text or one token repeated; stored as ""). An unusable answer is stored as the
empty string with its status, so downstream modules see "no summary" rather than noise.
``is_no_answer(answer)`` says whether a (closed-set) answer names nothing: "none", "unknown", "N/A", "".
"""

from __future__ import annotations

import re
import unicodedata

ANSWER_STATUSES = ("ok", "truncated", "empty", "garbage")

# Whole lines (or leading sentences) that are an assistant's chatter, not content (SPEC section 5).
_CHATTER_LINE = re.compile(
    r"^\s*(sure|certainly|of course|absolutely|okay|ok|great|hello|hi)\b[^\n]*?(here|summar|happy|glad|help)"
    r"[^\n]*?[:!.]\s*$"
    r"|^\s*(here (is|are)|below (is|are))\b[^\n]*?(summar|commonalit|answer|points?)[^\n]*[:.]\s*$"
    r"|^\s*(i hope (this|that) helps|let me know|feel free to|please let me know|is there anything else|"
    r"i'?d be happy to|i am happy to|i'm happy to|as an ai)\b[^\n]*$",
    re.IGNORECASE,
)
_CHATTER_SENTENCE = re.compile(
    r"(\s*(I hope (this|that) helps|Let me know if|Feel free to|Is there anything else|"
    r"Please let me know)[^.!?\n]*[.!?]?)+\s*$",
    re.IGNORECASE,
)
_LEADING_SURE = re.compile(r"^\s*(Sure|Certainly|Of course|Absolutely)[!,.]\s*", re.IGNORECASE)
_TERMINAL = ".!?)\"'”’:;"
_FRAGMENT = re.compile(r"^(.*[.!?])\s+([^.!?]+)$")  # complete sentence(s) + an unfinished one
_FUNCTION_WORDS = frozenset(("a an the of to in on at by for with and or but as from that which is are was were be "
                             "its their this these those than then very").split())


_NO_ANSWER = re.compile(
    r"^(none|nothing|unknown|unclear|uncertain|n/?a|no answer|no (suitable |matching )?(class|classname|concept)s?"
    r"|no match|not sure|none of (the|them|these)|(it )?cannot be determined|(i )?cannot (tell|determine|say)"
    r"|(i )?can'?t (tell|determine|say)|(i )?(do not|don'?t) know)\b",
    re.IGNORECASE,
)


def is_no_answer(answer: str) -> bool:
    """A closed-set answer (the text after "Answer:") -> True when it names nothing: empty, "none",
    "unknown", "N/A", "no suitable classname", "cannot determine", "I don't know"."""
    text = str(answer or "").strip().strip("'\"*.()[]").strip()
    return not text or bool(_NO_ANSWER.match(text))


def strip_chatter(text: str) -> str:
    """Drop greeting / sign-off lines and sentences an assistant adds around the content."""
    lines = [ln for ln in text.splitlines() if not _CHATTER_LINE.match(ln)]
    out = "\n".join(lines).strip()
    out = _CHATTER_SENTENCE.sub("", out).strip()
    return _LEADING_SURE.sub("", out).strip()


def _is_garbage(text: str) -> bool:
    letters = sum(ch.isalpha() for ch in text)
    visible = sum(not ch.isspace() for ch in text)
    if visible == 0 or letters / visible < 0.5:
        return True
    words = re.findall(r"[a-z']+", text.lower())
    return len(words) >= 8 and len(set(words)) <= max(2, len(words) // 10)


def _printable(text: str) -> str:
    """Remove control / private-use / replacement characters, normalise spaces within lines."""
    keep = []
    for ch in unicodedata.normalize("NFC", text):
        cat = unicodedata.category(ch)
        if ch == "\n" or (cat[0] != "C" and ch != "\ufffd"):
            keep.append(ch)
        elif ch == "\t":
            keep.append(" ")
    lines = [" ".join(ln.split()) for ln in "".join(keep).splitlines()]
    return "\n".join(ln for ln in lines if ln)


def clean_answer(text: str | None) -> tuple[str, str]:
    """Raw answer -> (cleaned text, status in ANSWER_STATUSES); never raises."""
    if not isinstance(text, str):
        return "", "empty"
    had_content = bool(text.strip())
    text = _printable(text)
    if not text:
        return "", "garbage" if had_content else "empty"
    if _is_garbage(text):
        return "", "garbage"
    text = strip_chatter(text)
    if not text:
        return "", "empty"
    status = "ok"
    # A cut-off answer ends mid-sentence: drop a trailing fragment that is short or ends on a function word.
    lines = text.splitlines()
    last = lines[-1]
    if last[-1] not in _TERMINAL:
        words = last.split()
        dangling = words[-1].lower().strip(",;-") in _FUNCTION_WORDS
        m = _FRAGMENT.match(last)
        punctuated = any(ln[-1] in _TERMINAL for ln in lines[:-1])  # the other lines end properly
        if len(lines) > 1 and ((len(words) <= 3 and punctuated) or dangling):
            lines, status = lines[:-1], "truncated"
        elif m and len(m.group(1).split()) > 2 and (len(m.group(2).split()) <= 3 or dangling):
            lines[-1], status = m.group(1), "truncated"
        elif dangling:
            status = "truncated"
    return "\n".join(lines).strip(), status
