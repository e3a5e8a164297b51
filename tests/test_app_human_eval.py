"""Human evaluation page: blind stable order, ratings saved at once, Table 3 results and CSV export."""

from __future__ import annotations

import pytest
from _app_pages import run_page

from and_engine.store.ratings import RatingsStore


@pytest.fixture
def env(app_db, tmp_path, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    monkeypatch.setenv("AND_EXPLORER_RATINGS", str(tmp_path / "ratings.duckdb"))
    return tmp_path / "ratings.duckdb"


def _descriptions(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**Description")]


def test_rate_a_neuron_and_see_table3(env):
    at = run_page("pages/human_eval.py")
    assert not at.exception
    assert "Enter a rater name" in at.info[0].value
    at.text_input(key="he_rater").input("ann").run()
    shown = _descriptions(at)
    assert len(shown) == 3 and len(at.get("audio")) == 5
    again = run_page("pages/human_eval.py")
    again.text_input(key="he_rater").input("ann").run()
    assert _descriptions(again) == shown  # blind order is stable for a rater and neuron
    at.form_submit_button[0].click().run()
    assert "Please rate description(s) [1, 2, 3]" in at.warning[0].value
    for i, score in enumerate((5, 3, 1)):
        at.radio(key=f"he_score_{i}").set_value(score)
    at.text_area(key="he_own").input("the clips share crackling fire sounds")
    at.form_submit_button[0].click().run()
    assert not at.exception
    store = RatingsStore(env)
    saved = store.ratings()
    assert sorted(saved["rating"]) == [1, 3, 5] and set(saved["method"]) == {"DB", "TAB", "SUMMARY"}
    assert set(saved["results_run_id"]) == {"fixture-run"}
    assert store.summaries()["text"].tolist() == ["the clips share crackling fire sounds"]
    rated = (saved["model"].iloc[0], saved["layer"].iloc[0], int(saved["neuron"].iloc[0]))
    assert "neuron " + " / ".join(map(str, rated)) not in at.caption[0].value  # moved on to the next neuron
    table = at.dataframe[0].value.data if hasattr(at.dataframe[0].value, "data") else at.dataframe[0].value
    table = table.set_index("method")
    assert table.loc["SUMMARY", "n_ratings"] == 1 and table.loc["DB", "mean_rating"] in (1, 3, 5)
    assert 0 < table.loc["SUMMARY", "cosine"] <= 1 and 0 < table.loc["SUMMARY", "bertscore_f1"] <= 1
    corr = at.dataframe[1].value.data if hasattr(at.dataframe[1].value, "data") else at.dataframe[1].value
    assert {"method", "scorer", "metric", "n", "spearman_rho"} <= set(corr.columns)  # ratings vs automatic scores
    both = corr.set_index(["method", "scorer", "metric"])
    assert set(corr["method"]) == {"all", "DB", "TAB", "SUMMARY"} and both.loc[("all", "embedding", "auc"), "n"] == 3
    assert at.get("download_button")
