"""Charts of the explanation scores: ``explorer.scores`` DataFrames -> Vega-Lite specs (the Overview's)."""

from __future__ import annotations

import pandas as pd

from and_engine.explorer.charts import GREY, _chart, _n, _q, _values
from and_engine.explorer.scores import CHANCE, METRIC_NAMES


def _chance(metric: str) -> list[dict]:
    """The chance level of ``metric`` as a dashed grey rule labelled "chance" (none for a metric without one)."""
    if metric not in CHANCE:
        return []
    at = {"y": {"datum": float(CHANCE[metric]), "type": "quantitative"}}
    return [{"mark": {"type": "rule", "color": GREY, "strokeDash": [6, 4]}, "encoding": at},
            {"mark": {"type": "text", "text": "chance", "align": "right", "dy": -6, "color": "grey", "x": "width"},
             "encoding": at}]


def score_lines(dist: pd.DataFrame, scorer: str, metric: str) -> dict:
    """``layer_distributions`` rows -> the median score per layer (network order), one line per explanation
    source (the "shuffled" control dotted), the chance level dashed."""
    name = METRIC_NAMES.get(metric, metric)
    layers = list(dict.fromkeys(dist["layer"]))
    d = dist[["layer", "source", "median"]].assign(control=dist["source"] == "shuffled")
    line = {"data": _values(d), "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {"x": _n("layer", "layer", sort=layers, axis={"labelAngle": -45}),
                         "y": _q("median", name), "color": _n("source", "explanation"),
                         "strokeDash": {"field": "control", "type": "nominal", "legend": None,
                                        "scale": {"domain": [False, True], "range": [[1, 0], [2, 3]]}}}}
    return _chart(f"median {scorer} {name} per layer, by explanation", height=300, layer=[line, *_chance(metric)])


def score_boxes(dist: pd.DataFrame, scorer: str, metric: str, layer: str) -> dict:
    """One layer's ``layer_distributions`` rows -> a box per source (whiskers 10-90 %, box 25-75 %, the median a
    white tick, the mean a black dot), the chance level dashed."""
    name = METRIC_NAMES.get(metric, metric)
    d = dist[["source", "q10", "q25", "median", "q75", "q90", "mean", "n_neurons"]]
    x = _n("source", "explanation", sort=list(dict.fromkeys(d["source"])))
    tip = [_n("source", "explanation"), _q("n_neurons", "neurons"), *(_q(c, c, format=".3f") for c in
                                                                       ("q10", "q25", "median", "q75", "q90", "mean"))]
    colour = {"condition": {"test": "datum.source === 'shuffled'", "value": GREY}, "value": "steelblue"}
    boxes = {"data": _values(d), "layer": [
        {"mark": {"type": "rule"}, "encoding": {"x": x, "y": _q("q10", name), "y2": {"field": "q90"}}},
        {"mark": {"type": "bar", "size": 28, "tooltip": True},
         "encoding": {"x": x, "y": _q("q25", name), "y2": {"field": "q75"}, "color": colour, "tooltip": tip}},
        {"mark": {"type": "tick", "color": "white", "size": 28, "thickness": 2},
         "encoding": {"x": x, "y": _q("median", name)}},
        {"mark": {"type": "point", "filled": True, "color": "black"}, "encoding": {"x": x, "y": _q("mean", name)}},
    ]}
    return _chart(f"{scorer} {name} of the neurons of {layer}", height=300, layer=[boxes, *_chance(metric)])
