"""Every page offers a download of what it shows (issue 15): Overview, Concepts and Pruning hand the download the
tables they draw, for the current selections, in every export format."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest
from _app_pages import chart_data, run_page
from _app_tiny_model import patch_model_loader

import pages._shared as shared
from and_engine.explorer import export
from and_engine.store.results import ResultsStore


@pytest.fixture
def downloads(app_db, monkeypatch):
    """The pages' ``download`` calls recorded as {key: (label, name, tables)}; the widgets are still drawn."""
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    seen: dict[str, tuple] = {}
    real = shared.download

    def record(label, name, tables, key):
        seen[key] = (label, name, tables)
        real(label, name, tables, key)

    monkeypatch.setattr(shared, "download", record)
    return seen


def _tables(app_db, recorded) -> dict[str, pd.DataFrame]:
    label, name, tables = recorded
    with ResultsStore(app_db, read_only=True) as db:
        out = tables(db)
    for fmt in export.FORMATS:  # every table writes in every format
        data, file_name, _ = export.export_bytes(out, fmt, name)
        if fmt == "json":
            assert set(json.loads(data)) == set(out)
        else:
            assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == sorted(f"{t}.{fmt}" for t in out)
    return out


def _frame(at, column: str) -> pd.DataFrame:
    """The first dataframe drawn with ``column`` (a Styler's data for a formatted one)."""
    values = [getattr(d.value, "data", d.value) for d in at.dataframe]
    return next(v for v in values if column in v.columns)


def test_the_overview_downloads_its_tables_for_the_selections(app_db, downloads):
    at = run_page("pages/overview.py")
    assert not at.exception and [b.proto.label for b in at.get("download_button")] == ["Download this overview"]
    tables = _tables(app_db, downloads["ov_download"])
    assert {"models", "layers", "runs", "sae_metrics", "lastlayer_accuracy", "adjectives_per_layer",
            "uninterpretable_per_layer", "top_adjectives", "score_distributions", "neurons_by_score",
            "method_table", "ground_truth"} <= set(tables)
    pd.testing.assert_frame_equal(tables["layers"], _frame(at, "n_neurons"))
    top = chart_data(at, "top-20 adjectives")  # the bars drawn are the table's rows
    assert tables["top_adjectives"][["adjective", "n_neurons"]].values.tolist() == top[
        ["adjective", "n_neurons"]].values.tolist()
    assert set(tables["uninterpretable_per_layer"]["tau"]) == {3}
    at.select_slider(key="tau").set_value(5).run()  # another selection: the download follows it
    assert set(_tables(app_db, downloads["ov_download"])["uninterpretable_per_layer"]["tau"]) == {5}


def test_concepts_downloads_the_histogram_the_search_and_the_clusters(app_db, downloads):
    at = run_page("pages/concepts.py")
    tables = _tables(app_db, downloads["cc_download"])
    assert set(tables) == {"adjective_histogram", "cluster_words", "cluster_elbow"}  # no search yet
    bars = chart_data(at, "adjectives (all models)")
    assert tables["adjective_histogram"]["adjective"].tolist() == bars["adjective"].tolist()
    at.text_input(key="cc_term").set_value("loud").run()
    tables = _tables(app_db, downloads["cc_download"])
    hits = _frame(at, "matched_by")
    assert len(tables["search"]) == len(hits) > 0 and set(tables["search"]["term"]) == {"loud"}


def test_pruning_downloads_the_outcome_it_shows(app_db, downloads, monkeypatch):
    import streamlit as st

    st.cache_resource.clear()
    patch_model_loader(monkeypatch)
    at = run_page("pages/pruning.py")
    assert not at.exception
    tables = _tables(app_db, downloads["pr_download"])
    assert set(tables) == {"summary", "pruned", "per_layer", "per_class", "clip_prediction"}
    summary = tables["summary"].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert (summary["model"], summary["concept"], summary["method"]) == ("tinynet", "chirping_birds", "OCP")
    assert str(summary["n_pruned"]) == metrics["neurons pruned"] == str(len(tables["pruned"]))
    assert f"{summary['delta_a']:+.3f}" == metrics["ΔA (target class)"]
    assert tables["per_layer"]["n_pruned"].sum() == summary["n_pruned"]
    at.toggle(key="pr_enabled").set_value(False).run()  # pruning off: the download says so, nothing pruned
    summary = _tables(app_db, downloads["pr_download"])["summary"].iloc[0]
    assert not summary["pruning_on"] and summary["n_pruned"] == 0
    at.session_state["pr_table4"] = True  # the stored Table 4 opened: downloaded with the rest
    at.run()
    assert "stored_table4" in _tables(app_db, downloads["pr_download"])
