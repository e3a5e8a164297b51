"""POS taggers: tokenisation, Penn tags, and the adjective accuracy check behind the ``auto`` choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from and_engine.backends.registry import TaggerError, make
from and_engine.text.words import adjective_scores, tokenize

GOLD = Path(__file__).parent / "data" / "adjective_gold.tsv"


def gold_set() -> tuple[list[str], list[set[str]]]:
    rows = [ln.rstrip("\n").split("\t") for ln in GOLD.read_text().splitlines() if ln and not ln.startswith("#")]
    return [r[0] for r in rows], [set(r[1].split(",")) for r in rows]


@pytest.fixture(scope="module")
def spacy_tagger():
    return make("pos_tagger", "spacy")


def test_tokenize_keeps_hyphenated_compounds_and_contractions():
    toks = tokenize("A high-pitched, high-quality tone isn't loud.")
    assert toks == ["A", "high-pitched", ",", "high-quality", "tone", "isn't", "loud", "."]


def test_gold_set_is_large_enough():
    sentences, gold = gold_set()
    assert len(sentences) >= 40 and sum(map(len, gold)) >= 80
    for s, adjs in zip(sentences, gold):  # every labelled adjective is a token of its sentence
        assert adjs <= {t.lower() for t in tokenize(s)}, s


def test_spacy_tagger_adjective_accuracy_beats_textblob(spacy_tagger):
    sentences, gold = gold_set()
    spacy = adjective_scores(spacy_tagger, sentences, gold)
    textblob = adjective_scores(make("pos_tagger", "textblob"), sentences, gold)
    assert spacy["f1"] >= 0.95 and spacy["accuracy"] >= 0.98
    assert spacy["f1"] > textblob["f1"]
    assert "audio" in textblob["spurious"]  # textblob's lexicon tags the noun "audio" as an adjective


def test_taggers_return_penn_tags_one_per_token(spacy_tagger):
    toks = tokenize("The loud dog is barking at the clear, high-pitched siren.")
    for tagger in (spacy_tagger, make("pos_tagger", "textblob")):
        tags = tagger.tag_batch([toks, []])
        assert len(tags[0]) == len(toks) and tags[1] == []
        assert tags[0][toks.index("dog")] == "NN" and tags[0][toks.index("high-pitched")] == "JJ"
        assert tagger.describe()["backend"] in ("spacy", "textblob")


def test_auto_picks_an_installed_tagger_and_unknown_names_fail():
    assert make("pos_tagger", "auto").describe()["backend"] in ("nltk", "spacy")
    with pytest.raises(TaggerError, match="unknown tagger"):
        make("pos_tagger", "stanza")
