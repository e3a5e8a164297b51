"""Neuron page, "Describe with the local LLM": widgets only; ``and_engine.explorer.local_llm`` writes and calibrates
the description, ``and_engine.explorer.live_scores`` scores it as the scores stage scores the stored ones."""

from __future__ import annotations

import json

import streamlit as st

from and_engine.config import Config
from and_engine.explorer import live, live_scores, local_llm, scores
from and_engine.store.results import ResultsStore
from and_engine.store.side_db import SideDatabaseLockedError
from pages._shared import live_cache_store, md, md_lines


@st.cache_resource(show_spinner=False)
def _llm(path: str):
    return local_llm.make_local_llm(path)  # one model load per server process


@st.cache_resource(show_spinner=False)
def _encoder(name: str):
    return local_llm.sentence_encoder(name)


@st.cache_resource(show_spinner=False)
def _scorers(key: tuple, _cfg: Config):
    return live_scores.make_scorers(_cfg)


def _describe(db: ResultsStore, cfg: Config, model: str, layer: str, neuron: int):
    """The cached description, or the button (and the description once pressed); None until there is one."""
    path = local_llm.gguf_path(cfg)
    args = (db, live_cache_store(cfg), _llm(str(path)), model, layer, neuron)
    desc = local_llm.cached_description(*args)
    if desc is None and st.button("Describe with the local LLM", key="nr_local_llm", icon=":material/smart_toy:"):
        with st.spinner(f"{path.name} through llama.cpp on the CPU: about 5-60 s per summary"):
            desc = local_llm.describe_neuron(*args)
    if desc is None:
        st.caption(md(f"Writes S_h and S_l from the same top-K / bottom-K captions with {path.name} (llama.cpp), "
                      "then calibrates and scores them; the answers are cached."))
    return desc


def _scores(db: ResultsStore, cfg: Config, model: str, layer: str, neuron: int, texts: dict[str, str]) -> None:
    s = cfg.scores
    scorers = _scorers((s.scorers, s.text_encoder, s.audio_text_model, str(live.audio_root(cfg)),
                        cfg.probing_set.clip_seconds), cfg)
    with st.spinner("scoring on the neuron's scoring clips"):
        table = live_scores.side_by_side(scores.neuron_scores(db, model, layer, neuron),
                                         live_scores.score_texts(db, scorers, model, layer, neuron, texts))
    if table.empty:
        st.caption("No scores: this database was built without the scores stage.")
        return
    tips = scores.help_text(table.columns)
    config = {c: st.column_config.NumberColumn(c, help=h, format="%.2f") for c, h in tips.items()}
    config["origin"] = st.column_config.TextColumn("by", help="stored: the build's summariser; live: the local LLM")
    st.dataframe(table, hide_index=True, width="stretch", column_config=config)


def local_llm_section(db: ResultsStore, cfg: Config, model: str, layer: str, neuron: int, threshold: float) -> None:
    """The section: install hint, or the button, or the (cached) local-LLM summaries, calibrated at ``threshold``
    and scored beside the stored ones."""
    st.subheader("Describe with the local LLM")
    why = local_llm.unavailable(local_llm.gguf_path(cfg))
    if why:
        st.info(md(why))
        # inline code, not st.code: a code block loads Streamlit's syntax highlighter (~0.5 s of a fresh tab's CPU)
        st.markdown(f"`{local_llm.INSTALL}`")
        return
    try:
        desc = _describe(db, cfg, model, layer, neuron)
    except (local_llm.LocalLLMError, SideDatabaseLockedError) as exc:
        st.error(md(exc))
        return
    if desc is None:
        return
    c1, c2 = st.columns(2)
    c1.markdown("**S_h by the local LLM**")
    c1.markdown(md_lines(desc.text("top") or "—"))
    c2.markdown("**S_l by the local LLM**")
    c2.markdown(md_lines(desc.text("bottom") or "—"))
    points = local_llm.calibration_points(desc, _encoder(cfg.module_b.sentence_encoder), model, layer)
    marked, calibrated = live.recalibrate(points, threshold)
    st.markdown(f"**S_h^c by the local LLM** (t = {threshold:.2f}, {int(marked['removed'].sum())} of "
                f"{len(marked)} point(s) removed)")
    st.success(md(calibrated) if calibrated else "(every point was removed)")
    prov = desc.provenance.sort_values("created_at")
    params = json.loads(prov["params_json"].iloc[0]) if len(prov) else {}
    how = "just computed" if desc.computed else "from the live cache"
    st.caption(md(f"{how}: {prov['backend'].iloc[0]} / {prov['llm_model'].iloc[0]} · {params} · answered "
                  f"{prov['created_at'].iloc[-1]:%Y-%m-%d %H:%M} · status {', '.join(desc.summaries['status'])}"))
    _scores(db, cfg, model, layer, neuron, {"S_h": desc.text("top"), "S_h^c": calibrated})
