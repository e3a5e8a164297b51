"""Running the app's pages in tests: ``run_page`` (an AppTest switched to a page) and ``chart_titles``.

``run_page`` lives in ``benchmarks/_apptest.py`` (benchmarks import nothing from ``tests/``); the tests use it
from there so the page tests and the page benchmark drive the app the same way.
"""

from __future__ import annotations

import json

from benchmarks._apptest import run_page

__all__ = ["chart_titles", "run_page"]


def chart_titles(at) -> list[str]:
    """Titles of the (Vega-Lite) charts an AppTest run rendered, in order."""
    return [json.loads(c.proto.spec).get("title", "") for c in at.get("vega_lite_chart")]
