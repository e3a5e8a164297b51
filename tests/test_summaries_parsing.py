"""Robust cleaning of LLM answers: chatter, empty, garbage and truncated text never crash the stage."""

from __future__ import annotations

import pytest

from and_engine.text.answers import clean_answer, strip_chatter


@pytest.mark.parametrize("raw, text, status", [
    ("Sure! Here are the commonalities:\n1. All clips are loud.\n2. Dogs bark.\nI hope this helps!",
     "1. All clips are loud.\n2. Dogs bark.", "ok"),
    ("Certainly! The clips all feature dogs barking loudly.", "The clips all feature dogs barking loudly.", "ok"),
    ("The clips are loud. Let me know if you need anything else.", "The clips are loud.", "ok"),
    ("", "", "empty"), (None, "", "empty"), ("   \n\t ", "", "empty"),
    ("I hope this helps!", "", "empty"),
    ("\x00\x01 ### !!! ***", "", "garbage"), ("\ufffd\ufffd\ufffd\ufffd", "", "garbage"),
    ("the the the the the the the the the the", "", "garbage"),
    ("1. All clips are loud.\n2. Dog", "1. All clips are loud.", "truncated"),
    ("They are all about dogs. They are all about the sound of a", "They are all about dogs.", "truncated"),
    ("All loud and the", "All loud and the", "truncated"),
    ("1. Dogs barking\n2. Loud sounds", "1. Dogs barking\n2. Loud sounds", "ok"),
    ("Loud\u200b clips\twith  dogs.", "Loud clips with dogs.", "ok"),
])
def test_clean_answer(raw, text, status):
    assert clean_answer(raw) == (text, status)


def test_strip_chatter_keeps_content_lines():
    text = "Here is a summary of the commonalities:\n1. Loud.\nOverall, the clips are loud."
    assert strip_chatter(text) == "1. Loud.\nOverall, the clips are loud."
