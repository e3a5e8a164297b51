"""Running the app's pages in tests: ``run_page`` (an AppTest switched to a page) and ``chart_titles``."""

from __future__ import annotations

import json

from and_engine.config import PROJECT_ROOT


def _server_navigation_mode() -> None:
    """Make every AppTest run behave like a running server after its first script run.

    AppTest resets Streamlit's legacy pages/-directory flag before *every* run, so each run would start in
    that mode and go through the page's switch-and-rerun (``pages/_shared.py``), which drops button and
    form-submit values. A server leaves the mode once, on its first run (covered by tests/test_browser.py).
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager.__init__, "_and_patched", False):
        return
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    init._and_patched = True
    PagesManager.__init__ = init


def run_page(page: str, query_params: dict | None = None, timeout: float = 60):
    """AppTest of ``app.py`` switched to ``page`` (e.g. "pages/neuron.py"), run once -> the AppTest.

    The caller sets ``AND_EXPLORER_DB`` (and ``AND_EXPLORER_RATINGS``) with monkeypatch.setenv first.
    """
    from streamlit.testing.v1 import AppTest

    _server_navigation_mode()

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=timeout)
    for k, v in (query_params or {}).items():
        at.query_params[k] = v
    at.switch_page(page)
    return at.run()


def chart_titles(at) -> list[str]:
    """Titles of the plotly charts an AppTest run rendered, in order."""
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
