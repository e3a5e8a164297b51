"""Charts of the explanation scores: ``explorer.scores`` DataFrames -> SVG pictures (the Overview's)."""

from __future__ import annotations

import pandas as pd

from and_engine.explorer import svg_charts
from and_engine.explorer.scores import CHANCE, METRIC_NAMES


def _chance(metric: str) -> tuple[float, str] | None:
    """The chance level of ``metric`` as a dashed grey rule labelled "chance" (none for a metric without one)."""
    return (float(CHANCE[metric]), "chance") if metric in CHANCE else None


def score_lines(dist: pd.DataFrame, scorer: str, metric: str, width: int = 900) -> str:
    """``layer_distributions`` rows -> the median score per layer (network order), one line per explanation
    source (the "shuffled" control dotted), the chance level dashed -> SVG."""
    name = METRIC_NAMES.get(metric, metric)
    return svg_charts.line_chart(dist, "layer", "median", "source", f"median {scorer} {name} per layer, by explanation",
                                 "layer", name, categories=list(dict.fromkeys(dist["layer"])), dotted=("shuffled",),
                                 y_rule=_chance(metric), width=width)


def score_boxes(dist: pd.DataFrame, scorer: str, metric: str, layer: str, width: int = 900) -> str:
    """One layer's ``layer_distributions`` rows -> a box per source (whiskers 10-90 %, box 25-75 %, the median a
    white line with its value, the mean a black dot; the shuffled control grey), the chance level dashed -> SVG."""
    name = METRIC_NAMES.get(metric, metric)
    return svg_charts.box_chart(dist, f"{scorer} {name} of the neurons of {layer}", name, grey=("shuffled",),
                                y_rule=_chance(metric), width=width)
