"""Live scores (explorer/live_scores): a new explanation of one neuron is scored on the spot by the scores stage's
own functions, so a stored explanation scored live gets its stored scores (up to a tie split by float rounding)."""

from __future__ import annotations

import numpy as np
from fakes import fixture_scorers

from and_engine.explorer.live_scores import score_texts
from and_engine.stages.scores import COLUMNS
from and_engine.store.results import ResultsStore

LAYERS = ("block1.conv", "block2.fc")


def test_stored_explanations_scored_live_get_their_stored_scores(app_db):
    with ResultsStore(app_db, read_only=True) as db:
        scorers = fixture_scorers(db)
        checked = same = 0
        for layer in LAYERS:
            for neuron in (0, 3, 7):
                expl = db.read("explanations", ["source", "explanation"], model="tinynet", layer=layer, neuron=neuron)
                texts = dict(zip(expl["source"], expl["explanation"]))
                live = score_texts(db, scorers, "tinynet", layer, neuron, texts)
                stored = db.read("explanation_scores", ["source", "scorer", "auc", "pearson_r", "n_clips"],
                                 model="tinynet", layer=layer, neuron=neuron)
                both = stored.merge(live, on=["source", "scorer"], suffixes=("_stored", "_live"))
                assert len(both) == 2 * len(expl) and len(expl) >= 4
                np.testing.assert_allclose(both["pearson_r_live"], both["pearson_r_stored"], atol=1e-6, equal_nan=True)
                # an exact tie counts 1/2 in the AUC; float rounding of a product over other shapes can split one
                np.testing.assert_allclose(both["auc_live"], both["auc_stored"], atol=0.01, equal_nan=True)
                assert (both["n_clips_live"] == both["n_clips_stored"]).all()
                same += int(np.isclose(both["auc_live"], both["auc_stored"], atol=1e-9, rtol=0).sum())
                checked += len(both)
    assert checked >= 40 and same >= 0.9 * checked


def test_a_text_naming_the_neurons_class_beats_another_class_and_no_scoring_set_gives_no_rows(app_db):
    with ResultsStore(app_db, read_only=True) as db:
        scorers = fixture_scorers(db)
        live = score_texts(db, scorers, "tinynet", "block1.conv", 3, {
            "right": "The crackling fire is heard in every clip.", "wrong": "A cow moos in every clip.", "blank": " "})
        assert set(live["source"]) == {"right", "wrong"} and list(live.columns) == COLUMNS  # blank: no explanation
        auc = live.pivot(index="source", columns="scorer", values="auc")
        assert (auc.loc["right"] > 0.7).all() and (auc.loc["wrong"] < auc.loc["right"]).all()
        none = score_texts(db, scorers, "tinynet", "no-such-layer", 3, {"right": "fire"})
        assert none.empty and list(none.columns) == COLUMNS
