"""Scores in the app and the report: each explanation's scores on the neuron page (with what they mean), the
Overview's distributions and ground-truth rates, neuron lists sorted by score, ratings vs scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _app_fixture import SAE_LAYER
from _app_pages import chart_titles, run_page

from and_engine.explorer import humaneval, scores
from and_engine.store.results import ResultsStore

NEURON = {"model": "tinynet", "layer": "block1.conv", "neuron": "3"}


@pytest.fixture(autouse=True)
def db(app_db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    return app_db


def _frame(el) -> pd.DataFrame:
    v = el.value
    return v.data if hasattr(v, "data") else v


def test_the_neuron_page_shows_every_explanation_with_its_scores_and_what_they_mean(db):
    at = run_page("pages/neuron.py", NEURON)
    assert not at.exception
    table = next(_frame(d) for d in at.dataframe if "embedding auc" in _frame(d).columns)
    with ResultsStore(db, read_only=True) as store:
        stored = store.read("explanation_scores", model="tinynet", layer="block1.conv", neuron=3, scorer="embedding")
    assert set(table["source"]) == set(stored["source"]) >= {"S_h", "S_h^c", "DB/cos", "TAB/cos", "ICL", "shuffled"}
    got = table.set_index("source")["embedding auc"]
    np.testing.assert_allclose(got[stored["source"]].to_numpy(), stored["auc"].to_numpy())
    assert {"audio-text auc", "audio-text pearson_r", "names_majority"} <= set(table.columns)
    assert table.set_index("source").loc["S_h", "names_majority"]  # S_h names crackling fire
    from pages._shared import md

    captions = {c.value: c.proto.help for c in at.caption}
    line = next(v for v in captions if v.startswith(md("S_h scores: embedding AUC")))
    assert "0.5 = chance" in captions[line] and "shuffled" in captions[line]
    assert any(v.startswith(md("top-K majority label: crackling_fire (80%")) for v in captions)
    assert any(v.startswith(md("scores of the stored S_h^c")) for v in captions)


def test_the_overview_shows_score_distributions_by_source_and_the_ground_truth(db):
    at = run_page("pages/overview.py")
    assert not at.exception
    titles = chart_titles(at)
    assert "median embedding AUC per layer, by explanation" in titles
    assert any(t.startswith("embedding AUC of the neurons of") for t in titles)
    methods = next(_frame(d) for d in at.dataframe if "embedding AUC" in _frame(d).columns)
    assert methods["embedding AUC"].is_monotonic_decreasing  # best first
    assert methods.set_index("source").loc["S_h^c", "embedding AUC"] > methods.set_index("source").loc[
        "shuffled", "embedding AUC"]
    assert any(m.label == "captions that name their clip's label" for m in at.metric)
    truth = next(_frame(d) for d in at.dataframe if "neurons" in _frame(d).columns and "S_h" in _frame(d).columns)
    assert list(truth["layer"]) == ["block1.conv", SAE_LAYER, "block2.fc", "classifier"]  # an SAE's features too
    links = [link.proto for link in at.get("page_link")]
    assert len(links) == 8 and all("model=tinynet" in link.query_string for link in links)  # block1.conv: 8 neurons
    at.selectbox(key="sc_scorer").set_value("detection").run()
    at.selectbox(key="sc_metric_detection").set_value("balanced_accuracy").run()
    assert not at.exception
    assert "median detection balanced accuracy per layer, by explanation" in chart_titles(at)
    at.radio(key="gt_measure").set_value("names_majority_where_captions_do").run()
    assert not at.exception


def test_the_concepts_search_sorts_the_neurons_found_by_a_score(db):
    at = run_page("pages/concepts.py")
    at.text_input(key="cc_term").input("fire").run()
    at.selectbox(key="cc_sort").set_value("S_h^c embedding AUC").run()
    assert not at.exception
    hits = _frame(at.dataframe[0])
    got = hits["S_h^c embedding AUC"]
    assert got.notna().any() and got.dropna().is_monotonic_decreasing and "score" in hits  # the concept's own too


def test_ratings_correlate_with_the_scores_of_the_explanation_that_was_rated(db):
    with ResultsStore(db, read_only=True) as store:
        keys = pd.DataFrame({"model": "tinynet", "layer": "block2.fc", "neuron": range(12)})
        got = scores.scores_for(store, keys)
    auc = got[(got["scorer"] == "embedding") & (got["source"] == "S_h^c")].set_index("neuron")["auc"]
    ratings = pd.DataFrame({"rater": "r", "model": "tinynet", "layer": "block2.fc", "neuron": auc.index,
                            "method": "SUMMARY", "rating": 10 * auc.to_numpy()})
    corr = humaneval.score_correlations(ratings, got).set_index(["method", "scorer", "metric"])
    assert corr.loc[("all", "embedding", "auc"), "spearman_rho"] == pytest.approx(1.0)  # ratings in the AUC's order
    assert corr.loc[("SUMMARY", "embedding", "auc"), "n"] == len(auc)
    assert humaneval.rated_source("DB", {"DB/cos", "DB/wpmi"}) == "DB/wpmi"  # the one the page showed
    assert humaneval.rated_source("TAB", {"DB/cos"}) is None
    assert humaneval.score_correlations(ratings.iloc[:0], got).empty


def test_the_report_prints_which_method_explains_best(db):
    from and_engine.report import format_report

    with ResultsStore(db, read_only=True) as store:
        text = format_report(store)
        table = scores.method_table(store, "tinynet")
    assert "Which method explains best" in text and "Captions that name their clip's label: 57 / 57 = 100 %" in text
    assert list(table.columns[:3]) == ["source", "embedding AUC", "embedding r"]
    block = text.split("Which method explains best", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block[1].split()[0] == "explanation" and block[3].split()[0] == table["source"].iloc[0]
