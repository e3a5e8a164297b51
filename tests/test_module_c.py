"""Module C: adjective extraction with negation skip, POS counts, rule + LLM filters, open concepts."""

from __future__ import annotations

import pandas as pd
import pytest
from fakes import LexiconTagger, ScriptedLLM

from and_engine.stages.module_c import check_adjectives, is_negated, open_concepts, pos_counts, tag_words
from and_engine.text.prompts import parse_prompt
from and_engine.text.words import tokenize

BASIC = ("high-pitched", "high-quality", "clear", "loud")


def test_negation_window_is_four_tokens():
    toks = tokenize("not a very very loud dog")  # "loud" has "not" 4 tokens before it
    assert is_negated(toks, toks.index("loud"))
    toks = tokenize("not a very very very loud dog")  # 5 tokens before: outside the window
    assert not is_negated(toks, toks.index("loud"))
    toks = tokenize("it isn't loud")
    assert is_negated(toks, toks.index("loud"))
    toks = tokenize("no echo. Loud dogs")  # the window does not cross a sentence end
    assert not is_negated(toks, toks.index("Loud"))


def test_tag_words_skips_negated_adjectives_and_counts_pos():
    cal = pd.DataFrame({"neuron": [0, 1], "calibrated_summary": [
        "The dog is barking with a loud, high-pitched tone and no clear echo. Other dogs are muffled.",
        "",
    ]})
    words, counts = tag_words(cal, LexiconTagger(), BASIC)
    w0 = words[words["neuron"] == 0].set_index("word")
    assert w0.loc["loud", "pos"] == "ADJ" and w0.loc["high-pitched", "pos"] == "ADJ"
    assert w0.loc["muffled", "pos"] == "ADJ"  # VBN counts as an adjective (the paper's code)
    assert "clear" not in w0.index  # "no" within 4 tokens before it
    assert "other" not in w0.index  # rule filter (generic word)
    assert w0.loc["dog", "pos"] == "NOUN" and w0.loc["dogs", "pos"] == "NOUN"
    assert "echo" not in w0.index  # negated noun ("no clear echo") is not an open concept
    c0 = counts.set_index("neuron").loc[0]
    assert c0["n_adjectives"] == 4  # loud, high-pitched, other, muffled (clear is negated)
    assert c0["n_basic_adjectives"] == 2  # loud, high-pitched
    assert c0["n_nouns"] == 4  # dog, tone, echo, dogs (POS counts ignore negation)
    assert c0["n_verbs"] == 3 and c0["n_prepositions"] == 1  # is, barking, are; with
    assert c0["summary_words"] == 17
    assert counts.set_index("neuron").loc[1].tolist() == [0, 0, 0, 0, 0, 0]


def test_llm_filter_asks_once_per_unique_adjective_and_open_concepts_keep_accepted_ones():
    llm = ScriptedLLM(lambda p: "No, it describes motion." if parse_prompt(p).adjective == "running"
                      else "Yes. It describes sound.")
    checks = check_adjectives(["loud", "running", "loud", "sharp"], llm)
    assert len(llm.prompts) == 3 and checks["adjective"].tolist() == ["loud", "running", "sharp"]
    assert checks["accepted"].tolist() == [True, False, True]
    cal = pd.DataFrame({"neuron": [4], "calibrated_summary": ["A loud dog and a running dog, loud and sharp."]})
    words, counts = tag_words(cal, LexiconTagger(), BASIC)
    oc = open_concepts(words, checks, model="m", layer="l")
    assert list(oc.columns) == ["model", "layer", "neuron", "word", "pos", "count"]
    assert set(zip(oc["word"], oc["pos"], oc["count"])) == {("loud", "ADJ", 2), ("sharp", "ADJ", 1),
                                                            ("dog", "NOUN", 2)}
    pc = pos_counts(counts, words, checks, model="m", layer="l")
    assert pc.loc[0, "n_open_adjectives"] == 3 and pc.loc[0, "n_adjectives"] == 4
    unfiltered = open_concepts(words, None, model="m", layer="l")
    assert "running" in set(unfiltered["word"])


def test_unanswerable_adjective_is_rejected_and_bad_input_raises():
    checks = check_adjectives(["loud"], ScriptedLLM(lambda p: "I cannot say."))
    assert checks["accepted"].tolist() == [False] and checks["answer"].tolist() == ["I cannot say."]
    with pytest.raises(ValueError, match="calibrated_summary"):
        tag_words(pd.DataFrame({"neuron": [0]}), LexiconTagger(), BASIC)
