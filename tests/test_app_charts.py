"""Charts: the pages' Vega-Lite specs are valid Vega-Lite v5 and hold the data the page means to draw; the Neuron
page's histogram is a well-formed SVG picture with a bar per bin and a mark per top-K / bottom-K clip."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import altair as alt
import numpy as np
import pandas as pd
import pytest

from and_engine.explorer import charts


def _valid(spec: dict) -> dict:
    """Validate against the Vega-Lite v5 JSON schema (altair's copy) -> the spec."""
    (alt.LayerChart if "layer" in spec else alt.Chart).from_dict(spec)
    return spec


def test_an_invalid_spec_is_caught():
    bad = charts.elbow(pd.DataFrame({"k": [2, 3], "inertia": [4.0, 1.0]}))
    bad["layer"][0]["mark"] = {"type": "no-such-mark"}
    with pytest.raises(Exception, match="no-such-mark"):
        _valid(bad)


SVG = "http://www.w3.org/2000/svg"


def _svg(markup: str) -> ET.Element:
    root = ET.fromstring(markup)  # well-formed XML, or this raises
    assert root.tag == f"{{{SVG}}}svg" and root.get("viewBox")
    return root


def test_activation_histogram_bins_every_clip_and_marks_top_and_bottom():
    values = np.linspace(-1.0, 2.0, 251)
    svg = _svg(charts.activation_histogram(values, values[-5:], values[:5]))
    bars = [r.find(f"{{{SVG}}}title").text for r in svg.iter(f"{{{SVG}}}rect") if r.get("class") == "bar"]
    assert len(bars) == 50 and sum(int(b.split(": ")[1].split()[0]) for b in bars) == 251  # 251 // 5 bins
    assert bars[0].startswith("-1 to ") and " to 2: " in bars[-1]
    marks = [g.find(f"{{{SVG}}}title").text for g in svg.iter(f"{{{SVG}}}g") if g.get("class") == "mark"]
    assert marks == [f"top-K clip: activation {v:.3f}" for v in values[-5:]] + [
        f"bottom-K clip: activation {v:.3f}" for v in values[:5]]
    texts = [t.text for t in svg.iter(f"{{{SVG}}}text")]
    assert texts[0] == "activation over the probing set" and {"-1", "0", "1", "2", "activation", "clips"} <= set(texts)
    flat = _svg(charts.activation_histogram(np.full(20, 0.5), [0.5], [0.5]))  # one value: 10 bins, one holds all
    assert len([r for r in flat.iter(f"{{{SVG}}}rect") if r.get("class") == "bar"]) == 10


def test_nice_ticks_cover_the_range_in_round_steps():
    assert charts._nice_ticks(-3.1, 3.05).tolist() == [-4, -2, 0, 2, 4]
    assert charts._nice_ticks(0, 15, 5).tolist() == [0, 5, 10, 15]
    assert charts._nice_ticks(0.12, 0.93).tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_word_bars_keep_the_rows_order_from_the_top():
    df = pd.DataFrame({"adjective": ["loud", "soft", "dull"], "n_neurons": [9, 4, 1]})
    spec = _valid(charts.word_bars(df, "adjective", "n_neurons", "top"))
    assert [r["adjective"] for r in spec["data"]["values"]] == ["loud", "soft", "dull"]
    assert spec["encoding"]["y"]["sort"] is None and spec["encoding"]["x"]["field"] == "n_neurons"


def test_pruning_charts_mark_the_target_and_pair_before_with_after():
    per_class = pd.DataFrame({"class_name": ["cow", "dog", "hen"], "delta_logit": [-2.0, 0.1, np.nan],
                              "is_target": [True, False, False]})
    spec = _valid(charts.per_class_delta(per_class, "Figure 10"))
    assert [r["is_target"] for r in spec["data"]["values"]] == [True, False, False]
    assert spec["data"]["values"][2]["delta_logit"] is None  # NaN -> null, valid JSON
    assert spec["encoding"]["color"]["condition"]["value"] == charts.TOP
    probs = pd.DataFrame({"class_name": list("abcdefghij"), "before": np.linspace(0.3, 0.01, 10),
                          "after": np.linspace(0.1, 0.2, 10)})
    rows = _valid(charts.before_after(probs, n=3))["data"]["values"]
    assert [(r["class_name"], r["pruning"]) for r in rows] == [("a", "before"), ("b", "before"), ("c", "before"),
                                                                ("a", "after"), ("b", "after"), ("c", "after")]


def test_lines_and_elbow():
    df = pd.DataFrame({"model": ["m", "m", "n"], "layer": ["a", "b", "a"], "block": [0, 1, 0],
                       "pct_uninterpretable": [10.0, 20.0, 30.0], "n_neurons": [1, 1, 1]})
    spec = _valid(charts.per_block_lines(df, "pct_uninterpretable", "Figure 6", "%"))
    assert {(r["model"], r["block"], r["pct_uninterpretable"]) for r in spec["data"]["values"]} == {
        ("m", 0, 10.0), ("m", 1, 20.0), ("n", 0, 30.0)}
    assert "scale" not in spec["encoding"]["y"] and spec["encoding"]["y"]["axis"]["format"] == "~g"
    empty = _valid(charts.per_block_lines(df.iloc[:0], "pct_uninterpretable", "Figure 6", "%"))
    assert empty["data"]["values"] == []
    zeros = _valid(charts.per_block_lines(df.assign(pct_uninterpretable=0.0), "pct_uninterpretable", "Figure 6", "%"))
    assert zeros["encoding"]["y"]["scale"] == {"domain": [0, 1]}  # a flat 0 line gets a readable axis
    elbow = _valid(charts.elbow(pd.DataFrame({"k": [2, 3, 4], "inertia": [9.0, 4.0, 3.0]}), chosen_k=3))
    assert elbow["layer"][1]["encoding"]["x"]["datum"] == 3
    assert len(_valid(charts.elbow(pd.DataFrame({"k": [2], "inertia": [1.0]})))["layer"]) == 1


def test_match_heatmap_keeps_network_order_and_says_matched_of_neurons():
    counts = pd.DataFrame({"layer": ["b0", "b0", "b1", "b1"], "other_layer": ["x1", "x0", "x1", "x0"],
                           "n_neurons": [4, 4, 2, 2], "n_matched": [1, 4, 0, 2], "share": [0.25, 1.0, 0.0, 1.0],
                           "mean_best": [0.3, 0.9, 0.1, 0.8]})
    spec = _valid(charts.match_heatmap(counts, "A", "B", 0.5))
    assert spec["encoding"]["y"]["sort"] == ["b0", "b1"] and spec["encoding"]["x"]["sort"] == ["x1", "x0"]
    assert [(r["layer"], r["other_layer"], r["matched"]) for r in spec["data"]["values"]] == [
        ("b0", "x1", "1 / 4"), ("b0", "x0", "4 / 4"), ("b1", "x1", "0 / 2"), ("b1", "x0", "2 / 2")]
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 1] and "r ≥ 0.50" in spec["title"]


