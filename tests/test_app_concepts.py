"""Concepts page: adjective histograms per scope, search with neuron links, word clouds, elbow curve."""

from __future__ import annotations

import pytest
from _app_pages import chart_data, chart_titles, run_page


@pytest.fixture(autouse=True)
def db(app_db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    return app_db


def test_histograms_clouds_and_elbow(db):
    at = run_page("pages/concepts.py")
    assert not at.exception
    assert chart_titles(at) == ["adjectives (all models)", "elbow curve"]
    assert len(at.image) == 7  # the adjective bars, one word cloud per cluster (5), the elbow curve
    from and_engine.explorer import aggregates
    from and_engine.store.results import ResultsStore

    with ResultsStore(db, read_only=True) as store:
        hist = aggregates.adjective_histogram(store, None, None, n=30)
    bars = chart_data(at, "adjectives (all models)")  # every adjective of the histogram, most frequent first
    assert bars[["adjective", "n_neurons"]].values.tolist() == hist[["adjective", "n_neurons"]].values.tolist()
    assert chart_data(at, "elbow curve")["k"].is_monotonic_increasing
    at.radio(key="cc_scope").set_value("one layer").run()
    at.selectbox(key="cc_layer_tinynet").set_value("classifier").run()
    assert not at.exception
    assert chart_titles(at)[0] == "adjectives (tinynet / classifier)"


def test_the_headline_counts_the_selections_adjectives_and_neurons(db):
    from and_engine.store.results import ResultsStore

    with ResultsStore(db, read_only=True) as store:
        adj = store.query_df('SELECT model, layer, neuron, word FROM "open_concepts" WHERE pos = ?', ["ADJ"])
    at = run_page("pages/concepts.py")
    for scope, rows in (("all neurons", adj), ("one layer", adj[adj["layer"] == "classifier"])):
        if scope != "all neurons":
            at.radio(key="cc_scope").set_value(scope).run()
            at.selectbox(key="cc_layer_tinynet").set_value("classifier").run()
        assert not at.exception
        n_neurons = len(rows.drop_duplicates(["model", "layer", "neuron"]))
        top = rows.groupby("word")["neuron"].size().sort_values(ascending=False)
        assert 0 < n_neurons and rows["word"].nunique() > 3
        headline = at.markdown[0].value
        assert headline.startswith(f"**{rows['word'].nunique():,} distinct adjectives** in the calibrated summaries "
                                   f"of **{n_neurons:,} neurons**")
        assert f"({top.iloc[0]:,} neurons)" in headline


def test_search_lists_neurons_with_links(db):
    at = run_page("pages/concepts.py")
    at.text_input(key="cc_term").input("cow").run()
    assert not at.exception
    hits = at.dataframe[0].value
    assert set(hits["matched_by"]) >= {"closed:DB/cos", "open:noun"}
    assert set(hits["match"].str.lower()) <= {"cow"}
    links = [link.proto for link in at.get("page_link")]
    assert links and all(link.page == "neuron" and "model=tinynet" in link.query_string for link in links)
    at.text_input(key="cc_term").input("zzzz-nothing").run()
    assert "0 match(es)" in at.caption[0].value
