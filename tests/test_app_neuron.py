"""Neuron page: URL parameters, audio players, histogram, live calibration, concepts, random neuron, search."""

from __future__ import annotations

import base64

import pytest
from _app_pages import chart_titles, run_page

NEURON = {"model": "tinynet", "layer": "block1.conv", "neuron": "3"}


@pytest.fixture(autouse=True)
def db(app_db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    return app_db


def _markdown(at) -> list[str]:
    return [m.value for m in at.markdown]


def _stored(db, table: str, neuron: dict = NEURON):
    """The rows of ``table`` for ``neuron``, as the engine wrote them."""
    from and_engine.store.results import ResultsStore

    with ResultsStore(db, read_only=True) as store:
        return store.read(table, model=neuron["model"], layer=neuron["layer"], neuron=int(neuron["neuron"]))


def test_neuron_from_url_with_clips_players_and_maps(db):
    from pages._shared import md

    at = run_page("pages/neuron.py", NEURON)
    assert not at.exception and not at.warning
    assert at.number_input(key="nr_neuron_tinynet_block1.conv").value == 3
    audio = at.get("audio")
    assert len(audio) == 10  # top-K and bottom-K (K = 5); the quantile clips' players come on demand
    assert all(a.proto.url.endswith(".mp3") for a in audio)  # stored clip media, MP3s
    assert chart_titles(at) == ["activation over the probing set"]  # a picture: no Vega chart to load
    assert not at.get("vega_lite_chart")
    histogram, *clips = at.get("image")
    svg = base64.b64decode(histogram.proto.imgs[0].url.removeprefix("data:image/svg+xml;base64,")).decode()
    assert svg.startswith("<svg") and "activation over the probing set" in svg and svg.count('class="mark"') == 10
    captions = [i.caption for img in clips for i in img.proto.imgs]
    assert all(i.url.endswith(".jpg") for img in clips for i in img.proto.imgs)
    assert captions.count("spectrogram + neuron map") == 5  # conv layer keeps maps for its top-K clips
    assert captions.count("spectrogram") == 5
    text = "\n".join(_markdown(at))
    assert "label **crackling\\_fire**" in text  # neuron 3 prefers class 3, and S_h says so:
    assert "Fire is present in four of the five clips" in text and "crackling timbre" in text
    concepts = at.dataframe[0].value
    assert {"DB", "TAB", "ICL"} <= set(concepts["method"])
    adjectives = sorted(_stored(db, "open_concepts").query("pos == 'ADJ'")["word"])
    assert "crackling" in adjectives and "noisy" in adjectives  # the crackling fire's captions, via S_h^c
    assert "**ADJ**: " + " · ".join(md(w) for w in adjectives) in text
    summaries = [m for m in _markdown(at) if m.startswith("1\\.")]
    assert len(summaries) == 2 and "  \n2\\." in summaries[0] and "  \n3\\." in summaries[0]  # a point per line


def _struck(at) -> list[str]:
    """The calibration points the page shows as removed (struck through; one markdown list of every point)."""
    points = [line for m in _markdown(at) if m.startswith("- ") for line in m.split("\n")]
    return [p for p in points if p.startswith("- ~~")]


def test_threshold_slider_recalibrates_live(db):
    bells = {**NEURON, "neuron": "7"}  # the church bells neuron: its S_l is loud too
    cosines = _stored(db, "calibration_points", bells)["best_cosine"]
    at = run_page("pages/neuron.py", bells)
    struck = _struck(at)
    assert len(struck) == (cosines > 0.7).sum() == 1 and "loud and forceful" in struck[0] and "(cos 0.83)" in struck[0]
    at.slider(key="nr_threshold").set_value(0.3).run()
    assert len(_struck(at)) == (cosines > 0.3).sum() == 2
    at.slider(key="nr_threshold").set_value(0.2).run()
    assert len(_struck(at)) == len(cosines) == 3  # 0.24, 0.35, 0.83 > t
    assert at.success[0].value == "(every point was removed)"
    at.slider(key="nr_threshold").set_value(1.0).run()
    assert not _struck(at)
    assert at.success[0].value.count(".") == 3


@pytest.mark.parametrize("params, message", [
    ({"model": "nope"}, "Unknown model 'nope'"),
    ({"model": "tinynet", "layer": "../../etc"}, "Unknown layer '\\.\\./\\.\\./etc'"),
    ({"model": "[click](http://evil.example)"}, "Unknown model '\\[click\\]\\(http\\://evil\\.example\\)'"),
    ({"model": "tinynet", "layer": "classifier", "neuron": "99"}, "not in 0..5"),
    ({"model": "tinynet", "layer": "classifier", "neuron": "-1; DROP TABLE clips"}, "not in 0..5"),
    ({"model": "tinynet", "layer": "classifier", "neuron": "\u00b2"}, "not in 0..5"),  # isdigit() but not int()
    ({"model": "tinynet", "layer": "classifier", "neuron": "9" * 5000}, "not in 0..5"),  # over int()'s digit limit
])
def test_bad_query_parameters_give_a_warning(db, params, message):
    at = run_page("pages/neuron.py", params)
    assert not at.exception
    assert any(message in w.value for w in at.warning)
    assert len(at.get("audio")) == 10  # falls back to a valid neuron (top-K, bottom-K)


def test_random_neuron_and_search(db):
    at = run_page("pages/neuron.py", NEURON)
    seen = set()
    for _ in range(4):
        at.button(key="nr_random").click().run()
        assert not at.exception
        q = at.query_params
        seen.add((q["layer"], q["neuron"]))
        assert at.subheader[0].value == f"tinynet / {q['layer']} / neuron {q['neuron']}"
    assert len(seen) > 1
    at.text_input(key="nr_search").input("crackling").run()
    links = [link.proto for link in at.get("page_link")]
    assert links and all(link.page == "neuron" for link in links)
    assert "model=tinynet&layer=block1.conv&neuron=3" in [link.query_string for link in links]
    assert all("crackling" in link.label for link in links)


def test_a_link_to_another_neuron_wins_over_the_widgets(db):
    at = run_page("pages/neuron.py", NEURON)
    at.number_input(key="nr_neuron_tinynet_block1.conv").set_value(5).run()
    assert at.subheader[0].value == "tinynet / block1.conv / neuron 5"
    for k, v in {"layer": "classifier", "neuron": "2"}.items():  # what following a page link does
        at.query_params[k] = v
    at.run()
    assert not at.warning and at.subheader[0].value == "tinynet / classifier / neuron 2"
    at.number_input(key="nr_neuron_tinynet_classifier").set_value(4).run()
    assert at.subheader[0].value == "tinynet / classifier / neuron 4" and at.query_params["neuron"] == "4"


def test_database_text_is_shown_literally():
    from pages._shared import md

    shown = md("![x](http://evil.example/a.png) <b>bold</b> **b** a_b")
    for raw in ("![", "](", "<b>", "**", "http:"):
        assert raw not in shown
    assert shown.replace("\\", "") == "![x](http://evil.example/a.png) <b>bold</b> **b** a_b"


def test_a_neuron_without_an_icl_answer_says_no_answer(db, tmp_path, monkeypatch):
    import shutil

    import duckdb

    copy = tmp_path / "results.duckdb"  # the engine stores no ICL rows for a neuron without an answer
    shutil.copy(db, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DELETE FROM closed_concepts WHERE method = 'ICL' AND layer = 'block1.conv' AND neuron = 3")
        con.execute("DELETE FROM closed_concepts WHERE similarity = 'wpmi' AND layer = 'block1.conv' AND neuron = 3")
    monkeypatch.setenv("AND_EXPLORER_DB", str(copy))
    at = run_page("pages/neuron.py", NEURON)
    assert not at.exception
    table = at.dataframe[0].value.set_index(["method", "similarity"])["concepts"]
    assert table["ICL", "llm"].startswith("no answer") and "named no class" in table["ICL", "llm"]
    assert table["DB", "wpmi"].startswith("no concept") and "best score is shared" in table["DB", "wpmi"]
    assert table["DB", "cos"].startswith("crackling_fire (")  # the other pairs still show concepts and scores
