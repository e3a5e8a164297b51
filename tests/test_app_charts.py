"""Charts: the pages' Vega-Lite specs are valid Vega-Lite v5 and hold the data the page means to draw; the SVG
pictures (the Neuron page's histogram, Figure 5 / 6, word bars, the elbow curve, the explanation scores) are
well-formed SVG with one mark per value, at the value, carrying it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import altair as alt
import numpy as np
import pandas as pd
import pytest
from _app_pages import svg_marks

from and_engine.explorer import charts, svg_charts


def _valid(spec: dict) -> dict:
    """Validate against the Vega-Lite v5 JSON schema (altair's copy) -> the spec."""
    (alt.LayerChart if "layer" in spec else alt.Chart).from_dict(spec)
    return spec


def test_an_invalid_spec_is_caught():
    bad = charts.per_class_delta(pd.DataFrame({"class_name": ["cow"], "delta_logit": [1.0]}), "Figure 10")
    bad["mark"] = {"type": "no-such-mark"}
    with pytest.raises(Exception, match="no-such-mark"):
        _valid(bad)


SVG = "http://www.w3.org/2000/svg"


def _svg(markup: str) -> ET.Element:
    root = ET.fromstring(markup)  # well-formed XML, or this raises
    assert root.tag == f"{{{SVG}}}svg" and root.get("viewBox")
    return root


def test_activation_histogram_bins_every_clip_and_marks_top_and_bottom():
    values = np.linspace(-1.0, 2.0, 251)
    svg = _svg(svg_charts.activation_histogram(values, values[-5:], values[:5]))
    bars = [r.find(f"{{{SVG}}}title").text for r in svg.iter(f"{{{SVG}}}rect") if r.get("class") == "bar"]
    assert len(bars) == 50 and sum(int(b.split(": ")[1].split()[0]) for b in bars) == 251  # 251 // 5 bins
    assert bars[0].startswith("-1 to ") and " to 2: " in bars[-1]
    marks = [g.find(f"{{{SVG}}}title").text for g in svg.iter(f"{{{SVG}}}g") if g.get("class") == "mark"]
    assert marks == [f"top-K clip: activation {v:.3f}" for v in values[-5:]] + [
        f"bottom-K clip: activation {v:.3f}" for v in values[:5]]
    texts = [t.text for t in svg.iter(f"{{{SVG}}}text")]
    assert texts[0] == "activation over the probing set" and {"-1", "0", "1", "2", "activation", "clips"} <= set(texts)
    flat = _svg(svg_charts.activation_histogram(np.full(20, 0.5), [0.5], [0.5]))  # one value: 10 bins, one holds all
    assert len([r for r in flat.iter(f"{{{SVG}}}rect") if r.get("class") == "bar"]) == 10


def test_nice_ticks_cover_the_range_in_round_steps():
    assert svg_charts._nice_ticks(-3.1, 3.05).tolist() == [-4, -2, 0, 2, 4]
    assert svg_charts._nice_ticks(0, 15, 5).tolist() == [0, 5, 10, 15]
    assert svg_charts._nice_ticks(0.12, 0.93).tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def _texts(svg: ET.Element) -> list[str]:
    return [t.text for t in svg.iter(f"{{{SVG}}}text")]


def test_word_bars_keep_the_rows_order_from_the_top_and_print_each_count():
    df = pd.DataFrame({"adjective": ["loud", "soft", "dull"], "n_neurons": [1200, 4, 1]})
    svg = _svg(charts.word_bars(df, "adjective", "n_neurons", "top"))
    bars = svg_marks(svg, "bar")
    assert [(b["adjective"], float(b["n_neurons"])) for b in bars] == [("loud", 1200.0), ("soft", 4.0), ("dull", 1.0)]
    rects = [e for e in svg.iter(f"{{{SVG}}}rect") if e.get("class") == "bar"]
    widths = [float(r.get("width")) for r in rects]
    assert widths[0] > widths[1] > widths[2] > 0 and widths[0] / widths[1] == pytest.approx(300, rel=0.05)
    assert [float(r.get("y")) for r in rects] == sorted(float(r.get("y")) for r in rects)  # first row on top
    assert {"top", "loud", "1,200", "4", "1", "neurons"} <= set(_texts(svg))  # the counts printed at the bars


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


def _points(svg: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.get("cx")), float(c.get("cy"))) for c in svg.iter(f"{{{SVG}}}circle") if c.get("class") == "point"]


