"""Human evaluation page: blind stable order, one submission saved whole or not at all (also while a build holds
the results database), ratings bound to their descriptions' steps, Table 3 results and CSV export."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager

import pytest
from _app_pages import run_page
from fakes import LockedAfterInserts

import and_engine.store.ratings as ratings_module
from and_engine.explorer import humaneval
from and_engine.store.ratings import RatingsStore
from and_engine.store.results import ResultsStore


@pytest.fixture
def env(app_db, tmp_path, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    monkeypatch.setenv("AND_EXPLORER_RATINGS", str(tmp_path / "ratings.duckdb"))
    return tmp_path / "ratings.duckdb"


def _descriptions(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**Description")]


@contextmanager
def _held_by_another_process(path):
    """Another process (a build, a second app) holds ``path`` open for writing, so this one cannot open it."""
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        yield
    finally:
        holder.kill()
        holder.wait()


def _fill(at, scores=(5, 3, 1), own="the clips share crackling fire sounds"):
    at.text_input(key="he_rater").input("ann").run()
    for i, score in enumerate(scores):
        at.radio(key=f"he_score_{i}").set_value(score)
    at.text_area(key="he_own").input(own)
    return at.caption[0].value  # "neuron model / layer / n · ..."


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
    assert set(saved["results_run_id"]) == {"fixture-run"} and saved["submission_id"].nunique() == 1
    model, layer, neuron = saved["model"].iloc[0], saved["layer"].iloc[0], int(saved["neuron"].iloc[0])
    with ResultsStore(os.environ["AND_EXPLORER_DB"], read_only=True) as db:  # each rating names its text's step
        assert dict(zip(saved["method"], saved["description_step_id"])) == \
            humaneval.description_steps(db, model, layer, neuron)
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


def test_a_failed_save_stores_nothing_and_keeps_the_neuron(env, monkeypatch):
    monkeypatch.setattr(RatingsStore, "RETRY_S", 0.3, raising=False)
    at = run_page("pages/human_eval.py")
    neuron = _fill(at)
    lock = LockedAfterInserts(allowed=1)  # another process takes the lock after the first row
    monkeypatch.setattr(ratings_module, "duckdb", lock)
    at.form_submit_button[0].click().run()
    lock.release()
    assert not at.exception and "Not saved" in at.error[0].value and "still in the form" in at.error[0].value
    assert RatingsStore(env).ratings(latest_only=False).empty  # nothing half-saved
    assert at.caption[0].value == neuron and at.radio(key="he_score_0").value == 5  # same neuron, answers kept
    at.form_submit_button[0].click().run()  # press Save again: the whole submission, once
    saved = RatingsStore(env).ratings(latest_only=False)
    assert sorted(saved["rating"]) == [1, 3, 5] and len(RatingsStore(env).summaries()) == 1
    assert "Saved" in at.success[0].value and at.caption[0].value != neuron


def test_a_save_while_a_build_holds_the_results_database_is_kept(env, app_db, tmp_path, monkeypatch):
    import pages._shared

    monkeypatch.setattr(pages._shared, "READ_WAIT_S", 1.0)  # a page waits 60 s for a commit by default
    db = shutil.copyfile(app_db, tmp_path / "results.duckdb")
    monkeypatch.setenv("AND_EXPLORER_DB", str(db))
    at = run_page("pages/human_eval.py")
    neuron = _fill(at)
    with _held_by_another_process(db):
        at.form_submit_button[0].click().run()
        assert "Saved" in at.success[0].value and "Cannot open the results database" in at.error[0].value
    saved = RatingsStore(env).ratings()
    assert sorted(saved["rating"]) == [1, 3, 5] and len(RatingsStore(env).summaries()) == 1
    at.run()  # the build let go: the page carries on with the next neuron
    assert not at.exception and at.caption[0].value != neuron


def test_results_tab_says_when_the_ratings_database_is_locked(env, monkeypatch):
    monkeypatch.setattr(RatingsStore, "RETRY_S", 0.3, raising=False)
    at = run_page("pages/human_eval.py")
    _fill(at)
    at.form_submit_button[0].click().run()
    assert at.get("download_button")
    with _held_by_another_process(env):
        at.run()
        assert not at.exception
        assert any("held by another process" in e.value and "results cannot be read" in e.value for e in at.error)
