"""Pruning: zero the neurons a method ties to a concept, live, and see what the model loses (Table 4, Fig. 10)."""

import streamlit as st

from and_engine.explorer import aggregates, availability, charts, live
from pages._shared import (
    change_text,
    download,
    layers_or_stop,
    main_content_sent,
    md,
    missing,
    per_version,
    pruning_target,
    results_path,
    run_config,
    store,
)

st.title("Concept-specific pruning")
db = store()
cfg = run_config(db)
prunable = per_version(aggregates.prunable_models, db)
if not prunable:
    st.warning(md(f"Concept-specific pruning is unavailable: {per_version(availability.no_output_measure, db)}."))
    st.stop()


@st.cache_data(show_spinner=False, max_entries=32)
def _candidates(db_path: str, db_mtime: float, model: str, concept: str, top_n: int):
    return aggregates.pruning_candidates(db, model, concept, top_n)


@st.cache_data(show_spinner=False, max_entries=256)
def _prune(db_path: str, db_mtime: float, model: str, method: str, concept: str, units: tuple, clip_row: int,
           similarity: str | None, top_n: int, seed: int, enabled: bool, _target, _closed, _opened):
    """``live.live_prune``, cached per request (``_closed`` / ``_opened`` follow from model, concept, top_n;
    ``units``: the layer sizes as (layer, n) pairs in the layers' order, which the selection follows)."""
    return live.live_prune(_target, method, concept, _closed, _opened, dict(units), clip_row=clip_row,
                           similarity=similarity, top_n=top_n, seed=seed, enabled=enabled)


c1, c2, c3 = st.columns(3)
model = c1.selectbox("model", prunable, key="pr_model")
db_key = (str(results_path()), results_path().stat().st_mtime)  # reload when the database is rebuilt
try:
    target = pruning_target(db, cfg, model)
except (live.LiveError, ImportError, OSError, ValueError) as exc:
    st.warning(f"Live pruning is unavailable for {md(model)}: {md(exc)}")
    st.stop()
concept = c2.selectbox("target concept", target.concepts, key=f"pr_concept_{model}",
                       help="classes of the model with at least one held-out clip")
method = c3.radio("method", ["OCP", "DB", "TAB", "random"], key="pr_method", horizontal=True)
top_n = cfg.analyses.closed_top_n_for_pruning
closed, opened = _candidates(*db_key, model, concept, top_n)
layer_rows = layers_or_stop(db, model)
sae_sizes = live.pruning_layers(target, layer_rows, sae=True)
units = "neurons"
if sae_sizes:
    units = st.radio("units", ["neurons", "SAE latents"], key="pr_units", horizontal=True,
                     help="SAE latents: ablated in the sparse autoencoder's reconstruction of their layer (the "
                          "reconstruction error is kept), selected by the same rules from their own concepts")
sizes = sae_sizes if units == "SAE latents" else live.pruning_layers(target, layer_rows)
similarity = None
if method in ("DB", "TAB"):
    sims = per_version(aggregates.similarities, db, model, method)
    if not sims:
        st.warning(f"No {method} concepts stored for {md(model)}.")
        st.stop()
    similarity = st.selectbox("similarity function", sims, key=f"pr_sim_{method}")
enabled = st.toggle("prune the selected neurons", value=True, key="pr_enabled")
clip_labels = [f"{r.clip_id}: {r.label} ({r.rel_path})" for r in target.clips.itertuples()]
clip_row = st.selectbox("clip to inspect", range(len(clip_labels)), format_func=clip_labels.__getitem__,
                        key=f"pr_clip_{model}")
main_content_sent("pruning controls")  # drawn first: the metrics below need their values
try:
    res = _prune(*db_key, model, method, concept, tuple(sizes.items()), clip_row, similarity, top_n,
                 cfg.run.seed, enabled, target, closed, opened)
except ValueError as exc:
    st.warning(md(exc))
    st.stop()

m1, m2, m3, m4, m5 = st.columns(5)
m1.metric(f"{units} pruned", sum(len(v) for v in res.neurons.values()))
m2.metric("ΔA (target class)", f"{res.delta_a:+.3f}")
m3.metric("ΔR (other classes)", f"{res.delta_r:+.3f}")
m4.metric("ΔR − ΔA", f"{res.delta_a_minus_r:+.3f}",
          help="the paper's 'ΔA − ΔR' column (Table 4): how much more the target class's logit drops than the "
               "other classes' (positive = concept-specific)")
m5.metric("held-out accuracy", f"{res.accuracy_after:.1%}", change_text(res.accuracy_before, res.accuracy_after),
          help=f"before pruning {res.accuracy_before:.1%}, after {res.accuracy_after:.1%} "
               f"({len(target.clips)} held-out clips)")
main_content_sent("pruning")
left, right = st.columns([2, 1])
left.vega_lite_chart(spec=charts.per_class_delta(res.per_class, f"change of each class's logit after pruning for "
                                                 f"'{concept}' ({method})"), width="stretch", key="fig10")
with right:
    st.markdown(f"**{units} pruned per layer**")
    st.dataframe(res.per_layer, hide_index=True, width="stretch")
st.vega_lite_chart(spec=charts.before_after(res.clip_probs), width="stretch", key="clip_pred")
top_before, top_after = res.clip_probs.iloc[0], res.clip_probs.sort_values("after").iloc[-1]
st.caption(f"Prediction before: **{md(top_before['class_name'])}** ({top_before['before']:.1%}); after: "
           f"**{md(top_after['class_name'])}** ({top_after['after']:.1%}).")
tables = res.tables(model=model, concept=concept, method=method, similarity=similarity, units=units,
                    pruning_on=enabled, clip=clip_labels[clip_row])

stored = st.expander("Stored Table 4 for all concepts (from the build)", key="pr_table4", on_change="rerun")
if stored.open:  # drawn only while open (a lazy expander)
    with stored:
        table4 = per_version(aggregates.pruning_summary, db, model)
        if table4.empty:
            st.info(missing("pruning", "stored Table 4"))
        else:
            st.dataframe(table4, hide_index=True, width="stretch")
            tables["stored_table4"] = table4
download("Download this view", f"pruning.{model}.{concept}.{method}", lambda _db: tables, key="pr_download")
