"""Chart helpers: query-layer DataFrames -> the pages' charts: SVG pictures (``svg_charts``) for the figures of
the pages a person opens first (Figure 5 / 6 per block, word bars, the elbow curve), Vega-Lite specs for the
interactive ones drawn on demand or with many marks (pruning, the effect on the output, the model-match heatmap);
word-cloud and spectrogram images.

Vega-Lite charts are plain v5 specs (dicts with their data inline) that the pages hand to ``st.vega_lite_chart``:
a browser draws them with Streamlit's Vega bundle (~1 MB of JavaScript) instead of plotly's (4.7 MB, parsed and run
anew in every tab: measured ~4 s of CPU per fresh tab of the Neuron page; docs/app.md). A page with no Vega chart
loads none of it: the Overview's five charts as pictures made its fresh tab 0.83x as long (docs/app.md).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from and_engine.analyses.common import per_block_means
from and_engine.explorer import svg_charts
from and_engine.explorer.media import upsample_map

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
TOP, OTHER = "crimson", "steelblue"


def _chart(title: str, height: int | dict = 260, **spec: object) -> dict:
    return {"$schema": SCHEMA, "title": title, "height": height, **spec}


def _values(df: pd.DataFrame) -> dict:
    """DataFrame -> inline Vega-Lite data (JSON types; NaN -> null)."""
    return {"values": json.loads(df.to_json(orient="records"))}


def _q(field: str, title: str | None = None, **kw: object) -> dict:
    return {"field": field, "type": "quantitative", "title": title if title is not None else field, **kw}


def _n(field: str, title: str | None = None, **kw: object) -> dict:
    return {"field": field, "type": "nominal", "title": title, **kw}


def per_block_lines(df: pd.DataFrame, value: str, title: str, y_title: str, width: int = 460) -> str:
    """Figure 5 / 6: per-layer ``value`` rows -> one line per model over blocks (``per_block_means``: the mean
    over the block's neurons, as the report prints it) -> SVG (an axis 0..1 where every value is 0, e.g. tau = 3)."""
    grouped = per_block_means(df, value) if not df.empty else pd.DataFrame(columns=["model", "block", value])
    return svg_charts.line_chart(grouped, "block", value, "model", title, "block", y_title, width=width)


def word_bars(df: pd.DataFrame, word: str, count: str, title: str, width: int = 460) -> str:
    """Horizontal histogram of words, in the rows' order from the top (most frequent first), counts of neurons
    printed at the bars -> SVG."""
    return svg_charts.bar_chart(df, word, count, title, "neurons", width=width)


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


def per_class_delta(df: pd.DataFrame, title: str) -> dict:
    """Figure 10: change of each class's true-class logit after pruning; the target class in red."""
    d = df.assign(is_target=df["is_target"] if "is_target" in df else False)[["class_name", "delta_logit", "is_target"]]
    return _chart(title, height=300, data=_values(d), mark={"type": "bar", "tooltip": True},
                  encoding={"x": _n("class_name", sort=None, axis={"labelAngle": -60}),
                            "y": _q("delta_logit", "Δ logit", axis={"format": "~g"}),
                            "color": {"condition": {"test": "datum.is_target", "value": TOP}, "value": OTHER}})


def before_after(df: pd.DataFrame, n: int = 8) -> dict:
    """One clip's class probabilities before / after pruning (the ``n`` most likely before), side by side."""
    d = df.head(n).melt(id_vars="class_name", value_vars=["before", "after"], var_name="pruning",
                        value_name="probability")
    when = {"sort": ["before", "after"]}
    return _chart("prediction of the chosen clip", height=240, data=_values(d), mark={"type": "bar", "tooltip": True},
                  encoding={"x": _n("class_name", sort=None, axis={"labelAngle": -30}),
                            "xOffset": _n("pruning", **when), "y": _q("probability"),
                            "color": _n("pruning", "pruning", **when)})


def elbow(df: pd.DataFrame, chosen_k: int | None = None, width: int = 460) -> str:
    """k-means inertia against k, with the chosen k marked (a dashed red line) -> SVG."""
    rule = (float(chosen_k), f"k = {chosen_k}") if chosen_k is not None else None
    return svg_charts.line_chart(df, "k", "inertia", None, "elbow curve", "k", "inertia", x_rule=rule, width=width)


def word_cloud(weights: dict[str, float], width: int = 360, height: int = 220, seed: int = 0) -> np.ndarray:
    """{word: weight} -> (height, width, 3) uint8 word-cloud image (wordcloud package, seeded layout)."""
    from wordcloud import WordCloud  # lazy: only the Concepts page draws clouds

    if not weights:
        raise ValueError("word cloud needs at least one word with a weight")
    cloud = WordCloud(width=width, height=height, background_color="white", random_state=seed,
                      prefer_horizontal=0.9).generate_from_frequencies({k: float(v) for k, v in weights.items()})
    return cloud.to_array()


def match_heatmap(counts: pd.DataFrame, model_a: str, model_b: str, threshold: float) -> dict:
    """``related.partner_counts`` rows -> a (layers of A x layers of B) heatmap of the share of A's neurons whose
    best partner in B's layer correlates >= ``threshold`` (tooltip: matched / neurons)."""
    rows = list(dict.fromkeys(counts["layer"]))
    cols = list(dict.fromkeys(counts["other_layer"]))
    d = counts[["layer", "other_layer", "share", "n_matched", "n_neurons"]].astype(
        {"n_matched": int, "n_neurons": int})
    d = d.assign(matched=d["n_matched"].astype(str) + " / " + d["n_neurons"].astype(str))
    return _chart(f"share of {model_a}'s neurons with a partner (r ≥ {threshold:.2f}) in {model_b}'s layer",
                  height={"step": 24}, data=_values(d[["layer", "other_layer", "share", "matched"]]),
                  mark={"type": "rect", "tooltip": True},
                  encoding={"x": _n("other_layer", f"layer of {model_b}", sort=cols, axis={"labelAngle": -45}),
                            "y": _n("layer", f"layer of {model_a}", sort=rows),
                            "color": _q("share", "share", scale={"domain": [0, 1], "scheme": "viridis"}),
                            "tooltip": [_n("layer", model_a), _n("other_layer", model_b), _n("matched", "matched"),
                                        _q("share", "share", format=".2f")]})


def effect_bars(per_class: pd.DataFrame, title: str) -> dict:
    """``effect.neuron_effect`` rows -> per class: its mean logit change over every held-out clip, and over its
    own held-out clips (the true-class change of Figure 10; absent for a class without one)."""
    df = per_class.sort_values("mean_change")
    order = df["class_name"].tolist()
    over = {"mean_change": "over all held-out clips", "own_change": "over the class's own clips"}
    d = df[["class_name", "mean_change", "own_change"]].melt(id_vars="class_name", var_name="over",
                                                             value_name="change").dropna(subset=["change"])
    d["over"] = d["over"].map(over)
    side = _n("over", "", scale={"domain": list(over.values()), "range": [OTHER, TOP]})
    return _chart(title, height=300, data=_values(d), mark={"type": "bar", "tooltip": True},
                  encoding={"x": _n("class_name", sort=order, axis={"labelAngle": -60}),
                            "xOffset": _n("over", sort=list(over.values())), "y": _q("change", "Δ logit"),
                            "color": side})