def test_effect_bars_pair_all_clips_with_own_clips_and_skip_a_class_without_own():
    per_class = pd.DataFrame({"class_name": ["cow", "dog", "hen"], "mean_change": [0.2, -1.0, 0.0],
                              "own_change": [0.5, -2.0, np.nan], "n_clips": [3, 3, 0]})
    spec = _valid(charts.effect_bars(per_class, "effect"))
    assert spec["encoding"]["x"]["sort"] == ["dog", "hen", "cow"]  # by the mean change
    rows = [(r["class_name"], r["over"], r["change"]) for r in spec["data"]["values"]]
    assert rows == [("dog", "over all held-out clips", -1.0), ("hen", "over all held-out clips", 0.0),
                    ("cow", "over all held-out clips", 0.2), ("dog", "over the class's own clips", -2.0),
                    ("cow", "over the class's own clips", 0.5)]


def test_score_charts_draw_medians_per_layer_boxes_and_the_chance_level():
    from and_engine.explorer import score_charts

    dist = pd.DataFrame({"layer": ["b1", "b1", "b0", "b0"], "source": ["S_h", "shuffled", "S_h", "shuffled"],
                         "n_neurons": [8, 8, 8, 8], "mean": [0.7, 0.5, 0.6, 0.5], "q10": [0.5, 0.3, 0.4, 0.3],
                         "q25": [0.6, 0.4, 0.5, 0.4], "median": [0.7, 0.5, 0.6, 0.5], "q75": [0.8, 0.6, 0.7, 0.6],
                         "q90": [0.9, 0.7, 0.8, 0.7]})
    lines = _valid(score_charts.score_lines(dist, "embedding", "auc"))
    line, rule, label = lines["layer"]
    assert line["encoding"]["x"]["sort"] == ["b1", "b0"] and rule["encoding"]["y"]["datum"] == 0.5
    assert [(r["layer"], r["source"], r["median"], r["control"]) for r in line["data"]["values"]][:2] == [
        ("b1", "S_h", 0.7, False), ("b1", "shuffled", 0.5, True)]
    assert label["mark"]["text"] == "chance" and lines["title"] == "median embedding AUC per layer, by explanation"
    boxes = _valid(score_charts.score_boxes(dist[dist["layer"] == "b0"], "embedding", "auc", "b0"))
    assert [r["source"] for r in boxes["layer"][0]["data"]["values"]] == ["S_h", "shuffled"]
    assert [m["mark"]["type"] for m in boxes["layer"][0]["layer"]] == ["rule", "bar", "tick", "point"]
    assert boxes["title"] == "embedding AUC of the neurons of b0"
    assert len(_valid(score_charts.score_lines(dist, "llm", "pearson_r"))["layer"]) == 3  # chance 0 for r
    assert len(_valid(score_charts.score_lines(dist, "llm", "other"))["layer"]) == 1  # no chance level known
