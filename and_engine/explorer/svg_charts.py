"""Charts as SVG pictures (the pages show them with ``st.image``): DataFrames / arrays -> SVG markup.

A fresh tab draws a picture at once; a Vega-Lite chart first loads and runs Vega's ~1 MB of code and each one
costs the browser its own pass (the Overview's five Vega charts were ~0.5 s of its ~2 s fresh tab, docs/app.md).
Every mark carries its numbers as a ``<title>`` (shown on hover where the SVG is opened on its own) and as
``data-*`` attributes (what tests read back); since the page shows a picture, the numbers a reader needs most are
printed on it (bar lengths, the chance level, the chosen k).
"""

from __future__ import annotations

import re
from html import escape

import numpy as np
import pandas as pd

TOP, BOTTOM = "crimson", "royalblue"
GREY = "#a3a9b3"  # the histogram of all clips; the shuffled control
BLUE = "#4c78a8"
PALETTE = (BLUE, "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac")
CHAR_W = 6.4  # mean width (px) of a 12 px Source Sans character: margins, legends, label cut-offs


def _nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    """About ``n`` round tick values (steps of 1, 2 or 5 x 10^k) from the one at or below ``lo`` to the one at or
    above ``hi``."""
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    raw = span / max(n - 1, 1)
    step = 10 ** np.floor(np.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = np.floor(lo / step) * step
    return first + step * np.arange(int(np.ceil((hi - first) / step - 1e-9)) + 1)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _attr(field: str) -> str:
    """A column name as a ``data-*`` attribute name (XML-safe): the marks carry their row's values under their
    columns' names."""
    return "data-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(field))


def _num(v: float) -> str:
    """A value as printed on a chart: whole numbers in full (1,003), others to 3 significant digits."""
    v = float(v)
    return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:.3g}"


def _open(width: int, height: float, title: str, title_x: float = 8) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" width="{width}" '
            f'height="{height:.0f}" font-family="Source Sans Pro, sans-serif" font-size="12" fill="#31333f">',
            f'<text class="title" x="{title_x}" y="18" font-size="14" font-weight="600">{_e(title)}</text>']


