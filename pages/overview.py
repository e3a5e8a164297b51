"""Overview: models and runs with provenance, layers, accuracies, adjectives per block, interpretability."""

import json

import streamlit as st

from and_engine.explorer import aggregates, charts, queries
from pages._shared import store

st.title("AND Explorer: overview")
db = store()

models = queries.models(db)
runs = queries.runs(db)
if models.empty:
    st.warning("This results database holds no target model yet: run a build first.")
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric("models", len(models))
layer_df = aggregates.layer_summary(db)
c2.metric("neurons", f"{int(layer_df['n_neurons'].sum()):,}")
c3.metric("builds", len(runs))

st.subheader("Models")
shown = models.drop(columns=["step_id", "class_names"], errors="ignore")
shown.insert(2, "n_classes", models["class_names"].map(len))
st.dataframe(shown, hide_index=True, width="stretch")
st.subheader("Layers")
st.dataframe(layer_df, hide_index=True, width="stretch")

with st.expander("Runs and provenance (every step's backends and parameters)"):
    st.dataframe(runs, hide_index=True, width="stretch")
    steps = queries.steps(db)
    stage = st.selectbox("step", steps["stage"] + " " + steps["scope"], key="prov_step")
    row = steps[(steps["stage"] + " " + steps["scope"]) == stage].iloc[0]
    st.caption(f"fingerprint `{row['fingerprint']}` · code `{row['code_version']}` · {row['n_rows']} rows "
               f"· {row['seconds']} s")
    st.json(json.loads(row["params_json"]))

st.subheader("Last-layer accuracy (Table 2 / 7)")
acc = aggregates.lastlayer_accuracy(db)
if acc.empty:
    st.info("No last-layer accuracy in this database.")
else:
    st.caption("top-1 / top-5 in % of the output neurons whose predicted concept is their class")
    st.dataframe(acc.style.format({"top1": "{:.1f}", "top5": "{:.1f}", "concept_cosine": "{:.2f}"}),
                 hide_index=True, width="stretch")

left, right = st.columns(2)
with left:
    fig5 = charts.per_block_lines(aggregates.adjective_stats(db), "mean_adjectives",
                                  "adjectives per neuron per block (Figure 5)", "mean adjectives")
    st.vega_lite_chart(spec=fig5, width="stretch", key="fig5")
with right:
    taus = aggregates.taus(db)
    if taus:
        tau = st.select_slider("τ (top-K clips sharing a cluster)", taus, value=taus[0], key="tau")
        fig6 = charts.per_block_lines(aggregates.interpretability(db, tau), "pct_uninterpretable",
                                      f"% uninterpretable neurons per block, τ = {tau} (Figure 6)", "% uninterpretable")
        st.vega_lite_chart(spec=fig6, width="stretch", key="fig6")
    else:
        st.info("No interpretability analysis in this database.")

st.subheader("Top-20 adjectives")
model = st.selectbox("model", models["model"].tolist(), key="top_adj_model")
top = aggregates.top_adjectives(db, model, n=20)
if top.empty:
    st.info("No adjectives for this model.")
else:
    st.vega_lite_chart(spec=charts.word_bars(top, "adjective", "n_neurons", f"top-20 adjectives of {model}"),
                       width="stretch", key="top20")
