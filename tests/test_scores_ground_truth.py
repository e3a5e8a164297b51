"""Ground truth: naming a label in a text, the label-words table, majority labels, the rates, and the rule that no
captioner or summariser ever reads the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_import_cycles import import_graph

from and_engine.config import PROJECT_ROOT
from and_engine.stages.ground_truth import caption_truth, explanation_truth, neuron_truth, truth_rates
from and_engine.text.labels import LabelWordsError, label_terms, names_label, read_label_words

TABLE = PROJECT_ROOT / "benchmarks" / "label_words.csv"


def test_a_label_is_named_by_all_its_words_as_stems_or_by_a_term_of_the_table():
    table = read_label_words(TABLE)
    assert names_label("Some chirping birds can be heard.", label_terms("chirping_birds"))
    assert not names_label("Birds can be heard.", label_terms("chirping_birds"))  # the label alone needs both
    assert names_label("Birds can be heard.", label_terms("chirping_birds", table))  # the table adds "bird"
    assert names_label("The ocean crashes.", label_terms("sea_waves", table))
    assert names_label("A chicken clucks.", label_terms("hen", table))
    assert not names_label("A dog barks.", label_terms("hen", table)) and not names_label("", label_terms("hen"))
    assert not names_label("It can be heard.", label_terms("can_opening", table))  # "can" alone names nothing
    # a road vehicle is not its engine: AudioSet's "Motor vehicle (road)" in a caption names no engine
    assert not names_label("It possibly also contains car and motor vehicle.", label_terms("engine", table))
    assert names_label("It possibly also contains idling engine.", label_terms("engine", table))


def test_the_label_words_table_covers_the_demo_labels_and_bad_files_are_refused(tmp_path):
    table = read_label_words(TABLE)
    demo = set(pd.read_csv(PROJECT_ROOT / "data" / "demo" / "meta.csv")["label"])
    assert demo <= set(table)
    bad = tmp_path / "bad.csv"
    bad.write_text("label,synonyms\nhen,chicken\n")
    with pytest.raises(LabelWordsError, match="header"):
        read_label_words(bad)
    bad.write_text("label,words\nhen,\n")
    with pytest.raises(LabelWordsError, match="bad.csv:2"):
        read_label_words(bad)
    with pytest.raises(LabelWordsError, match="not found"):
        read_label_words(tmp_path / "missing.csv")


def test_no_captioner_or_summariser_module_can_read_the_label_words():
    """Captions and summaries must never see the labels: no module that writes them imports, directly or through
    other modules, the label matcher or the ground-truth stage, and none names the table's file."""
    graph = import_graph(PROJECT_ROOT, "and_engine")
    writers = [m for m in graph if m.startswith(("and_engine.backends.captioner", "and_engine.backends.llm"))
               or m in ("and_engine.stages.captions", "and_engine.stages.summaries", "and_engine.text.rule_phrases",
                        "and_engine.pipeline.steps_describe")]
    assert len(writers) >= 8
    for module in writers:
        seen, todo = set(), [module]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert not seen & {"and_engine.text.labels", "and_engine.stages.ground_truth"}, module
        path = PROJECT_ROOT / (module.replace(".", "/") + ".py")
        assert "label_words" not in path.read_text(), module


def _toy():
    clips = pd.DataFrame({"clip_id": range(8), "label": ["hen", "hen", "hen", "hen", "cow", "cow", "rain", "rain"]})
    captions = pd.DataFrame({"clip_id": range(8), "caption": [
        "A chicken clucks.", "A chicken clucks loudly.", "Chickens and a dog.", "Noise.", "Cattle moo.", "Silence.",
        "Rain falls.", "Water."]})
    extremes = pd.DataFrame({"neuron": [0, 1, 2], "topk_clip_ids": [[0, 1, 2, 3, 4], [4, 6, 5, 7, 0], [6, 4, 5, 7, 1]]})
    return clips, captions, extremes


def test_caption_and_neuron_truth_and_the_rates_of_a_layer():
    table = {"hen": ("chicken",), "cow": ("cattle",)}
    clips, captions, extremes = _toy()
    caps = caption_truth(clips, captions, table)
    assert caps["names_label"].tolist() == [True, True, True, False, True, False, True, False]
    truth = neuron_truth(extremes, clips, captions, table, model="m", layer="l")
    assert truth["majority_label"].tolist() == ["hen", "cow", "rain"]  # neuron 1: cow and rain tie, cow ranks first
    assert truth["purity"].tolist() == [0.8, 0.4, 0.4] and truth["n_naming_captions"].tolist() == [3, 1, 1]
    expl = pd.DataFrame({"model": "m", "layer": "l", "neuron": [0, 0, 1, 2], "source": ["S_h", "DB/cos", "S_h", "S_h"],
                         "explanation": ["Chickens cluck in three clips.", "cow", "Cattle low.", "Dry wind."]})
    named = explanation_truth(expl, truth, table)
    assert named["names_majority"].tolist() == [True, False, True, False]
    rates = truth_rates(truth, named, extremes, caps, 5, model="m", layer="l").set_index(["measure", "source"])
    assert rates.loc[("captions_name_label", ""), ["hits", "total"]].tolist() == [10, 15]
    assert rates.loc[("names_majority", "S_h"), ["hits", "total"]].tolist() == [2, 3]
    # only neuron 0 is 4/5 one label with 3 captions naming it
    assert rates.loc[("names_majority_where_captions_do", "S_h"), ["hits", "total"]].tolist() == [1, 1]
    assert rates.loc[("names_majority_where_captions_do", "DB/cos"), "rate"] == 0.0
    assert np.isnan(truth_rates(truth, named.iloc[:0], extremes.iloc[:0], caps, 5, model="m", layer="l")["rate"][0])
