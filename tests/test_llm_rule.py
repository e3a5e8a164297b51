"""The embedded rule LLM: summaries of shared properties, ICL answers, adjective judgements."""

from __future__ import annotations

import re

import pytest
from _describe_fixtures import CAPTIONS

from and_engine.backends.llm import LLMConfigError, make_llm
from and_engine.backends.prompts import (
    PromptError,
    build_adjective_prompt,
    build_icl_prompt,
    build_summary_prompt,
    parse_icl_answer,
    parse_yes_no,
)
from and_engine.config import LLMConfig


@pytest.fixture(scope="module")
def rule():
    return make_llm(LLMConfig(backend="rule"))


def test_summary_names_shared_sources_and_descriptors_with_counts(rule):
    answer = rule.generate([build_summary_prompt(CAPTIONS)])[0]
    lines = answer.splitlines()
    assert re.match(r"1\. Common sound sources: .*dog \(4 of the 5 clips\)", lines[0])
    assert "loud (4 of the 5 clips)" in answer and "repetitive (2 of the 5 clips)" in answer
    assert "engine" not in answer  # said by one caption only: not a commonality
    assert all(re.match(r"\d+\. ", ln) for ln in lines[:-1]) and lines[-1].startswith("Overall")


def test_summary_without_commonality_says_so(rule):
    answer = rule.generate([build_summary_prompt(["A cat meows.", "Heavy rain falls on a roof."])])[0]
    assert answer.startswith("1. No clear commonality")


def test_summary_is_deterministic_and_batched(rule):
    prompts = [build_summary_prompt(CAPTIONS), build_summary_prompt(CAPTIONS[:2])]
    assert rule.generate(prompts) == rule.generate(prompts) and len(rule.generate(prompts)) == 2


def test_icl_picks_the_mentioned_concept(rule):
    desc = "1. Common sound sources: the clips feature church bells (3 of the 5 clips). They ring loudly."
    answer = rule.generate([build_icl_prompt(["dog", "church bells", "rain"], desc)])[0]
    assert parse_icl_answer(answer) == "church bells" and answer.endswith("Answer: church bells")
    multi = rule.generate([build_icl_prompt(["door wood knock", "dog"], "A dog barks; a dog again.")])[0]
    assert parse_icl_answer(multi) == "dog"


def test_icl_without_any_match_still_answers_from_the_set(rule):
    answer = rule.generate([build_icl_prompt(["dog", "rain"], "Something unclear.")])[0]
    assert parse_icl_answer(answer) == "dog" and "guess" in answer


@pytest.mark.parametrize("adjective, yes", [
    ("loud", True), ("louder", True), ("high-pitched", True), ("ear-piercing", True), ("eerie", True),
    ("noisier", True), ("red", False), ("other", False), ("running", False), ("wooden", True),
])
def test_adjective_judgement_from_lexicon(rule, adjective, yes):
    answer = rule.generate([build_adjective_prompt(adjective)])[0]
    assert parse_yes_no(answer) is yes and f"'{adjective}'" in answer


def test_unknown_prompt_is_a_clear_error(rule):
    with pytest.raises(PromptError, match="unrecognised prompt"):
        rule.generate(["What is the capital of France?"])


def test_describe_and_factory_errors(rule):
    assert rule.describe()["backend"] == "rule" and rule.describe()["model"].startswith("rule-")
    with pytest.raises(LLMConfigError, match="unknown backend 'gpt'"):
        make_llm(LLMConfig(backend="gpt"))
    with pytest.raises(LLMConfigError, match="sampling"):
        make_llm(LLMConfig(backend="transformers", model="x", top_p=0.0))
