"""Compare two models: neurons matched by activation correlation per layer pair, and Section 4.5's comparisons
(closed-concept distributions, adjectives per block, % uninterpretable per block) side by side."""

import streamlit as st

from and_engine.explorer import aggregates, charts, queries, related
from pages._shared import download, main_content_sent, md, per_version, store

st.title("Compare two models")
db = store()
models = per_version(queries.models, db)["model"].tolist()
if len(models) < 2:
    st.warning(f"This database holds {'one model' if models else 'no model'}"
               f"{' (' + md(models[0]) + ')' if models else ''}: a comparison needs two models dissected on the same "
               "probing set in one build (add a second `[[models]]` entry to the configuration and rebuild).")
    st.stop()

c1, c2, c3 = st.columns([2, 2, 3])
model_a = c1.selectbox("model A", models, key="cmp_a")
model_b = c2.selectbox("model B", [m for m in models if m != model_a], key="cmp_b")
threshold = c3.slider("partner threshold: correlation r ≥", 0.0, 1.0, 0.5, 0.05, key="cmp_threshold",
                      help="A neuron of A has a partner in a layer of B when its best-correlated neuron there "
                           "(Pearson r of the activations over the probing set) reaches this value.")

# --- neurons matched by activation correlation ------------------------------------------------------------
st.subheader("Neurons matched by activation correlation")
counts = pairs = None
if model_a not in per_version(related.compared_models, db):
    st.info("No neuron matching in this database: it was built before the related_neurons stage (rebuild it: "
            "`python -m and_engine build --config ...` computes only that stage).")
else:
    n_matched, n_neurons = per_version(related.partner_total, db, model_a, model_b, threshold)
    st.metric(f"neurons of {model_a} with a partner in {model_b} (r ≥ {threshold:.2f})",
              f"{n_matched:,} of {n_neurons:,} ({n_matched / max(n_neurons, 1):.0%})",
              help=f"a partner in any layer of {model_b}; per layer pair below")
    main_content_sent("compare")
    counts = per_version(related.partner_counts, db, model_a, model_b, threshold)
    st.vega_lite_chart(spec=charts.match_heatmap(counts, model_a, model_b, threshold), width="stretch",
                       key="cmp_heatmap")
    best = counts.sort_values("share", ascending=False, kind="stable").drop_duplicates("layer").set_index("layer")
    best = best.reindex(list(dict.fromkeys(counts["layer"])))
    st.caption(f"For each layer of {md(model_a)}: the layer of {md(model_b)} where most of its neurons have a "
               f"partner with r ≥ {threshold:.2f}.")
    st.dataframe(best.reset_index()[["layer", "other_layer", "n_matched", "n_neurons", "share", "mean_best"]],
                 hide_index=True, width="stretch", column_config={
                     "other_layer": f"best layer of {model_b}", "share": st.column_config.ProgressColumn(
                         "share matched", min_value=0.0, max_value=1.0, format="percent"),
                     "mean_best": st.column_config.NumberColumn("mean best r", format="%.2f")})
    p1, p2 = st.columns(2)
    layer_a = p1.selectbox(f"layer of {model_a}", best.index.tolist(), key=f"cmp_la_{model_a}")
    layers_b = list(dict.fromkeys(counts["other_layer"]))
    layer_b = p2.selectbox(f"layer of {model_b}", layers_b, index=layers_b.index(best.loc[layer_a, "other_layer"]),
                           key=f"cmp_lb_{model_a}_{model_b}_{layer_a}")
    pairs = related.matched_pairs(db, model_a, layer_a, model_b, layer_b, threshold)
    st.markdown(f"**Matched pairs** {md(model_a)} / {md(layer_a)} ↔ {md(model_b)} / {md(layer_b)}: "
                f"{len(pairs)} shown (best first, at most 50), with both explanations")
    if pairs.empty:
        st.info("No neuron of this layer has a partner above the threshold there.")
    else:
        def link(model, layer, neurons):
            return "neuron?" + ("model=" + model + "&layer=" + layer + "&neuron=") + neurons.astype(str)
        shown = pairs.assign(link_a=link(model_a, layer_a, pairs["neuron"]),
                             link_b=link(model_b, layer_b, pairs["other_neuron"]))
        st.dataframe(shown[["link_a", "link_b", "correlation", "top_concept_a", "top_concept_b",
                            "calibrated_summary_a", "calibrated_summary_b", "summary_auc_a", "summary_auc_b"]],
                     hide_index=True, width="stretch",
                     column_config={"link_a": st.column_config.LinkColumn(f"neuron of {model_a}",
                                                                          display_text=r"neuron=(\d+)$"),
                                    "link_b": st.column_config.LinkColumn(f"neuron of {model_b}",
                                                                          display_text=r"neuron=(\d+)$"),
                                    "correlation": st.column_config.NumberColumn("r", format="%.3f"),
                                    "top_concept_a": "DB concept (A)", "top_concept_b": "DB concept (B)",
                                    "calibrated_summary_a": "S_h^c (A)", "calibrated_summary_b": "S_h^c (B)",
                                    "summary_auc_a": st.column_config.NumberColumn("AUC (A)", format="%.2f"),
                                    "summary_auc_b": st.column_config.NumberColumn("AUC (B)", format="%.2f")})

# --- Section 4.5 side by side ------------------------------------------------------------------------------
st.subheader("Closed-set concepts: how many neurons have each rank-1 concept")
m1, m2 = st.columns(2)
methods = [m for m in ("DB", "TAB", "ICL") if aggregates.similarities(db, model_a, m)]
method = m1.selectbox("method", methods or ["DB"], key="cmp_method")
sims = sorted(set(aggregates.similarities(db, model_a, method)) | set(aggregates.similarities(db, model_b, method)))
similarity = m2.selectbox("similarity", sims or ["cos"], key=f"cmp_sim_{method}")
dists = {m: related.closed_concept_distribution(db, m, method, similarity).head(20) for m in (model_a, model_b)}
for col, (m, dist) in zip(st.columns(2), dists.items()):
    with col:
        if dist.empty:
            st.info(f"No {md(method)} / {md(similarity)} concepts for {md(m)}.")
        else:
            bars = charts.word_bars(dist, "concept", "n_neurons",
                                    f"{m}: top-20 rank-1 concepts ({method}/{similarity})")
            st.image(bars)

left, right = st.columns(2)
with left:
    adj = per_version(aggregates.adjective_stats, db)
    fig5 = charts.per_block_lines(adj[adj["model"].isin([model_a, model_b])], "mean_adjectives",
                                  "adjectives per neuron per block (Figure 5)", "mean adjectives")
    st.image(fig5)
with right:
    taus = per_version(aggregates.taus, db)
    if taus:
        tau = st.select_slider("τ (top-K clips sharing a cluster)", taus, value=taus[0], key="cmp_tau")
        unint = per_version(aggregates.interpretability, db, tau)
        fig6 = charts.per_block_lines(unint[unint["model"].isin([model_a, model_b])], "pct_uninterpretable",
                                      f"% uninterpretable neurons per block, τ = {tau} (Figure 6)", "% uninterpretable")
        st.image(fig6)
    else:
        st.info("No interpretability analysis in this database.")

shown_tables = {f"concepts_{m}": d for m, d in dists.items()}
if counts is not None:
    shown_tables = {"partner_counts": counts, "matched_pairs": pairs, **shown_tables}
download("Download this comparison", f"compare.{model_a}.{model_b}", lambda _db: shown_tables, key="cmp_download")
