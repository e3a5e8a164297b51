"""Running the app's pages in tests: ``run_page`` (an AppTest switched to a page), ``chart_titles``, ``chart_data``.

``run_page`` lives in ``benchmarks/_apptest.py`` (benchmarks import nothing from ``tests/``); the tests use it
from there so the page tests and the page benchmark drive the app the same way.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from benchmarks._apptest import run_page

__all__ = ["chart_data", "chart_titles", "run_page"]


def chart_titles(at) -> list[str]:
    """Titles of the (Vega-Lite) charts an AppTest run rendered, in order."""
    return [json.loads(c.proto.spec).get("title", "") for c in at.get("vega_lite_chart")]


def chart_data(at, title_part: str) -> pd.DataFrame:
    """The data drawn by the (Vega-Lite) chart whose title contains ``title_part``: Streamlit sends a spec's
    top-level inline data as an Arrow table beside the spec."""
    chart = next(c for c in at.get("vega_lite_chart") if title_part in json.loads(c.proto.spec).get("title", ""))
    return pa.ipc.open_stream(chart.proto.data.data).read_pandas()
