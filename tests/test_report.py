"""format_report: Table 2 / Table 4 layouts and the brief analyses, read from a results database."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from _analyses_fixtures import CLASSES, seed_store
from _app_pages import svg_marks

from and_engine.report import format_report, table2, table4
from and_engine.store.results import ResultsStore


def test_table2_grid_orders_methods_and_similarities():
    df = pd.DataFrame({"model": "m", "method": ["DB", "TAB", "DB", "ICL"], "similarity": ["cos3", "wpmi", "cos", "llm"],
                       "top1": [100.0, 96.0, 80.0, 72.0], "top5": [100.0, 100.0, 82.0, 60.0],
                       "concept_cosine": [1.0, 0.98, 0.85, 0.83], "n_neurons": 50})
    lines = table2(df).splitlines()
    assert lines[0].split()[-4:] == ["cos", "cos3", "wpmi", "llm"]
    assert [ln.split()[0] for ln in lines[2:]] == ["ICL", "TAB", "DB"]
    db = lines[-1]
    assert "80 / 82 / 0.85" in db and "100 / 100 / 1.00" in db and db.index("80 / 82") < db.index("100 / 100")


def test_table4_layout():
    df = pd.DataFrame({"model": "m", "method": ["OCP", "random"], "mean_pruned": [2808.4, 3000.0],
                       "delta_a": [-10.73, -13.52], "delta_r": [-6.83, -13.48], "delta_a_minus_r": [3.90, 0.04],
                       "n_concepts": 50})
    lines = table4(df).splitlines()
    assert lines[2].split() == ["random", "3000", "-13.52", "-13.48", "0.04", "50"]
    assert lines[3].split() == ["OCP", "2808", "-10.73", "-6.83", "3.90", "50"]
    per_class = pd.DataFrame({"method": ["OCP", "OCP", "OCP", "random"], "target_concept": ["a", "a", "b", "a"],
                              "n_pruned": [3, 3, 0, 0]})
    lines = table4(df, per_class).splitlines()
    assert lines[2].split()[-1] == "0/50" and lines[3].split()[-1] == "1/50"


def _commit(store, stage, scope, tables):
    store.commit_step("r", stage, scope, {}, "fp", tables, datetime.now(), "test")


def test_format_report_reads_the_store(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        seed_store(store, {"tiny": list(CLASSES), "audioset": ["speech", "music", "noise"]})
        _commit(store, "lastlayer", {"model": "tiny"}, {"lastlayer_accuracy": pd.DataFrame([{
            "model": "tiny", "method": "DB", "similarity": "cos3", "top1": 100.0, "top5": 100.0,
            "concept_cosine": 1.0, "n_neurons": 3}])})
        _commit(store, "pruning", {"model": "tiny"}, {"pruning_summary": pd.DataFrame([{
            "model": "tiny", "method": "OCP", "mean_pruned": 2.0, "delta_a": -3.0, "delta_r": -1.0,
            "delta_a_minus_r": 2.0, "n_concepts": 3}])})
        _commit(store, "adjectives", {"model": "tiny"}, {
            "adjective_stats": pd.DataFrame([{"model": "tiny", "layer": "fc1", "block": 0, "mean_adjectives": 1.5,
                                              "n_neurons": 4}]),
            "top_adjectives": pd.DataFrame([{"model": "tiny", "adjective": "loud", "n_neurons": 2, "rank": 1}])})
        _commit(store, "fi", {"model": "tiny"}, {"feature_importance": pd.DataFrame({
            "model": "tiny", "criterion": ["none", "nouns", "nouns"], "percent": [0.0, 2.0, 2.0], "seed": [0, 0, 1],
            "accuracy": [90.0, 80.0, 70.0], "n_pruned": [0, 5, 5]})})
        text = format_report(store)
        only = format_report(store, ["tiny"])
        with pytest.raises(ValueError, match="nope"):
            format_report(store, ["nope"])
    assert "=== model audioset ===" in text and "=== model tiny ===" in text and "audioset" not in only
    assert "100 / 100 / 1.00" in only and "-3.00" in only and "2.00" in only
    assert "unpruned accuracy 90.0 %" in only and "75.0" in only  # mean of the two seeds
    assert "0: 1.50" in only and "loud (2)" in only
    assert "(not computed" in text.split("=== model tiny")[0]  # the audioset model has no Table 2 / 4


def test_report_and_app_chart_print_the_same_per_block_means(tmp_path):
    """Figure 5 / 6 per block: neuron-count weighted over the block's layers, in the report and the app alike."""
    import xml.etree.ElementTree as ET

    from and_engine.explorer.charts import per_block_lines

    layers = pd.DataFrame({"model": "ast", "layer": ["b0.attn", "b0.fc1", "b1.fc1"], "block": [0, 0, 1],
                           "mean_adjectives": [1.0, 4.0, 2.0], "n_neurons": [10, 30, 5]})
    model = pd.DataFrame([{"model": "ast", "kind": "ast-scratch", "sample_rate": 16000, "class_names": ["a"],
                           "heldout_fold": 1, "heldout_accuracy": 1.0, "n_heldout": 1, "checkpoint": "",
                           "description": ""}])
    with ResultsStore(tmp_path / "r.duckdb") as store:
        _commit(store, "model", {"model": "ast"}, {"models": model})
        _commit(store, "adjectives", {"model": "ast"}, {"adjective_stats": layers})
        text = format_report(store, ["ast"])
    assert "by block): 0: 3.25, 1: 2.00" in text  # (10 * 1 + 30 * 4) / 40, not the layers' plain mean 2.5
    points = svg_marks(ET.fromstring(per_block_lines(layers, "mean_adjectives", "t", "y")), "point")  # the app's
    assert [p["block"] for p in points] == ["0", "1"]
    assert [float(p["mean_adjectives"]) for p in points] == pytest.approx([3.25, 2.0])
