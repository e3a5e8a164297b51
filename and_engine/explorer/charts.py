"""Chart helpers: query-layer DataFrames / arrays -> Vega-Lite chart specs (and histogram / word-cloud /
spectrogram images).

Charts are plain Vega-Lite v5 specs (dicts with their data inline) that the pages hand to
``st.vega_lite_chart``: a browser draws them with Streamlit's Vega bundle (~1 MB of JavaScript) instead of
plotly's (4.7 MB, parsed and run anew in every tab: measured ~4 s of CPU per fresh tab of the Neuron page, half
of that tab's work; benchmarks/bench_browser.py, docs/app.md). The Neuron page's activation histogram is an SVG
picture instead (``activation_histogram``): that page then needs no Vega at all, ~0.15 s less in a fresh tab.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from and_engine.analyses.common import per_block_means
from and_engine.explorer.media import upsample_map

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
TOP, BOTTOM, OTHER = "crimson", "royalblue", "steelblue"
GREY = "#a3a9b3"  # the histogram of all clips, under the top-K / bottom-K marks


def _chart(title: str, height: int | dict = 260, **spec: object) -> dict:
    return {"$schema": SCHEMA, "title": title, "height": height, **spec}


def _values(df: pd.DataFrame) -> dict:
    """DataFrame -> inline Vega-Lite data (JSON types; NaN -> null)."""
    return {"values": json.loads(df.to_json(orient="records"))}


def _q(field: str, title: str | None = None, **kw: object) -> dict:
    return {"field": field, "type": "quantitative", "title": title if title is not None else field, **kw}


def _n(field: str, title: str | None = None, **kw: object) -> dict:
    return {"field": field, "type": "nominal", "title": title, **kw}


def per_block_lines(df: pd.DataFrame, value: str, title: str, y_title: str) -> dict:
    """Figure 5 / 6: per-layer ``value`` rows -> one line per model over blocks (``per_block_means``: the mean
    over the block's neurons, as the report prints it)."""
    grouped = per_block_means(df, value) if not df.empty else pd.DataFrame(columns=["model", "block", value])
    flat_zero = not grouped.empty and not grouped[value].astype(float).abs().gt(0).any()
    y_scale = {"scale": {"domain": [0, 1]}} if flat_zero else {}  # all 0 (e.g. tau = 3): an axis 0..1, not 0.000000
    return _chart(title, data=_values(grouped[["model", "block", value]]), mark={"type": "line", "point": True,
                                                                                  "tooltip": True},
                  encoding={"x": _q("block", "block", axis={"tickMinStep": 1}),
                            "y": _q(value, y_title, axis={"format": "~g"}, **y_scale), "color": _n("model", "model")})


def word_bars(df: pd.DataFrame, word: str, count: str, title: str) -> dict:
    """Horizontal histogram of words, in the rows' order from the top (most frequent first)."""
    return _chart(title, height={"step": 20}, data=_values(df[[word, count]]), mark={"type": "bar", "tooltip": True},
                  encoding={"y": _n(word, sort=None), "x": _q(count, "neurons")})


def _nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    """About ``n`` round tick values (steps of 1, 2 or 5 x 10^k) from the one at or below ``lo`` to the one at or
    above ``hi``."""
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    raw = span / max(n - 1, 1)
    step = 10 ** np.floor(np.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = np.floor(lo / step) * step
    return first + step * np.arange(int(np.ceil((hi - first) / step - 1e-9)) + 1)


def activation_histogram(values: np.ndarray, top: np.ndarray, bottom: np.ndarray, width: int = 900,
                         height: int = 240) -> str:
    """(n_clips,) activations as a histogram (10-60 bins) with the top-K / bottom-K clips' activations marked as
    vertical lines with a triangle at their foot -> an SVG picture (``st.image``): drawn at once in a fresh tab
    (a Vega-Lite chart first loads Vega's ~1 MB of code there: ~0.15 s of the Neuron page's 2 s, docs/app.md).
    Each bar and mark carries its numbers as a ``<title>`` (shown on hover when the SVG is opened on its own; the
    page shows a picture, and the clips' activations are in their cards)."""
    values = np.asarray(values, dtype=np.float64)
    top, bottom = np.asarray(top, dtype=np.float64), np.asarray(bottom, dtype=np.float64)
    counts, edges = np.histogram(values, bins=min(60, max(10, len(values) // 5)))
    marked = np.concatenate([top, bottom])
    lo, hi = float(min(edges[0], marked.min(initial=edges[0]))), float(max(edges[-1], marked.max(initial=edges[-1])))
    xt = _nice_ticks(lo, hi)
    lo, hi = min(lo, float(xt[0])), max(hi, float(xt[-1]))
    yt = _nice_ticks(0.0, float(max(counts.max(), 1)), 5)
    left, right, top_m, bottom_m = 52, 16, 34, 44
    pw, ph = width - left - right, height - top_m - bottom_m

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo or 1.0) * pw

    def y(c: float) -> float:
        return top_m + ph - c / float(yt[-1]) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" font-family="Source Sans Pro, sans-serif" font-size="12" fill="#31333f">',
           f'<text x="{left}" y="18" font-size="14" font-weight="600">activation over the probing set</text>']
    for t in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e6e9ef"/>'
                   f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        out.append(f'<rect class="bar" x="{x(a):.1f}" y="{y(c):.1f}" width="{max(x(b) - x(a) - 1, 0.5):.1f}" '
                   f'height="{y(0) - y(c):.1f}" fill="{GREY}"><title>{a:.3g} to {b:.3g}: {c} clips</title></rect>')
    for v, side, colour in [*((v, "top-K", TOP) for v in top), *((v, "bottom-K", BOTTOM) for v in bottom)]:
        out.append(f'<g class="mark"><title>{side} clip: activation {v:.3f}</title><line x1="{x(v):.1f}" '
                   f'x2="{x(v):.1f}" y1="{top_m}" y2="{y(0):.1f}" stroke="{colour}" stroke-width="1.5" '
                   f'opacity="0.8"/><path d="M{x(v):.1f},{y(0) - 9:.1f} l5,9 h-10 z" fill="{colour}"/></g>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#888"/>')
    for t in xt:
        out.append(f'<text x="{x(t):.1f}" y="{y(0) + 16:.1f}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">activation</text>'
               f'<text transform="translate(14 {top_m + ph / 2:.1f}) rotate(-90)" text-anchor="middle">clips</text>')
    for i, (side, colour) in enumerate((("top-K", TOP), ("bottom-K", BOTTOM))):
        lx = width - right - 150 + i * 75
        out.append(f'<path d="M{lx},22 l5,-9 l5,9 z" fill="{colour}"/><text x="{lx + 14}" y="22">{side}</text>')
    return "".join(out) + "</svg>"


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


def elbow(df: pd.DataFrame, chosen_k: int | None = None) -> dict:
    """k-means inertia against k, with the chosen k marked (dashed red line)."""
    layers = [{"data": _values(df[["k", "inertia"]]), "mark": {"type": "line", "point": True, "tooltip": True},
               "encoding": {"x": _q("k", axis={"tickMinStep": 1}), "y": _q("inertia")}}]
    if chosen_k is not None:
        layers.append({"mark": {"type": "rule", "color": TOP, "strokeDash": [6, 4]},
                       "encoding": {"x": {"datum": int(chosen_k), "type": "quantitative"}}})
    return _chart("elbow curve", layer=layers)


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
