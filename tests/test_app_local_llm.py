"""Neuron page, "Describe with the local LLM": the install hint, and the llama-cpp backend (against the recording
fake of llama_cpp) writing S_h / S_l from the stored captions, cached with provenance, calibrated by Module B."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from _app_pages import run_page
from fakes import fixture_scorers, use_fake_llama_cpp

from and_engine.backends.registry import make
from and_engine.explorer import live_scores
from and_engine.store.results import ResultsStore

FIRE = {"model": "tinynet", "layer": "block1.conv", "neuron": "3"}  # top-K: crackling fire
SAME = "1. A loud rumbling engine runs steadily in every one of these clips."


@pytest.fixture()
def env(app_db, monkeypatch, tmp_path):
    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    monkeypatch.setenv("AND_EXPLORER_LIVE_CACHE", str(tmp_path / "live.duckdb"))
    return tmp_path


@pytest.fixture()
def llama(env, monkeypatch):
    """The fake llama_cpp and a file where the GGUF would be (the fake reads nothing); the live scorers are the ones
    the fixture's stored scores were computed with."""
    def scorers(cfg):
        with ResultsStore(cfg.run.database, read_only=True) as db:
            return fixture_scorers(db)

    monkeypatch.setattr(live_scores, "make_scorers", scorers)
    fake = use_fake_llama_cpp(monkeypatch)
    gguf = env / "model.gguf"
    gguf.write_bytes(b"GGUF fake weights")
    monkeypatch.setenv("AND_EXPLORER_LOCAL_LLM", str(gguf))
    return fake


def _texts(at) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(s.value for s in at.success)


def _live_table(at):
    (table,) = [d.value for d in at.dataframe if "origin" in d.value.columns]
    return table


def test_without_the_model_the_page_says_how_to_install(env, monkeypatch):
    monkeypatch.setenv("AND_EXPLORER_LOCAL_LLM", str(env / "missing.gguf"))
    at = run_page("pages/neuron.py", FIRE)
    assert not at.exception
    hint = [i.value for i in at.info if "local LLM is not set up" in i.value]
    assert len(hint) == 1 and "missing.gguf is not there" in hint[0].replace("\\", "")
    assert "`bash scripts/install_local_llm.sh`" in [m.value for m in at.markdown]
    assert not at.code  # a code block would load Streamlit's syntax highlighter into every fresh Neuron tab
    assert not [b for b in at.button if b.key == "nr_local_llm"]


def test_describe_runs_the_stored_prompts_caches_them_and_a_rerun_asks_nothing(env, llama, app_db):
    rule = make("llm", "rule")
    llama.RESPOND = lambda prompt: rule.generate([prompt])[0]  # answers as the build's rule LLM did
    at = run_page("pages/neuron.py", FIRE)
    assert not at.exception and not llama.CALLS  # nothing runs before the click
    at.button(key="nr_local_llm").click().run()
    assert not at.exception and len(llama.CALLS) == 2  # S_h and S_l
    assert llama.INITS[0]["n_threads"] == 1 and llama.INITS[0]["n_threads_batch"] == 1
    assert all(c["temperature"] == 0.0 and c["max_tokens"] == 256 for c in llama.CALLS)
    with ResultsStore(app_db, read_only=True) as db:  # the same prompts and answers as the build's
        stored = db.read("summaries", model="tinynet", layer="block1.conv", neuron=3).set_index("side")["summary"]
        calibrated = db.read("calibrated_summaries", model="tinynet", layer="block1.conv", neuron=3)
    text = _texts(at)
    assert "S_h by the local LLM" in text and stored["top"].splitlines()[0][3:12] in text.replace("\\", "")
    assert calibrated["calibrated_summary"].iloc[0] in [s.value.replace("\\", "") for s in at.success]
    assert any("just computed: llama-cpp / model.gguf#" in c.value.replace("\\", "") for c in at.caption)
    with duckdb.connect(str(env / "live.duckdb"), read_only=True) as con:  # provenance of each answer
        cached = con.execute("SELECT prompt, response, backend, llm_model, params_json, created_at FROM llm_cache").df()
    assert len(cached) == 2 and set(cached["backend"]) == {"llama-cpp"} and cached["created_at"].notna().all()
    assert cached["llm_model"].str.startswith("model.gguf#").all()
    assert '"max_new_tokens": 256' in cached["params_json"][0]
    assert sorted(cached["response"]) == sorted(stored)
    table = _live_table(at)  # S_h and S_h^c, stored and live: the same texts, the same scores
    assert list(table["source"]) == ["S_h", "S_h", "S_h^c", "S_h^c"] and list(table["origin"]) == ["stored", "live"] * 2
    assert {"embedding auc", "embedding pearson_r", "audio-text auc"} <= set(table.columns)
    for source in ("S_h", "S_h^c"):
        pair = table[table["source"] == source].drop(columns=["source", "origin"]).to_numpy(dtype=float)
        np.testing.assert_allclose(pair[0], pair[1], atol=1e-6)
    again = run_page("pages/neuron.py", FIRE)  # another session: from the live cache, no model call
    assert not again.exception and len(llama.CALLS) == 2 and not [b for b in again.button if b.key == "nr_local_llm"]
    assert any("from the live cache: llama-cpp" in c.value.replace("\\", "") for c in again.caption)


def test_a_point_the_local_s_l_also_makes_is_calibrated_away(env, llama):
    top = SAME + "\n2. Crackling fire pops and hisses in the foreground of the recordings."
    llama.RESPOND = lambda prompt: top if "crackling" in prompt else SAME + "\n2. A door creaks open slowly."
    at = run_page("pages/neuron.py", FIRE)
    at.button(key="nr_local_llm").click().run()
    assert not at.exception
    local = [s.value.replace("\\", "") for s in at.success][-1]
    assert local == "Crackling fire pops and hisses in the foreground of the recordings."
    assert any("1 of 2 point(s) removed" in m.value for m in at.markdown)
    table = _live_table(at).set_index(["source", "origin"])  # the new S_h and S_h^c are scored beside the stored
    assert {("S_h", "live"), ("S_h^c", "live"), ("S_h", "stored"), ("S_h^c", "stored")} == set(table.index)
    assert 0 <= table.loc[("S_h^c", "live"), "embedding auc"] <= 1
    at.slider(key="nr_threshold").set_value(1.0).run()  # nothing exceeds cosine 1: both points stay
    assert "A loud rumbling engine" in [s.value.replace("\\", "") for s in at.success][-1]
