"""Pruning page: live OCP / DB / TAB / random pruning with the tiny model, on/off toggle, clip prediction."""

from __future__ import annotations

import shutil

from _app_pages import chart_titles, run_page
from _app_tiny_model import patch_model_loader


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_live_pruning_toggle_and_methods(app_db, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    st.cache_resource.clear()  # an earlier page test (the neuron page's effect) may have cached the same target
    calls = patch_model_loader(monkeypatch)
    at = run_page("pages/pruning.py")
    assert not at.exception and not at.warning
    assert calls == ["tinynet"]
    m = _metrics(at)
    assert int(m["neurons pruned"]) > 0  # OCP on the first class (chirping_birds)
    assert chart_titles(at)[:2] == ["change of each class's logit after pruning for 'chirping_birds' (OCP)",
                                    "prediction of the chosen clip"]
    at.toggle(key="pr_enabled").set_value(False).run()
    m = _metrics(at)
    assert m["neurons pruned"] == "0" and m["ΔA (target class)"] == "+0.000"
    at.toggle(key="pr_enabled").set_value(True).run()
    at.radio(key="pr_method").set_value("DB").run()
    assert at.selectbox(key="pr_sim_DB").options == ["cos", "cos3", "wpmi"]
    assert int(_metrics(at)["neurons pruned"]) > 0
    at.radio(key="pr_method").set_value("random").run()
    at.selectbox(key="pr_clip_tinynet").set_value(2).run()
    assert not at.exception
    assert calls == ["tinynet"]  # the model and held-out clips stay cached across reruns
    assert at.radio(key="pr_units").options == ["neurons", "SAE latents"]  # the fixture's SAE layer
    at.radio(key="pr_units").set_value("SAE latents").run()
    assert not at.exception and "SAE latents pruned" in _metrics(at)
    assert not [d for d in at.dataframe if "delta_a_minus_r" in d.value.columns]  # Table 4: a closed expander
    at.session_state["pr_table4"] = True  # opened: drawn
    table4 = [d.value for d in at.run().dataframe if "delta_a_minus_r" in d.value.columns]
    assert len(table4) == 1 and len(table4[0]) > 0 and not at.exception


def test_untrained_model_gives_a_warning(app_db, tmp_path, monkeypatch):
    # another path: the page caches the loaded model per database file, and the test above patched the loader
    monkeypatch.setenv("AND_EXPLORER_DB", str(shutil.copyfile(app_db, tmp_path / "other.duckdb")))
    at = run_page("pages/pruning.py")  # real registry: 'tiny-test' is no model kind it knows
    assert not at.exception
    assert "Live pruning is unavailable for tinynet" in at.warning[0].value


def test_a_fresh_tab_with_the_same_request_reuses_its_result(app_db, tmp_path, monkeypatch):
    """A second session (a fresh tab) opening the page with the same model, concept and method shows the same
    numbers without running the held-out clips again (``live.live_prune`` cached per request); another method
    runs it."""
    import streamlit as st

    from and_engine.explorer import live

    monkeypatch.setenv("AND_EXPLORER_DB", str(shutil.copyfile(app_db, tmp_path / "cached.duckdb")))
    patch_model_loader(monkeypatch)
    st.cache_data.clear()
    runs, real = [], live.live_prune
    monkeypatch.setattr(live, "live_prune", lambda *a, **k: runs.append(a[1]) or real(*a, **k))
    first = run_page("pages/pruning.py")
    again = run_page("pages/pruning.py")
    assert not first.exception and not again.exception
    assert runs == ["OCP"] and _metrics(again) == _metrics(first)
    again.radio(key="pr_method").set_value("random").run()
    assert runs == ["OCP", "random"]
