"""Overview page: models, provenance, accuracy table, Figure 5 / 6 with the τ selector, top adjectives."""

from __future__ import annotations

import shutil

import pytest
from _app_fixture import SAE_LAYER
from _app_pages import chart_data, chart_titles, run_page


@pytest.fixture
def db(app_db):
    return app_db


def test_overview_renders_everything(db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(db))
    at = run_page("pages/overview.py")
    assert not at.exception
    assert [m.value for m in at.metric][:3] == ["1", "26", "1"]  # models, neurons (8 + 12 + 6), builds
    frames = [d.value for d in at.dataframe]
    assert any("heldout_accuracy" in f.columns for f in frames)
    assert any(set(f["layer"]) == {"block1.conv", "block2.fc", "classifier", SAE_LAYER} for f in frames if "layer" in f)
    assert any("top1" in f.columns for f in frames)
    titles = chart_titles(at)
    assert len(titles) == 5  # + the explanation scores per layer and in one layer (tests/test_app_scores.py)
    assert "τ = 3" in titles[1] and "Figure 5" in titles[0] and "top-20" in titles[2]


def test_sae_layers_are_listed_beside_the_raw_ones_with_their_metrics(db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(db))
    at = run_page("pages/overview.py")
    assert not at.exception
    layers = next(d.value for d in at.dataframe if {"layer", "kind"} <= set(d.value.columns))
    assert layers.loc[layers["layer"] == SAE_LAYER, ["kind", "n_neurons", "block"]].values.tolist() == [["sae", 16, 0]]
    assert "Sparse autoencoders" in [h.value for h in at.subheader]
    sae = next(d.value for d in at.dataframe if "fve_typical" in d.value.columns)
    row = sae.iloc[0]
    assert (row["layer"], row["source_layer"], row["n_latents"], row["k"]) == (SAE_LAYER, "block1.conv", 16, 2)
    assert 0 < row["fve"] <= 1 and row["n_dead"] + row["n_dense"] <= 16
    assert set(chart_data(at, "Figure 6")["model"]) == {"tinynet", "tinynet (SAE)"}  # a line of its own


def test_tau_selector_and_provenance(db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(db))
    at = run_page("pages/overview.py")
    assert not at.get("json") and not [s for s in at.selectbox if s.key == "prov_step"]  # a closed lazy expander
    at.select_slider(key="tau").set_value(5).run()
    assert not at.exception
    assert "τ = 5" in chart_titles(at)[1]
    at.session_state["ov_provenance"] = True  # the expander opened: its content drawn
    at.run()
    step = at.selectbox(key="prov_step")
    assert "summaries layer=block2.fc/model=tinynet" in step.options  # one step per (model, layer), as a build
    step.set_value("summaries layer=block2.fc/model=tinynet").run()
    assert '"backend":"rule"' in at.json[0].proto.body.replace(" ", "")


def test_missing_database_gives_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(tmp_path / "nope.duckdb"))
    at = run_page("pages/overview.py")
    assert not at.exception
    assert "Cannot open the results database" in at.error[0].value


def test_no_database_lock_is_held_between_page_views(db, tmp_path, monkeypatch):
    import duckdb

    from and_engine.store.results import ResultsStore, StoreError

    db = shutil.copyfile(db, tmp_path / "results.duckdb")  # a writer opens it below: not the shared database
    monkeypatch.setenv("AND_EXPLORER_DB", str(db))
    reader = ResultsStore(db, read_only=True)
    with pytest.raises((StoreError, duckdb.Error)):  # what a build would meet while the app kept the file open
        ResultsStore(db)
    reader.close()
    for page in ("pages/overview.py", "pages/neuron.py", "pages/concepts.py"):
        assert not run_page(page).exception
        ResultsStore(db).close()  # a writer can open the database right after a page view


def test_server_config_is_local_only():
    import tomllib
    from pathlib import Path

    cfg = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "localhost" and cfg["server"]["headless"] is True
    assert cfg["browser"]["gatherUsageStats"] is False
