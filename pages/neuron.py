"""Neuron: one neuron's top-K / bottom-K clips (audio, spectrogram + map), summaries, calibration, concepts."""

import streamlit as st

from and_engine.explorer import aggregates, availability, live, queries, scores
from pages._local_llm import local_llm_section
from pages._neuron_views import (
    clip_card,
    density_section,
    download_section,
    effect_section,
    quantile_section,
    read_rest,
    related_section,
)
from pages._shared import (
    layers_or_stop,
    main_content_sent,
    md,
    md_lines,
    neuron_link,
    per_version,
    run_config,
    store,
)

st.title("Neuron")
db = store()
cfg = run_config(db)
models = per_version(queries.models, db)
if models.empty:
    st.warning("This results database holds no target model yet.")
    st.stop()


def _draw_random() -> None:
    """After a click on "Random neuron": preset the widgets to a seeded draw (reproducible per session)."""
    if not st.session_state.pop("nr_want_random", False):
        return
    st.session_state["nr_draws"] = st.session_state.get("nr_draws", 0) + 1
    model = st.session_state.get("nr_model", models["model"].iloc[0])
    layer, neuron = aggregates.random_neuron(db, model, seed=st.session_state["nr_draws"])
    st.session_state[f"nr_layer_{model}"] = layer
    st.session_state[f"nr_neuron_{model}_{layer}"] = neuron


def _apply_url() -> None:
    """When the URL names a neuron other than the one this page last showed (a link, an edited URL), the URL
    wins: validate each parameter and preset the widgets; unknown values give a warning, never an error."""
    want = tuple(st.query_params.get(k) for k in ("model", "layer", "neuron"))
    if want == st.session_state.get("nr_url") or want == (None, None, None):
        return
    st.session_state["nr_url"] = want
    model, layer, neuron = want
    if model is not None and model not in models["model"].tolist():
        st.warning(f"Unknown model {md(repr(model))} in the URL; showing {md(models['model'].iloc[0])} instead.")
        return
    model = model or models["model"].iloc[0]
    st.session_state["nr_model"] = model
    names = layers_or_stop(db, model).set_index("layer")["n_neurons"]
    if layer is not None and layer not in names.index:
        st.warning(f"Unknown layer {md(repr(layer))} of {md(model)} in the URL; showing {md(names.index[0])}.")
        return
    layer = layer or names.index[0]
    st.session_state[f"nr_layer_{model}"] = layer
    if neuron is not None:
        ok = neuron.isascii() and neuron.isdigit() and len(neuron) < 10 and int(neuron) < int(names[layer])
        if not ok:
            st.warning(f"Neuron {md(repr(neuron))} from the URL is not in 0..{int(names[layer]) - 1}; showing 0.")
        st.session_state[f"nr_neuron_{model}_{layer}"] = int(neuron) if ok else 0


with st.sidebar:
    _apply_url()
    _draw_random()
    model = st.selectbox("Model", models["model"].tolist(), key="nr_model")
    layers = layers_or_stop(db, model)
    layer = st.selectbox("Layer", layers["layer"].tolist(), key=f"nr_layer_{model}")
    n_neurons = int(layers.set_index("layer").loc[layer, "n_neurons"])
    nkey = f"nr_neuron_{model}_{layer}"
    neuron = st.number_input(f"Neuron (0..{n_neurons - 1})", 0, n_neurons - 1, step=1, key=nkey)
    st.button("Random neuron", icon=":material/casino:", key="nr_random",
              on_click=lambda: st.session_state.update(nr_want_random=True))
    term = st.text_input("Search by concept or adjective", key="nr_search")
    if term.strip():
        hits = aggregates.search_neurons(db, term, limit=15)
        if hits.empty:
            st.caption("no neuron matches")
        for h in hits.itertuples():
            neuron_link(h.model, h.layer, h.neuron, f"{h.model}/{h.layer}/{h.neuron} · {h.matched_by}: {h.match}")

st.query_params.update({"model": model, "layer": layer, "neuron": str(int(neuron))})
st.session_state["nr_url"] = (model, layer, str(int(neuron)))
try:
    queries.check_neuron(db, model, layer, neuron)
    ext = queries.extremes(db, model, layer, neuron)
except queries.NotFoundError as exc:
    st.warning(md(exc))
    st.stop()

st.subheader(f"{model} / {layer} / neuron {neuron}")
values = queries.activations(db, model, layer, neuron)
top, bottom = ext[ext["side"] == "top"], ext[ext["side"] == "bottom"]

