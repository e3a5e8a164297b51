"""Charts of the explanation scores: ``explorer.scores`` DataFrames -> plotly figures (the Overview's)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from and_engine.explorer.scores import CHANCE, METRIC_NAMES

_LAYOUT = {"margin": {"l": 40, "r": 10, "t": 40, "b": 40}, "height": 360}


def score_lines(dist: pd.DataFrame, scorer: str, metric: str) -> go.Figure:
    """``layer_distributions`` rows -> the median score per layer (network order), one line per explanation
    source, the chance level dashed."""
    fig = go.Figure()
    fig.update_layout(title=f"median {scorer} {METRIC_NAMES.get(metric, metric)} per layer, by explanation",
                      xaxis_title="layer", yaxis_title=METRIC_NAMES.get(metric, metric), **_LAYOUT)
    layers = list(dict.fromkeys(dist["layer"]))
    for source in dict.fromkeys(dist["source"]):
        d = dist[dist["source"] == source]
        fig.add_trace(go.Scatter(x=d["layer"], y=d["median"], mode="lines+markers", name=str(source),
                                 line={"dash": "dot"} if source == "shuffled" else None))
    if metric in CHANCE:
        fig.add_hline(y=CHANCE[metric], line_dash="dash", line_color="grey", annotation_text="chance")
    fig.update_xaxes(categoryorder="array", categoryarray=layers, tickangle=-45)
    return fig


def score_boxes(dist: pd.DataFrame, scorer: str, metric: str, layer: str) -> go.Figure:
    """One layer's ``layer_distributions`` rows -> a box per source (10/25/50/75/90 % of its neurons, the mean
    marked), the chance level dashed."""
    fig = go.Figure()
    fig.update_layout(title=f"{scorer} {METRIC_NAMES.get(metric, metric)} of the neurons of {layer}",
                      yaxis_title=METRIC_NAMES.get(metric, metric), showlegend=False, **_LAYOUT)
    for r in dist.itertuples():
        fig.add_trace(go.Box(name=str(r.source), q1=[r.q25], median=[r.median], q3=[r.q75], lowerfence=[r.q10],
                             upperfence=[r.q90], mean=[r.mean], boxpoints=False, hovertext=f"{r.n_neurons} neurons",
                             marker_color="grey" if r.source == "shuffled" else None))
    if metric in CHANCE:
        fig.add_hline(y=CHANCE[metric], line_dash="dash", line_color="grey", annotation_text="chance")
    return fig
