"""Compare page (AppTest): one model says why there is nothing to compare; two models of the tiny build are
matched per layer pair with a threshold, matched pairs carry both explanations, Section 4.5 side by side."""

from __future__ import annotations

import pytest
from _app_pages import chart_titles, run_page


def test_one_model_says_what_is_unavailable_and_why(app_db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    at = run_page("pages/compare.py")
    assert not at.exception
    assert "holds one model (tinynet)" in at.warning[0].value and "two models" in at.warning[0].value


@pytest.mark.slow
def test_two_models_matched_by_correlation(tiny_build, monkeypatch):
    from and_engine.explorer import related
    from and_engine.store.results import ResultsStore

    path, config, _ = tiny_build
    monkeypatch.setenv("AND_EXPLORER_CONFIG", str(path))
    monkeypatch.delenv("AND_EXPLORER_DB", raising=False)
    at = run_page("pages/compare.py", timeout=120)
    assert not at.exception and not at.warning
    assert at.selectbox(key="cmp_a").value == "yamnet" and at.selectbox(key="cmp_b").value == "yamnet-frozen"
    titles = chart_titles(at)
    assert titles[0].startswith("share of yamnet's neurons with a partner (r ≥ 0.50)")
    assert "adjectives per neuron per block (Figure 5)" in titles and any("Figure 6" in t for t in titles)
    assert any(t.startswith("yamnet: top-20 rank-1 concepts") for t in titles)
    # yamnet-frozen is yamnet's own weights up to its head: block2.pointwise matches itself neuron for neuron
    best = at.dataframe[0].value.set_index("layer")
    assert best.loc["block2.pointwise", "other_layer"] == "block2.pointwise"
    assert best.loc["block2.pointwise", "share"] == 1.0
    pairs = at.dataframe[1].value
    assert len(pairs) == 50 and (pairs["correlation"] > 0.999).all()
    assert pairs["link_a"].iloc[0].startswith("neuron?model=yamnet&layer=block2.pointwise&neuron=")
    assert (pairs["calibrated_summary_a"] != "").any() and "top_concept_b" in pairs
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        counts = related.partner_counts(store, "yamnet", "yamnet-frozen", 0.99)
        partners = store.query_df('SELECT layer, neuron, correlation FROM "neuron_partners" WHERE model = ? AND '
                                  "other_model = ?", ["yamnet", "yamnet-frozen"])
    at.slider(key="cmp_threshold").set_value(0.99).run()
    assert not at.exception
    best = partners.groupby(["layer", "neuron"])["correlation"].max()  # each neuron once, its best layer of B
    n_matched, n_neurons = int((best >= 0.99).sum()), len(best)
    assert 0 < n_matched < n_neurons
    assert at.metric[0].value == f"{n_matched:,} of {n_neurons:,} ({n_matched / n_neurons:.0%})"
    shown = at.dataframe[0].value.set_index("layer")
    want = counts.sort_values("share", ascending=False, kind="stable").drop_duplicates("layer").set_index("layer")
    assert shown["n_matched"].to_dict() == want["n_matched"].to_dict()
    at.selectbox(key="cmp_a").set_value("yamnet-frozen").run()
    assert not at.exception and at.selectbox(key="cmp_b").value == "yamnet"
    assert len(at.get("download_button")) == 1
