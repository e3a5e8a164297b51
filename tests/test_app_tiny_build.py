"""Every page on the real tiny pipeline build (conftest's ``tiny_build``), incl. live pruning of a trained YAMNet."""

from __future__ import annotations

import pytest
from _app_pages import run_page


@pytest.fixture
def env(tiny_build, monkeypatch, tmp_path):
    path, config, _ = tiny_build
    monkeypatch.setenv("AND_EXPLORER_CONFIG", str(path))
    monkeypatch.delenv("AND_EXPLORER_DB", raising=False)
    monkeypatch.setenv("AND_EXPLORER_RATINGS", str(tmp_path / "ratings.duckdb"))
    return config


@pytest.mark.slow
def test_pages_on_the_tiny_build(env):
    for page in ("pages/overview.py", "pages/concepts.py", "pages/human_eval.py"):
        at = run_page(page)
        assert not at.exception and not at.warning and not at.error, page
    at = run_page("pages/neuron.py", {"model": "yamnet-frozen", "layer": "classifier", "neuron": "2"})
    assert not at.exception and not at.warning
    assert len(at.get("audio")) == 10  # top-K, bottom-K (K = 5)
    at = run_page("pages/neuron.py", {"model": "yamnet", "layer": "block1.conv"})  # hooked layers only
    assert "Unknown layer 'block1\\.conv'" in at.warning[0].value
    at = run_page("pages/human_eval.py")
    at.text_input(key="he_rater").input("ann").run()
    assert not at.exception
    assert len([m for m in at.markdown if m.value.startswith("**Description")]) == 3


@pytest.mark.slow
def test_live_pruning_of_the_trained_variant(env):
    at = run_page("pages/pruning.py", timeout=180)
    assert not at.exception and not at.warning
    assert at.selectbox(key="pr_model").options == ["yamnet-frozen"]  # pretrained YAMNet has AudioSet classes
    concept = at.selectbox(key="pr_concept_yamnet-frozen")
    assert "keyboard_typing" not in concept.options  # no held-out clip of it in the tiny probing set
    concept.set_value("crackling_fire").run()
    at.radio(key="pr_method").set_value("DB").run()
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["neurons pruned"]) > 0
    assert metrics["ΔA (target class)"] != "+0.000"
    at.toggle(key="pr_enabled").set_value(False).run()
    assert {m.label: m.value for m in at.metric}["neurons pruned"] == "0"
