"""Golden prompts (exact text) and the parsers of the prompt kinds and answers."""

from __future__ import annotations

import pytest
from _describe_fixtures import CAPTIONS

from and_engine.text.prompts import (
    PromptError,
    build_adjective_prompt,
    build_icl_prompt,
    build_summary_prompt,
    parse_icl_answer,
    parse_prompt,
    parse_yes_no,
)

GOLDEN_SUMMARY = (
    "Here are descriptions of some audio clips. Please summarize these descriptions by identifying their "
    "commonalities.\n"
    "1. A dog barks repeatedly in a loud, sharp way.\n"
    "2. A quiet hum of an engine, continuous and low."
)
GOLDEN_ADJECTIVE = (
    "Can the adjective 'high-pitched' be used to describe the tone, emotion, or acoustic features of audio, "
    "music, or any other form of sound? Answer yes or no and give the reason."
)


def test_summary_prompt_golden():
    assert build_summary_prompt([CAPTIONS[1], "  A quiet hum of an engine,\n continuous and low. "]) == GOLDEN_SUMMARY


def test_adjective_prompt_golden():
    assert build_adjective_prompt("high-pitched") == GOLDEN_ADJECTIVE


def test_icl_prompt_has_paper_instruction_and_two_examples():
    p = build_icl_prompt(["dog", "church bells"], "All clips feature barking.")
    assert p.startswith("You have a set of object classnames: [dog, church bells]\nThe following is a description "
                        "about some audio clips. Based on the description, select a classname out of the above "
                        "classnames that matches the description most.\n\nExample 1:\nDescription: The audio "
                        "features a car meowing")
    assert "\nAnswer: cat\n\nExample 2:" in p and "\nAnswer: snoring\n\n" in p
    assert p.endswith("Now your turn:\nDescription: All clips feature barking.\nResponse:")


def test_parse_prompt_roundtrips_every_kind():
    s = parse_prompt(build_summary_prompt(CAPTIONS))
    assert s.kind == "summary" and list(s.captions) == CAPTIONS
    a = parse_prompt(build_adjective_prompt("loud"))
    assert (a.kind, a.adjective) == ("adjective", "loud")
    i = parse_prompt(build_icl_prompt(["dog", "rain"], "Water falling."))
    assert (i.kind, i.concepts, i.description) == ("icl", ("dog", "rain"), "Water falling.")
    with pytest.raises(PromptError, match="unrecognised prompt"):
        parse_prompt("Tell me a joke.")


@pytest.mark.parametrize("bad", [[], ["fine", "   "]])
def test_summary_prompt_rejects_missing_captions(bad):
    with pytest.raises(PromptError):
        build_summary_prompt(bad)


def test_builders_reject_bad_names():
    with pytest.raises(PromptError):
        build_adjective_prompt("  ")
    assert parse_prompt(build_adjective_prompt("it's")).adjective == "it's"  # a quote is no reason to abort
    with pytest.raises(PromptError):
        build_icl_prompt(["a, b"], "x")


@pytest.mark.parametrize("text, expected", [
    ("Response: it is a dog.\nAnswer: dog", "dog"),
    ("answer: 'church bells'.\nmore text", "church bells"),
    ("Answer: x\nAnswer: **rain**", "rain"),
    ("no marker here", ""),
    ("Answer:", ""),
])
def test_parse_icl_answer(text, expected):
    assert parse_icl_answer(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Yes. It describes loudness.", True), ("No, it is a colour.", False), ("Maybe.", None),
    ("The answer is yes: ...", True), ("", None),
])
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) is expected