# --- summaries and live calibration (the page's main content: first, so a fresh tab draws it at once) ------------
summ = queries.summaries(db, model, layer, neuron)
points, stored = queries.calibration(db, model, layer, neuron)
c1, c2 = st.columns(2)
c1.markdown("**S_h: summary of the top-K captions**")
c1.markdown(md_lines(summ.get("top", {}).get("summary", "—")))
c2.markdown("**S_l: summary of the bottom-K captions**")
c2.markdown(md_lines(summ.get("bottom", {}).get("summary", "—")))
scored = scores.neuron_scores(db, model, layer, neuron)
if line := scores.score_line(scored, "S_h"):
    c1.caption(md(f"S_h scores: {line}"), help=scores.LINE_HELP)
if "top" in summ:
    status = summ["top"].get("status") or "ok"
    st.caption(md(f"summaries by {summ['top']['backend']} / {summ['top']['llm_model']} (status: {status})"))
sr = int(models.set_index("model").loc[model, "sample_rate"])
rest = main_content_sent("neuron", lambda: read_rest(db, cfg, model, layer, int(neuron), ext, values, sr))
if points.empty:
    st.info("No calibration points for this neuron.")
else:
    default_t = float(stored["threshold"]) if stored else cfg.module_b.threshold
    thr = st.slider("calibration threshold t (remove S_h points with cosine > t to a S_l point)", 0.0, 1.0,
                    default_t, 0.01, key="nr_threshold")
    marked, calibrated = live.recalibrate(points, thr)
    st.markdown("**Calibrated summary S_h^c**")
    st.success(md(calibrated) if calibrated else "(every point was removed)")
    if line := scores.score_line(scored, "S_h^c"):
        st.caption(md(f"scores of the stored S_h^c (t = {default_t:.2f}): {line}"), help=scores.LINE_HELP)
    st.markdown("\n".join(f"- ~~{md(r.point)}~~ ↔ *{md(r.best_match)}* (cos {r.best_cosine:.2f})" if r.removed
                           else f"- {md(r.point)} (best S_l match cos {r.best_cosine:.2f})"
                           for r in marked.itertuples()))  # one element: a fresh tab draws it sooner

st.image(rest.histogram, width="stretch")

local_llm_section(db, cfg, model, layer, int(neuron), st.session_state.get("nr_threshold", cfg.module_b.threshold))

# --- concepts --------------------------------------------------------------------------------------
st.subheader("Closed-set concepts (Module A)")
if one_concept := per_version(availability.no_closed_concepts, db, cfg.module_a.concept_set):
    st.warning(md(f"These concepts say nothing about this neuron: {one_concept}."))
closed = rest.closed
if closed.empty:
    st.info("No closed-set concepts for this layer.")
else:
    st.dataframe(closed, hide_index=True, width="stretch")
opened = rest.opened
st.subheader("Open-set concepts (Module C)")
for kind in sorted(opened["pos"].unique()):
    words = opened.loc[opened["pos"] == kind, "word"].tolist()
    st.markdown(f"**{md(kind)}**: " + " · ".join(md(w) for w in words))
if opened.empty:
    st.info("No open-set concepts for this neuron.")

# --- scores of every explanation ----------------------------------------------------------------------
st.subheader("Scores: how well each explanation predicts this neuron on other clips")
truth = rest.truth
if truth:
    st.caption(md(f"top-K majority label: {truth['majority_label']} ({truth['purity']:.0%} of the top-K clips); "
                  f"{truth['n_naming_captions']} top-K caption(s) name it"), help=scores.NAMES_HELP)
elif unlabelled := per_version(availability.no_labels, db):
    st.caption(md(f"Ground truth (does an explanation name the top-K clips' label?) is unavailable: {unlabelled}."))
if scored.empty:
    st.info("No scores for this neuron (built without the scores stage).")
else:
    tips = scores.help_text(scored.columns)
    config = {c: st.column_config.NumberColumn(c, help=h, format="%.2f") for c, h in tips.items()}
    config["names_majority"] = st.column_config.CheckboxColumn("names label", help=scores.NAMES_HELP)
    st.dataframe(scored, hide_index=True, width="stretch", column_config=config)

density_section(db, model, layer, values)
related_section(rest.related, len(models))
effect_section(db, cfg, model, layer, neuron)


# --- clips -------------------------------------------------------------------------------------------
seconds = cfg.probing_set.clip_seconds
for side, df in (("top-K clips (highest activation)", top), ("bottom-K clips (lowest activation)", bottom)):
    st.subheader(side)
    st.caption(f"Each image: log-mel spectrogram of the clip in grey (0–{seconds:g} s left to right, low frequencies "
               "at the bottom)" + (", with the neuron's activation map over it (dark → bright: low → high)"
                                   if side.startswith("top") and rest.has_maps else ""))
    for r in df.itertuples():
        clip_card(f"**#{r.rank + 1}** clip {r.clip_id} · label **{md(r.label)}** · activation {r.activation:.3f}",
                  r.caption, rest.clips[int(r.clip_id)], rest.images.get(int(r.clip_id)))

quantile_section(rest.quantiles, rest.clips)
download_section(model, layer, neuron)
