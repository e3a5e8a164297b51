"""A fresh tab (a new session) reuses the database-wide reads another tab made (``pages._shared.per_version``),
and a database written meanwhile is read anew."""

from __future__ import annotations

import shutil
from datetime import datetime

import pandas as pd
import pytest
from _app_pages import run_page

from and_engine.store.results import ResultsStore

PAGES = ("pages/overview.py", "pages/concepts.py", "pages/human_eval.py")


@pytest.fixture
def queries_run(monkeypatch):
    """-> the SQL of every query the app's stores run from now on (the pages run on other threads)."""
    seen: list[str] = []
    original = ResultsStore.query_df

    def query_df(self, sql, params=()):
        seen.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(ResultsStore, "query_df", query_df)
    return seen


@pytest.mark.parametrize("page", PAGES)
def test_a_second_tab_of_a_page_queries_nothing_the_first_read(page, app_db, queries_run, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    first = run_page(page)
    assert not first.exception
    queries_run.clear()
    second = run_page(page)  # a new AppTest: a new session, as a new browser tab
    assert not second.exception
    assert queries_run == []
    assert [m.value for m in second.metric] == [m.value for m in first.metric]
    assert [d.value.shape for d in second.dataframe] == [d.value.shape for d in first.dataframe]


def test_a_neuron_tab_reads_only_what_is_about_its_neuron(app_db, queries_run, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    assert not run_page("pages/neuron.py").exception
    queries_run.clear()
    assert not run_page("pages/neuron.py").exception
    assert queries_run  # its clips, activations, summaries, ...
    assert not [q for q in queries_run if 'FROM "models"' in q or 'JOIN "runs" rc' in q]  # models; clip-id check


def test_a_database_written_after_a_tab_read_it_is_read_anew(app_db, tmp_path, monkeypatch):
    db = shutil.copyfile(app_db, tmp_path / "results.duckdb")  # written below: not the shared database
    monkeypatch.setenv("AND_EXPLORER_DB", str(db))
    before = run_page("pages/overview.py")
    before.session_state["ov_provenance"] = True  # the provenance expander open (drawn only then)
    steps = before.run().selectbox(key="prov_step").options
    with ResultsStore(db) as store:
        store.commit_step("test-run", "clip_media", {"sample_rate": 1}, {}, "fp", {"clip_media": pd.DataFrame(
            {"sample_rate": [1], "clip_id": [0], "audio": [b""], "audio_mime": ["audio/mpeg"], "n_mels": [1],
             "n_frames": [1], "spectrogram": [b""]})}, datetime.now(), "test")
    after = run_page("pages/overview.py")
    after.session_state["ov_provenance"] = True
    assert not after.run().exception
    assert len(after.selectbox(key="prov_step").options) == len(steps) + 1
