"""Run one page of the app headless (Streamlit ``AppTest``) the way a running server does.

``run_page(page, query_params)`` -> the AppTest after its first run. Used by the page tests (through
``tests/_app_fixture.py``) and by ``benchmarks/bench_app.py``; it lives here because benchmarks import
nothing from ``tests/``.
"""

from __future__ import annotations

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