def _y_axis(out: list[str], ticks: np.ndarray, y, left: float, right: float, title: str) -> None:
    """Horizontal grid lines with their values at the left, the axis title turned along it."""
    for t in ticks:
        out.append(f'<line x1="{left}" x2="{right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e6e9ef"/>'
                   f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    mid = (y(ticks[0]) + y(ticks[-1])) / 2
    out.append(f'<text transform="translate(14 {mid:.1f}) rotate(-90)" text-anchor="middle">{_e(title)}</text>')


def _legend(out: list[str], names: list[str], colours: dict, dotted: set, x0: float, y0: float, width: float) -> float:
    """Legend items (a line swatch and the name) left to right from (x0, y0), wrapped at ``width`` -> its height."""
    x, y = x0, y0
    for name in names:
        w = 30 + len(name) * CHAR_W
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + 18
        dash = ' stroke-dasharray="2 3"' if name in dotted else ""
        out.append(f'<line x1="{x}" x2="{x + 16}" y1="{y - 4}" y2="{y - 4}" stroke="{colours[name]}" '
                   f'stroke-width="2"{dash}/><text x="{x + 20}" y="{y}">{_e(name)}</text>')
        x += w
    return y - y0 + 18 if names else 0.0


def _h_rule(out: list[str], value: float, label: str, y, left: float, right: float, label_after: bool = False) -> None:
    """A dashed grey horizontal rule at ``value`` with its label above its right end, or after it (the chance
    level)."""
    at = f'x="{right + 4}" y="{y(value) + 4:.1f}"' if label_after else \
        f'x="{right - 4}" y="{y(value) - 5:.1f}" text-anchor="end"'
    out.append(f'<line class="rule" x1="{left}" x2="{right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{GREY}" '
               f'stroke-dasharray="6 4"/><text {at} fill="grey">{_e(label)}</text>')


def _y_ticks(values: np.ndarray, extra: tuple = ()) -> np.ndarray:
    """Round y ticks over the finite values, zero and ``extra``; 0..1 where everything is 0."""
    v = np.concatenate([values[np.isfinite(values)], [0.0], np.asarray(extra, dtype=float)])
    lo, hi = float(v.min()), float(v.max())
    return _nice_ticks(lo, hi) if hi > lo else np.array([0.0, 0.5, 1.0])


def _bottom_labels(labels: list[str], slant: bool) -> float:
    return 36 + (min(max(map(len, labels), default=0), 24) * CHAR_W * 0.71 if slant else 0)


def line_chart(rows: pd.DataFrame, x: str, y: str, series: str | None, title: str, x_title: str, y_title: str, *,
               categories: list | None = None, dotted: tuple = (), y_rule: tuple[float, str] | None = None,
               x_rule: tuple[float, str] | None = None, width: int = 460, height: int = 300) -> str:
    """``rows`` (x, y[, series]) -> one line with points per series (Vega's colours, in the names' sorted order).
    x is numeric, or nominal in the order of ``categories`` (labels slanted); ``dotted``: series drawn dotted (a
    control); ``y_rule`` / ``x_rule`` (value, label): a dashed grey horizontal / vertical rule (chance, chosen k)."""
    names = sorted(map(str, rows[series].unique())) if series else []
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    yv = rows[y].astype(float).to_numpy()
    yt = _y_ticks(yv, (y_rule[0],) if y_rule else ())
    if categories is not None:
        labels = [str(c) for c in categories]
    else:
        xs = rows[x].astype(float).to_numpy()
        lo, hi = (float(xs.min()), float(xs.max())) if len(xs) else (0.0, 1.0)
        whole = bool(len(xs)) and np.allclose(xs, np.round(xs)) and hi - lo <= 15
        xt = np.arange(lo, hi + 1) if whole else _nice_ticks(lo, hi)
        labels = [f"{t:g}" for t in xt]
    left = 30 + max(len(f"{t:g}") for t in yt) * CHAR_W
    plot_w = width - left - 16
    legend_h = _legend([], names, colours, set(dotted), left, 0, plot_w)  # its height (0 without series)
    top, bottom = 34 + legend_h, _bottom_labels(labels, categories is not None)
    full_h = height + legend_h
    ph = full_h - top - bottom

    def py(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    if categories is not None:
        pos = {c: left + (i + 0.5) * plot_w / max(len(labels), 1) for i, c in enumerate(labels)}

        def px(v: object) -> float:
            return pos[str(v)]
    else:
        x0, x1 = (float(xt[0]), float(xt[-1])) if xt[-1] > xt[0] else (float(xt[0]) - 1, float(xt[0]) + 1)

        def px(v: object) -> float:
            return left + (float(v) - x0) / (x1 - x0) * plot_w

    out = _open(width, full_h, title)
    _legend(out, names, colours, set(dotted), left, 34, plot_w)  # even for one series: which model it is
    _y_axis(out, yt, py, left, left + plot_w, y_title)
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(yt[0]):.1f}" y2="{py(yt[0]):.1f}" stroke="#888"/>')
    for label in labels:
        at = px(label if categories is not None else float(label))
        if categories is not None:
            out.append(f'<text transform="translate({at:.1f} {py(yt[0]) + 12:.1f}) rotate(-45)" '
                       f'text-anchor="end">{_e(label[:24])}</text>')
        else:
            out.append(f'<text x="{at:.1f}" y="{py(yt[0]) + 16:.1f}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{full_h - 6:.1f}" text-anchor="middle">{_e(x_title)}</text>')
    if y_rule:
        _h_rule(out, *y_rule, py, left, left + plot_w)
    for value, label in [x_rule] if x_rule else []:
        out.append(f'<line class="rule" x1="{px(value):.1f}" x2="{px(value):.1f}" y1="{top}" y2="{py(yt[0]):.1f}" '
                   f'stroke="{TOP}" stroke-dasharray="6 4"/><text x="{px(value) + 4:.1f}" y="{top + 12}" '
                   f'fill="{TOP}">{_e(label)}</text>')
    groups = rows.groupby(rows[series].astype(str), sort=False) if series else [("", rows)]
    for name, part in groups:
        colour = colours.get(name, BLUE)
        ats, ys, xs_ = [px(v) for v in part[x]], part[y].astype(float).tolist(), part[x].tolist()
        points = sorted(zip(ats, ys, xs_), key=lambda p: p[0])  # along x
        dash = ' stroke-dasharray="2 3"' if name in dotted else ""
        path, pen = [], "M"
        for at, v, _ in points:
            if np.isfinite(v):
                path.append(f"{pen}{at:.1f},{py(v):.1f}")
                pen = "L"
            else:
                pen = "M"  # a gap where a value is missing
        out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for at, v, xv in points:
            if np.isfinite(v):
                who = f"{name} · " if name else ""
                data = f'{_attr(series)}="{_e(name)}" ' if series else ""
                data += f'{_attr(x)}="{_e(xv)}" {_attr(y)}="{v!r}"'
                out.append(f'<circle class="point" cx="{at:.1f}" cy="{py(v):.1f}" r="3.5" fill="{colour}" {data}>'
                           f'<title>{_e(who)}{_e(x_title)} {_e(xv)}: {_num(v)}</title></circle>')
    return "".join(out) + "</svg>"


def bar_chart(rows: pd.DataFrame, label: str, value: str, title: str, value_title: str, width: int = 460) -> str:
    """``rows`` (label, value) in order from the top -> horizontal bars from 0, each with its value at its end."""
    labels = [str(v) for v in rows[label]]
    values = rows[value].astype(float).to_numpy()
    xt = _y_ticks(values)
    left = 12 + min(max(map(len, labels), default=0), 30) * CHAR_W
    plot_w, top, step = width - left - 40, 34, 20
    height = top + step * len(labels) + 40

    def px(v: float) -> float:
        return left + (v - xt[0]) / (xt[-1] - xt[0]) * plot_w

    out = _open(width, height, title)
    base = top + step * len(labels)
    for t in xt:
        out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{base}" stroke="#e6e9ef"/>'
                   f'<text x="{px(t):.1f}" y="{base + 16}" text-anchor="middle">{t:g}</text>')
    for i, (name, v) in enumerate(zip(labels, values)):
        y = top + i * step
        a, b = sorted((px(0.0), px(v)))
        shown = name if len(name) <= 30 else name[:29] + "…"
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_e(shown)}</text>'
                   f'<rect class="bar" x="{a:.1f}" y="{y + 3}" width="{max(b - a, 0.5):.1f}" height="{step - 6}" '
                   f'fill="{BLUE}" {_attr(label)}="{_e(name)}" {_attr(value)}="{float(v)!r}">'
                   f'<title>{_e(name)}: {_num(v)}</title>'
                   f'</rect><text x="{b + 4:.1f}" y="{y + 14}" fill="#555">{_num(v)}</text>')
    out.append(f'<line x1="{px(0.0):.1f}" x2="{px(0.0):.1f}" y1="{top}" y2="{base}" stroke="#888"/>'
               f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">{_e(value_title)}</text>')
    return "".join(out) + "</svg>"


def box_chart(rows: pd.DataFrame, title: str, y_title: str, *, x_title: str = "explanation", grey: tuple = (),
              y_rule: tuple[float, str] | None = None, width: int = 460, height: int = 300) -> str:
    """``rows`` (source, q10, q25, median, q75, q90, mean, n_neurons), one box per source in the rows' order:
    whiskers 10-90 %, box 25-75 % (``grey`` sources grey), the median a white line, the mean a black dot."""
    stats = ["q10", "q25", "median", "q75", "q90", "mean"]
    labels = [str(s) for s in rows["source"]]
    yt = _y_ticks(rows[stats].astype(float).to_numpy().ravel(), (y_rule[0],) if y_rule else ())
    left = 30 + max(len(f"{t:g}") for t in yt) * CHAR_W
    plot_w, top, bottom = width - left - 52, 34, _bottom_labels(labels, True)  # the chance label after the rule
    ph = height - top - bottom

    def py(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    out = _open(width, height, title)
    _y_axis(out, yt, py, left, left + plot_w, y_title)
    band = plot_w / max(len(labels), 1)
    for i, r in enumerate(rows.itertuples()):
        cx, s = left + (i + 0.5) * band, {k: float(getattr(r, k)) for k in ["n_neurons", *stats]}
        tip = f"{r.source} ({int(r.n_neurons)} neurons): " + ", ".join(f"{k} {s[k]:.3f}" for k in stats)
        data = " ".join(f'{_attr(k)}="{s[k]!r}"' for k in ["n_neurons", *stats])
        fill = GREY if r.source in grey else BLUE
        out.append(f'<g class="box" data-source="{_e(r.source)}" {data}><title>{_e(tip)}</title>'
                   f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{py(s["q10"]):.1f}" y2="{py(s["q90"]):.1f}" stroke="#333"/>'
                   f'<rect x="{cx - 14:.1f}" y="{py(s["q75"]):.1f}" width="28" '
                   f'height="{max(py(s["q25"]) - py(s["q75"]), 0.5):.1f}" fill="{fill}"/>'
                   f'<line x1="{cx - 14:.1f}" x2="{cx + 14:.1f}" y1="{py(s["median"]):.1f}" y2="{py(s["median"]):.1f}" '
                   f'stroke="white" stroke-width="2"/><circle cx="{cx:.1f}" cy="{py(s["mean"]):.1f}" r="3"/>'
                   f'<text x="{cx:.1f}" y="{py(s["q90"]) - 5:.1f}" text-anchor="middle" fill="#555">'
                   f'{s["median"]:.2f}</text></g>'
                   f'<text transform="translate({cx:.1f} {py(yt[0]) + 12:.1f}) rotate(-45)" '
                   f'text-anchor="end">{_e(str(r.source)[:24])}</text>')
    if y_rule:
        _h_rule(out, *y_rule, py, left, left + plot_w, label_after=True)
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(yt[0]):.1f}" y2="{py(yt[0]):.1f}" stroke="#888"/>'
               f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">{_e(x_title)}</text>')
    return "".join(out) + "</svg>"


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

    out = _open(width, height, "activation over the probing set", title_x=left)
    _y_axis(out, yt, y, left, left + pw, "clips")
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
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">activation</text>')
    for i, (side, colour) in enumerate((("top-K", TOP), ("bottom-K", BOTTOM))):
        lx = width - right - 150 + i * 75
        out.append(f'<path d="M{lx},22 l5,-9 l5,9 z" fill="{colour}"/><text x="{lx + 14}" y="22">{side}</text>')
    return "".join(out) + "</svg>"
