"""A fresh tab draws a page's main content first (``pages._shared.main_content_sent``): the page sends its main
content, then pauses once per session so the browser draws it before the heavier elements below it arrive.

Each test replaces the pause with ``st.stop()``: what the page sent up to there is what a fresh tab draws first.
Then the same session runs the page again: no pause (the browser has the elements' code by now), the whole page.
"""

from __future__ import annotations

import pytest
import streamlit as st
from _app_pages import chart_titles, run_page
from _app_tiny_model import patch_model_loader
from streamlit.testing.v1 import AppTest

import pages._shared as shared
from and_engine.explorer import charts, related


@pytest.fixture
def pauses(app_db, monkeypatch) -> list[str]:
    """-> the pages that paused (each pause ends the page run there, as if the rest had not arrived yet)."""
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    monkeypatch.setenv("AND_EXPLORER_FIRST_PAINT_S", "0.15")
    seen: list[float] = []

    def stop_here(seconds: float) -> None:
        seen.append(seconds)
        st.stop()

    monkeypatch.setattr(shared, "_wait", stop_here)
    return seen


def _texts(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def _first_part(page: str, pauses: list[float], prepares: bool = False, **kwargs):
    """A fresh tab's first run of ``page``, up to its pause: what the browser draws first. A page that ``prepares``
    the rest of it before the pause waits 0.15 s less the time that took."""
    at = run_page(page, **kwargs)
    assert not at.exception and len(pauses) == 1
    assert 0.0 <= pauses[0] < 0.15 if prepares else pauses == [0.15]
    return at


def _full_run(at, pauses: list[float]):
    """The same session's next run of the page: no second pause, the whole page."""
    at.run()
    assert not at.exception
    assert len(pauses) == 1
    return at


def test_overview_sends_its_metrics_before_the_tables_and_charts(pauses):
    first = _first_part("pages/overview.py", pauses)
    assert [m.label for m in first.metric] == ["models", "neurons", "builds"]
    assert not chart_titles(first) and not first.dataframe
    full = _full_run(first, pauses)
    assert chart_titles(full) and full.dataframe


def test_neuron_sends_its_summaries_before_the_histogram_clips_and_concepts(pauses, monkeypatch):
    drawn, related_read = [], []
    real_image, real_related = charts.clip_image, related.related
    monkeypatch.setattr(charts, "clip_image", lambda spec, m: drawn.append(m is not None) or real_image(spec, m))
    monkeypatch.setattr(related, "related", lambda *a: related_read.append(a[1:]) or real_related(*a))
    first = _first_part("pages/neuron.py", pauses, prepares=True)
    assert "**S_h: summary of the top-K captions**" in _texts(first)
    assert "**S_l: summary of the bottom-K captions**" in _texts(first)
    assert not first.get("image") and not first.get("audio") and not first.dataframe
    # ... and while the tab draws them, the page read and drew what comes below (sent afterwards in one burst)
    assert len(drawn) == 10 and any(drawn) and len(related_read) == 1
    full = _full_run(first, pauses)
    assert full.get("image") and full.get("audio") and full.dataframe  # the histogram, the clips, the tables


def test_the_pause_is_shortened_by_the_time_the_page_prepares_the_rest(monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_FIRST_PAINT_S", "0.3")
    seen: list[float] = []
    monkeypatch.setattr(shared, "_wait", seen.append)

    def page() -> None:
        import time

        import streamlit as st

        from pages._shared import main_content_sent

        st.markdown(f"{main_content_sent('p', lambda: time.sleep(0.1) or 42)} {main_content_sent('q')}")

    at = AppTest.from_function(page).run()
    assert not at.exception and at.markdown[0].value == "42 None" and len(seen) == 2
    assert 0.15 < seen[0] <= 0.2 and seen[1] == 0.3  # q prepares nothing: the whole pause
    at.run()
    assert at.markdown[0].value == "42 None" and len(seen) == 2  # the same session: prepared again, no pause


def test_concepts_sends_its_adjective_counts_before_the_charts_and_word_clouds(pauses):
    first = _first_part("pages/concepts.py", pauses)
    assert "distinct adjectives** in the calibrated summaries" in _texts(first)
    assert not chart_titles(first) and not first.image
    full = _full_run(first, pauses)
    assert chart_titles(full) == ["adjectives (all models)", "elbow curve"] and len(full.image) > 2


@pytest.mark.slow
def test_compare_sends_its_partner_count_before_the_heatmap_and_tables(pauses, tiny_build, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_CONFIG", str(tiny_build[0]))  # two models
    monkeypatch.delenv("AND_EXPLORER_DB")
    first = _first_part("pages/compare.py", pauses, timeout=120)
    assert first.metric[0].label.startswith("neurons of yamnet with a partner in yamnet-frozen")
    assert not chart_titles(first) and not first.dataframe
    full = _full_run(first, pauses)
    assert chart_titles(full) and full.dataframe


def test_human_evaluation_sends_the_rater_box_before_the_results_tab(pauses):
    first = _first_part("pages/human_eval.py", pauses)
    assert [t.label for t in first.text_input] == ["Your rater name"]
    assert not first.info  # the rater's hint and the results tab's content come after the pause
    full = _full_run(first, pauses)
    assert [i.value for i in full.info][-2:] == [
        "Enter a rater name to start; your ratings are saved under it.", "No ratings yet."]


def test_query_by_sound_sends_the_uploader_and_its_hint_before_the_recorder(pauses, monkeypatch):
    patch_model_loader(monkeypatch)
    first = _first_part("pages/by_sound.py", pauses)
    assert first.get("file_uploader") and not first.get("audio_input")
    assert any("nothing is kept on disk" in i.value for i in first.info)
    full = _full_run(first, pauses)
    assert full.get("audio_input") and any("nothing is kept on disk" in i.value for i in full.info)


def test_pruning_sends_its_controls_then_its_metrics_then_the_charts(pauses, monkeypatch):
    patch_model_loader(monkeypatch)
    at = _first_part("pages/pruning.py", pauses)
    assert at.selectbox(key="pr_model") and at.radio(key="pr_method") and not at.metric  # the controls first
    at.run()  # the same session: the controls' pause is done, the metrics' comes next
    assert not at.exception and pauses == [0.15, 0.15]
    assert at.metric[0].label == "neurons pruned" and not at.get("vega_lite_chart")
    at.run()
    assert not at.exception and pauses == [0.15, 0.15] and at.get("vega_lite_chart")


def test_no_pause_when_turned_off(app_db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    monkeypatch.setenv("AND_EXPLORER_FIRST_PAINT_S", "0")
    seen: list[float] = []
    monkeypatch.setattr(shared, "_wait", seen.append)
    at = run_page("pages/overview.py")
    assert not at.exception and chart_titles(at)
    assert seen == [0.0]  # a wait of 0 s: the page goes on at once
