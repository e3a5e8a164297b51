"""The Neuron page's issue-15 views (AppTest): activation density and flags, related neurons with links and
explanations, clips from every activation quantile, the neuron's download."""

from __future__ import annotations

import numpy as np
import pytest
from _app_pages import chart_titles, run_page

NEURON = {"model": "tinynet", "layer": "block1.conv", "neuron": "3"}


@pytest.fixture(autouse=True)
def db(app_db, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    return app_db


def _values(db, neuron=NEURON) -> tuple[np.ndarray, np.ndarray]:
    """-> (the neuron's activations over the probing set, its layer's (n_clips, n_neurons))."""
    from and_engine.store.results import ResultsStore

    with ResultsStore(db, read_only=True) as store:
        layer = store.read_activations(neuron["model"], neuron["layer"])
    return layer[:, int(neuron["neuron"])], layer


def test_density_follows_the_threshold(db):
    values, layer = _values(db)
    at = run_page("pages/neuron.py", NEURON)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["density"] == f"{(values > 0).mean():.1%}" and metrics["flag"] == "—"
    assert metrics["layer: dead · always on"] == "0 · 0"
    at.number_input(key="nr_density_t").set_value(float(values.max())).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["density"] == "0.0%" and metrics["flag"] == "dead"
    t = float(values.min()) - 0.01
    at.number_input(key="nr_density_t").set_value(t).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["flag"] == "always on" and metrics["density"] == "100.0%"
    assert metrics["layer: dead · always on"] == f"{(layer.max(0) <= t).sum()} · {(layer.min(0) > t).sum()}"


def test_related_neurons_link_to_their_pages_with_explanations(db):
    from and_engine.explorer import related
    from and_engine.store.results import ResultsStore

    at = run_page("pages/neuron.py", NEURON)
    with ResultsStore(db, read_only=True) as store:
        want = related.related(store, "tinynet", "block1.conv", 3)
    tables = [d.value for d in at.dataframe if "link" in d.value.columns]
    assert len(tables) == 2  # same layer, other layers; the one-model database has no other model
    same, other = tables
    assert same["link"].tolist() == ["neuron?model=tinynet&layer=block1.conv&neuron=" + str(n) for n in
                                     want.loc[want["relation"] == "same_layer", "other_neuron"]]
    assert len(same) == 5 and same["correlation"].is_monotonic_decreasing
    # the other dissected layers of the model, its SAE layer among them (block1.conv.sae: a layer like any other)
    assert set(other["other_layer"]) <= {"block1.conv.sae", "block2.fc", "classifier"}
    assert "block1.conv" not in set(other["other_layer"]) and (other["calibrated_summary"] != "").all()
    assert any("this database holds one model" in i.value for i in at.info)


def test_quantile_clips_and_download(db):
    at = run_page("pages/neuron.py", NEURON)
    table = next(m.value for m in at.markdown if m.value.startswith("| quantile | clip |")).split("\n")[2:]
    assert len(table) == 10  # 5 quantile bins x 2 clips, highest first
    assert table[0].startswith("| 80\u2011100\u00a0% |") and table[-1].startswith("| 0\u201120\u00a0% |")
    assert len(at.get("audio")) == 10  # top-K + bottom-K: the quantile clips' players come on demand
    at.toggle(key="nr_quantile_play").set_value(True).run()
    shown = [m.value for m in at.markdown if m.value.startswith("**quantile")]
    assert len(shown) == 10 and [s.split(" clip ")[1].split(" ")[0] for s in shown] == [
        row.split(" | ")[1] for row in table]  # the table's clips, in its order
    assert shown[0].startswith("**quantile 80–100 %**") and shown[-1].startswith("**quantile 0–20 %**")
    assert len(at.get("audio")) == 20  # top-K + bottom-K + the quantile clips
    assert [b.proto.label for b in at.get("download_button")] == ["Download this neuron"]
    at.selectbox(key="nr_download_format").set_value("json").run()
    assert not at.exception


def test_effect_on_the_output_zeroed_then_scaled(db, monkeypatch):
    from _app_tiny_model import patch_model_loader

    from and_engine.explorer import effect, live, queries
    from and_engine.store.results import ResultsStore

    patch_model_loader(monkeypatch)
    at = run_page("pages/neuron.py", {**NEURON, "layer": "block2.fc", "neuron": "4"})
    assert not at.exception and at.toggle(key="nr_effect_on").value is False
    at.toggle(key="nr_effect_on").set_value(True).run()
    assert not at.exception and not at.warning
    with ResultsStore(db, read_only=True) as store:
        target = live.load_pruning_target(queries.run_config(store), "tinynet", queries.clips(store).reset_index())
    want = effect.neuron_effect(target, "block2.fc", 4, 0.0)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["predictions changed"] == f"{want.n_flipped} of {want.n_clips}"
    assert metrics["held-out accuracy"] == f"{want.accuracy_after:.1%}"
    delta = {m.label: m.delta for m in at.metric}["held-out accuracy"]
    changed = want.accuracy_after != want.accuracy_before
    assert (delta == f"{want.accuracy_after - want.accuracy_before:+.1%}") if changed else not delta
    title = "change of each class's logit, neuron 4 zeroed"
    assert title in chart_titles(at)
    at.select_slider(key="nr_effect_scale").set_value(5.0).run()
    scaled = effect.neuron_effect(target, "block2.fc", 4, 5.0)
    assert {m.label: m.value for m in at.metric}["predictions changed"] == f"{scaled.n_flipped} of 12"
    assert "change of each class's logit, neuron 4 scaled 5×" in chart_titles(at)


def test_effect_says_why_no_logit_changes(db, monkeypatch):
    """Unit 4 of block2.fc is read by no classifier weight: every change is exactly 0 and the page gives the
    model's reason (``TargetModel.why_unchanged``); unit 3, read, gets no such line."""
    import streamlit as st
    import torch
    from _app_tiny_model import tiny_target_model

    import and_engine.models.registry as registry

    def unread(model, layer: str, neuron: int, _inputs) -> str:
        read = model.module.classifier.weight[:, neuron].any()
        return "" if layer != "block2.fc" or read else "every weight of classifier that reads this unit is 0."

    def load(model_cfg, config, probing_set, waveforms_fn, progress=None):
        model = tiny_target_model()
        with torch.no_grad():
            model.module.classifier.weight[:, 4] = 0.0
        model.why_unchanged = lambda *args: unread(model, *args)
        return model, {"checkpoint": "", "description": "tiny"}

    monkeypatch.setattr(registry, "load_target_model", load)
    st.cache_resource.clear(), st.cache_data.clear()  # an earlier test cached the unedited target and its effects
    try:
        for neuron, said in (("4", True), ("3", False)):
            at = run_page("pages/neuron.py", {**NEURON, "layer": "block2.fc", "neuron": neuron})
            at.toggle(key="nr_effect_on").set_value(True).run()
            assert not at.exception
            if said:
                assert {m.label: m.value for m in at.metric}["predictions changed"] == "0 of 12"
                # nothing changed, so no "+0.0%" delta (Streamlit draws it as a green arrow)
                assert not {m.label: m.delta for m in at.metric}["held-out accuracy"]
            reasons = [i.value for i in at.info if i.value.startswith("Every logit changes by exactly 0")]
            assert bool(reasons) == said and (not said or "every weight of classifier" in reasons[0])
    finally:
        st.cache_resource.clear(), st.cache_data.clear()  # later tests get the unedited target


@pytest.mark.slow
def test_effect_is_unavailable_for_a_model_whose_classes_are_not_the_labels(tiny_build, monkeypatch):
    path, _config, _ = tiny_build
    monkeypatch.setenv("AND_EXPLORER_CONFIG", str(path))
    monkeypatch.delenv("AND_EXPLORER_DB", raising=False)
    at = run_page("pages/neuron.py", {"model": "yamnet", "layer": "block2.pointwise", "neuron": "0"})
    assert not at.exception
    info = [i.value for i in at.info if i.value.startswith("Unavailable for yamnet")]
    assert info and "not the probing set's labels" in info[0] and "Models with it: yamnet\\-frozen" in info[0]


def test_a_clip_whose_audio_cannot_be_read_says_why_in_its_card(db, tmp_path, monkeypatch):
    """A database without stored clip media decodes the probing set's files; a missing file gives its card a
    warning instead of a player (the other clips play), on the top-K cards and the quantile players alike."""
    import shutil

    import duckdb

    copy = shutil.copyfile(db, tmp_path / "results.duckdb")
    with duckdb.connect(str(copy)) as con:
        top1 = con.execute('SELECT topk_clip_ids[1] FROM "extremes" WHERE model = ? AND layer = ? AND neuron = ?',
                           [NEURON["model"], NEURON["layer"], int(NEURON["neuron"])]).fetchone()[0]
        con.execute('DELETE FROM "clip_media"')
        con.execute('UPDATE "clips" SET rel_path = ? WHERE clip_id = ?', ["missing/clip.wav", top1])
    monkeypatch.setenv("AND_EXPLORER_DB", str(copy))
    at = run_page("pages/neuron.py", NEURON)
    assert not at.exception
    warned = [w.value for w in at.warning if w.value.startswith("Audio unavailable")]
    assert len(warned) == 1 and len(at.get("audio")) == 9  # the other 9 top-K / bottom-K clips play
    cards = [m.value for m in at.markdown if m.value.startswith("**#1** clip ")]
    assert cards[0].startswith(f"**#1** clip {top1} ")
    at.toggle(key="nr_quantile_play").set_value(True).run()
    quantile_ids = [int(m.value.split(" clip ")[1].split(" ")[0]) for m in at.markdown
                    if m.value.startswith("**quantile")]
    assert len(at.get("audio")) == 9 + len(quantile_ids) - quantile_ids.count(top1)
