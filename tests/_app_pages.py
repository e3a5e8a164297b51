"""Running the app's pages in tests: ``run_page`` (an AppTest switched to a page), ``chart_titles``, ``chart_data``.

``run_page`` lives in ``benchmarks/_apptest.py`` (benchmarks import nothing from ``tests/``); the tests use it
from there so the page tests and the page benchmark drive the app the same way.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pandas as pd
import pyarrow as pa

from benchmarks._apptest import run_page

__all__ = ["chart_data", "chart_titles", "run_page", "svg_marks"]
SVG, SVG_URL = "http://www.w3.org/2000/svg", "data:image/svg+xml;base64,"


def svg_marks(svg: ET.Element, kind: str | None = None) -> list[dict[str, str]]:
    """The ``data-*`` attributes (names without ``data-``, values as drawn) of an SVG picture's marks of class
    ``kind`` (point / bar / box; every kind when None), in drawing order."""
    kinds = (kind,) if kind else ("point", "bar", "box")
    return [{k.removeprefix("data-"): v for k, v in e.attrib.items() if k.startswith("data-")}
            for e in svg.iter() if e.get("class") in kinds]


def _charts(at) -> list[tuple[str, object]]:
    """(title, chart) of every chart an AppTest run drew, in page order: Vega-Lite charts (their spec) and SVG
    pictures (their parsed markup, ``and_engine.explorer.svg_charts``)."""
    out = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            if child.type == "vega_lite_chart":
                spec = json.loads(child.proto.spec)
                out.append((spec.get("title", ""), child))
            elif child.type == "image":
                for img in child.proto.imgs:
                    if img.url.startswith(SVG_URL):
                        svg = ET.fromstring(base64.b64decode(img.url.removeprefix(SVG_URL)).decode())
                        title = next((t.text for t in svg.iter(f"{{{SVG}}}text") if t.get("class") == "title"), "")
                        out.append((title, svg))
            walk(child)

    walk(at.main)
    return out


def chart_titles(at) -> list[str]:
    """Titles of the charts (Vega-Lite charts and SVG pictures) an AppTest run drew, in page order."""
    return [title for title, _ in _charts(at)]


def chart_data(at, title_part: str) -> pd.DataFrame:
    """The data drawn by the chart whose title contains ``title_part``: for a Vega-Lite chart, the Arrow table
    Streamlit sends beside the spec; for an SVG picture, the ``data-*`` attributes of its marks (one row per point,
    bar or box, under the drawn columns' names; numbers as numbers)."""
    chart = next(c for title, c in _charts(at) if title_part in title)
    if not isinstance(chart, ET.Element):
        return pa.ipc.open_stream(chart.proto.data.data).read_pandas()
    rows = pd.DataFrame(svg_marks(chart))
    for column in rows.columns:
        try:
            rows[column] = pd.to_numeric(rows[column])
        except (ValueError, TypeError):
            pass  # a name
    return rows
