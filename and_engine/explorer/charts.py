"""Chart helpers: query-layer DataFrames / arrays -> plotly figures (and word-cloud / spectrogram images)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from and_engine.analyses.common import per_block_means
from and_engine.explorer.media import upsample_map

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


# plotly's "Hot" colour scale: (position, r, g, b)
_HOT = np.array([[0.0, 0, 0, 0], [0.3, 230, 0, 0], [0.6, 255, 210, 0], [1.0, 255, 255, 255]])


def clip_image(spec: np.ndarray, act_map: np.ndarray | None, scale: int = 2, alpha: float = 0.45) -> bytes:
    """(mels, frames) uint8 grey spectrogram (row 0 = lowest mel) with a neuron's (n_freq, n_time) activation map
    on top (nearest-cell upsampled, min..max in "Hot" colours at ``alpha``) -> JPEG bytes (quality 90, no chroma
    subsampling; the format Streamlit would convert a picture without alpha to anyway): time left to right, low
    frequencies at the bottom, every cell ``scale`` x ``scale`` pixels. One small image per clip is what the
    Neuron page sends instead of two plotly heatmaps (~30 kB instead of ~300 kB of JSON to draw)."""
    from PIL import Image

    rgb = np.repeat(spec[:, :, None].astype(np.float32), 3, axis=2)
    if act_map is not None:
        over = upsample_map(np.asarray(act_map, dtype=np.float32), spec.shape)
        lo, hi = float(over.min()), float(over.max())
        x = (over - lo) / (hi - lo) if hi > lo else np.zeros_like(over)
        hot = np.stack([np.interp(x, _HOT[:, 0], _HOT[:, c]) for c in (1, 2, 3)], axis=2)
        rgb = (1.0 - alpha) * rgb + alpha * hot
    img = np.rint(rgb[::-1]).astype(np.uint8).repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90, subsampling=0)
    return buf.getvalue()


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