def test_lines_and_elbow():
    df = pd.DataFrame({"model": ["m", "m", "n"], "layer": ["a", "b", "a"], "block": [0, 1, 0],
                       "pct_uninterpretable": [10.0, 20.0, 30.0], "n_neurons": [1, 1, 1]})
    svg = _svg(charts.per_block_lines(df, "pct_uninterpretable", "Figure 6", "%"))
    assert {(p["model"], p["block"], float(p["pct_uninterpretable"])) for p in svg_marks(svg, "point")} == {
        ("m", "0", 10.0), ("m", "1", 20.0), ("n", "0", 30.0)}
    (m0x, m0y), (m1x, m1y), (n0x, n0y) = _points(svg)
    assert m0x == n0x < m1x and n0y < m1y < m0y  # block 0 left of block 1; 30 above 20 above 10 (SVG y grows down)
    assert [n for n in ("m", "n") if n in _texts(svg)] == ["m", "n"]  # a legend of the models
    one = _svg(charts.per_block_lines(df[df["model"] == "n"], "pct_uninterpretable", "Figure 6", "%"))
    assert "n" in _texts(one)  # one model: still named
    assert {"0", "10", "20", "30"} <= set(_texts(svg))  # the axis from 0, round ticks
    empty = _svg(charts.per_block_lines(df.iloc[:0], "pct_uninterpretable", "Figure 6", "%"))
    assert svg_marks(empty, "point") == []
    zeros = _svg(charts.per_block_lines(df.assign(pct_uninterpretable=0.0), "pct_uninterpretable", "Figure 6", "%"))
    assert {"0", "0.5", "1"} <= set(_texts(zeros))  # a flat 0 line gets a readable axis
    elbow = _svg(charts.elbow(pd.DataFrame({"k": [2, 3, 4], "inertia": [9.0, 4.0, 3.0]}), chosen_k=3))
    (x2, _), (x3, _), _ = _points(elbow)
    rule = next(e for e in elbow.iter(f"{{{SVG}}}line") if e.get("class") == "rule")
    assert float(rule.get("x1")) == pytest.approx(x3) and "k = 3" in _texts(elbow) and x2 < x3
    assert not [e for e in _svg(charts.elbow(pd.DataFrame({"k": [2], "inertia": [1.0]}))).iter()
                if e.get("class") == "rule"]


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
    lines = _svg(score_charts.score_lines(dist, "embedding", "auc"))
    assert _texts(lines)[0] == "median embedding AUC per layer, by explanation"
    points = svg_marks(lines, "point")
    assert [(p["source"], p["layer"], float(p["median"])) for p in points] == [
        ("S_h", "b1", 0.7), ("S_h", "b0", 0.6), ("shuffled", "b1", 0.5), ("shuffled", "b0", 0.5)]
    xs = {p["layer"]: x for p, (x, _) in zip(points, _points(lines))}
    assert xs["b1"] < xs["b0"]  # the layers in the rows' (network) order
    paths = [e for e in lines.iter(f"{{{SVG}}}path") if e.get("stroke-dasharray")]
    assert len(paths) == 1  # the shuffled control dotted, S_h solid
    rule = next(e for e in lines.iter(f"{{{SVG}}}line") if e.get("class") == "rule")
    chance_y = float(rule.get("y1"))
    shuffled_y = [y for p, (_, y) in zip(points, _points(lines)) if p["source"] == "shuffled"]
    assert shuffled_y == [pytest.approx(chance_y)] * 2 and "chance" in _texts(lines)  # chance AUC = 0.5
    boxes = _svg(score_charts.score_boxes(dist[dist["layer"] == "b0"], "embedding", "auc", "b0"))
    assert _texts(boxes)[0] == "embedding AUC of the neurons of b0"
    assert [(b["source"], float(b["median"]), float(b["q90"])) for b in svg_marks(boxes, "box")] == [
        ("S_h", 0.6, 0.8), ("shuffled", 0.5, 0.7)]
    fills = [r.get("fill") for r in boxes.iter(f"{{{SVG}}}rect")]
    assert fills == [svg_charts.BLUE, svg_charts.GREY]  # the shuffled control grey
    assert {"0.60", "0.50"} <= set(_texts(boxes))  # the medians printed
    assert "chance" in _texts(_svg(score_charts.score_lines(dist, "llm", "pearson_r")))  # chance 0 for r
    assert "chance" not in _texts(_svg(score_charts.score_lines(dist, "llm", "other")))  # no chance level known


def test_svg_charts_escape_names_and_mark_missing_values_with_a_gap():
    df = pd.DataFrame({"model": ['a<b & "c"'] * 3, "block": [0, 1, 2], "v": [1.0, np.nan, 2.0]})
    svg = _svg(svg_charts.line_chart(df, "block", "v", "model", "t <1>", "block", "v"))  # parses: escaped
    assert [p["model"] for p in svg_marks(svg, "point")] == ['a<b & "c"'] * 2 and _texts(svg)[0] == "t <1>"
    path = next(e for e in svg.iter(f"{{{SVG}}}path") if e.get("stroke"))
    assert path.get("d").count("M") == 2  # the line breaks where the value is missing
