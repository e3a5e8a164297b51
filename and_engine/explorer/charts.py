"""Chart helpers: query-layer DataFrames / arrays -> plotly figures (and word-cloud images) for the pages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from and_engine.analyses.common import per_block_means

_LAYOUT = {"margin": {"l": 40, "r": 10, "t": 40, "b": 40}, "height": 320}


def _fig(title: str, **layout: object) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **{**_LAYOUT, **layout})
    return fig


def per_block_lines(df: pd.DataFrame, value: str, title: str, y_title: str) -> go.Figure:
    """Figure 5 / 6: per-layer ``value`` rows -> one line per model over blocks (``per_block_means``: the mean
    over the block's neurons, as the report prints it)."""
    fig = _fig(title, xaxis_title="block", yaxis_title=y_title)
    if df.empty:
        return fig
    grouped = per_block_means(df, value)
    for model, g in grouped.groupby("model"):
        fig.add_trace(go.Scatter(x=g["block"], y=g[value], mode="lines+markers", name=str(model)))
    return fig


def word_bars(df: pd.DataFrame, word: str, count: str, title: str) -> go.Figure:
    """Horizontal histogram of words (most frequent on top)."""
    fig = _fig(title, height=max(240, 22 * len(df) + 80), xaxis_title="neurons")
    fig.add_trace(go.Bar(x=df[count][::-1], y=df[word][::-1], orientation="h"))
    return fig


def activation_histogram(values: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> go.Figure:
    """(n_clips,) activations with the top-K / bottom-K clips' activations marked as vertical lines."""
    fig = _fig("activation over the probing set", xaxis_title="activation", yaxis_title="clips", height=260)
    fig.add_trace(go.Histogram(x=values, nbinsx=min(60, max(10, len(values) // 5)), name="all clips"))
    shapes = []
    for vals, color, name in ((top, "crimson", "top-K"), (bottom, "royalblue", "bottom-K")):
        shapes += [{"type": "line", "xref": "x", "yref": "paper", "x0": float(v), "x1": float(v), "y0": 0, "y1": 1,
                    "line": {"color": color, "width": 1.5}, "opacity": 0.8} for v in vals]
        fig.add_trace(go.Scatter(x=list(vals), y=[0] * len(vals), mode="markers", name=name,
                                 marker={"color": color, "symbol": "triangle-up", "size": 10}))
    fig.update_layout(shapes=shapes)
    return fig


def spectrogram_overlay(spec: np.ndarray, overlay: np.ndarray | None, duration_s: float, title: str) -> go.Figure:
    """(mels, frames) dB spectrogram in grey with the neuron's (mels, frames) map in colour on top."""
    fig = _fig(title, height=220, xaxis_title="seconds", yaxis_title="mel bin", showlegend=False)
    t = np.linspace(0, duration_s, spec.shape[1])
    fig.add_trace(go.Heatmap(z=spec, x=t, colorscale="gray", showscale=False, hoverinfo="skip"))
    if overlay is not None:
        fig.add_trace(go.Heatmap(z=overlay, x=t, colorscale="Hot", opacity=0.45, showscale=True,
                                 colorbar={"title": "act", "len": 0.8}, name="neuron map"))
    return fig


def per_class_delta(df: pd.DataFrame, title: str) -> go.Figure:
    """Figure 10: change of each class's true-class logit after pruning; the target class in red."""
    fig = _fig(title, height=360, yaxis_title="Δ logit", xaxis_tickangle=-60)
    colors = np.where(df["is_target"], "crimson", "steelblue") if "is_target" in df else "steelblue"
    fig.add_trace(go.Bar(x=df["class_name"], y=df["delta_logit"], marker_color=colors))
    return fig


def before_after(df: pd.DataFrame, n: int = 8) -> go.Figure:
    """One clip's class probabilities before / after pruning (the ``n`` most likely before)."""
    d = df.head(n)
    fig = _fig("prediction of the chosen clip", barmode="group", yaxis_title="probability", height=300)
    fig.add_trace(go.Bar(x=d["class_name"], y=d["before"], name="before"))
    fig.add_trace(go.Bar(x=d["class_name"], y=d["after"], name="after"))
    return fig


def elbow(df: pd.DataFrame, chosen_k: int | None = None) -> go.Figure:
    """k-means inertia against k, with the chosen k marked."""
    fig = _fig("elbow curve", xaxis_title="k", yaxis_title="inertia")
    fig.add_trace(go.Scatter(x=df["k"], y=df["inertia"], mode="lines+markers"))
    if chosen_k is not None:
        fig.add_vline(x=chosen_k, line_dash="dash", line_color="crimson")
    return fig


def word_cloud(weights: dict[str, float], width: int = 360, height: int = 220, seed: int = 0) -> np.ndarray:
    """{word: weight} -> (height, width, 3) uint8 word-cloud image (wordcloud package, seeded layout)."""
    from wordcloud import WordCloud  # lazy: only the Concepts page draws clouds

    if not weights:
        raise ValueError("word cloud needs at least one word with a weight")
    cloud = WordCloud(width=width, height=height, background_color="white", random_state=seed,
                      prefer_horizontal=0.9).generate_from_frequencies({k: float(v) for k, v in weights.items()})
    return cloud.to_array()


def match_heatmap(counts: pd.DataFrame, model_a: str, model_b: str, threshold: float) -> go.Figure:
    """``related.partner_counts`` rows -> a (layers of A x layers of B) heatmap of the share of A's neurons whose
    best partner in B's layer correlates >= ``threshold`` (hover: matched / neurons, mean best correlation)."""
    rows = list(dict.fromkeys(counts["layer"]))
    cols = list(dict.fromkeys(counts["other_layer"]))
    grid = counts.pivot(index="layer", columns="other_layer")
    share = grid["share"].reindex(index=rows, columns=cols)
    text = (grid["n_matched"].astype(int).astype(str) + " / " + grid["n_neurons"].astype(int).astype(str)
            ).reindex(index=rows, columns=cols)
    fig = _fig(f"share of {model_a}'s neurons with a partner (r ≥ {threshold:.2f}) in {model_b}'s layer",
               height=max(320, 24 * len(rows) + 160), xaxis_title=f"layer of {model_b}",
               yaxis_title=f"layer of {model_a}")
    fig.add_trace(go.Heatmap(z=share.to_numpy(), x=cols, y=rows, zmin=0, zmax=1, colorscale="Viridis",
                             customdata=text.to_numpy(), colorbar={"title": "share"},
                             hovertemplate="%{y} → %{x}<br>%{customdata} matched<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return fig


def effect_bars(per_class: pd.DataFrame, title: str) -> go.Figure:
    """``effect.neuron_effect`` rows -> per class: its mean logit change over every held-out clip, and over its
    own held-out clips (the true-class change of Figure 10; absent for a class without one)."""
    df = per_class.sort_values("mean_change")
    fig = _fig(title, height=360, yaxis_title="Δ logit", xaxis_tickangle=-60, barmode="group")
    fig.add_trace(go.Bar(x=df["class_name"], y=df["mean_change"], name="over all held-out clips",
                         marker_color="steelblue"))
    fig.add_trace(go.Bar(x=df["class_name"], y=df["own_change"], name="over the class's own clips",
                         marker_color="crimson"))
    return fig
