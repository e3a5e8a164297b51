"""Overview: models and runs with provenance, layers, accuracies, adjectives per block, interpretability."""

import json

import streamlit as st

from and_engine.explorer import aggregates, availability, charts, queries, score_charts, scores
from pages._shared import download, main_content_sent, md, missing, neuron_link, per_version, store

st.title("AND Explorer: overview")
db = store()

models = per_version(queries.models, db)
runs = per_version(queries.runs, db)
if models.empty:
    st.warning("This results database holds no target model yet: run a build first.")
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric("models", len(models))
layer_df = per_version(aggregates.layer_summary, db)
c2.metric("neurons", f"{int(layer_df.loc[layer_df['kind'] != 'sae', 'n_neurons'].sum()):,}",
          help="units of the networks' own layers (the latents of SAE layers are not counted)")
c3.metric("builds", len(runs))
main_content_sent("overview")

st.subheader("Models")
shown = models.drop(columns=["step_id", "class_names"], errors="ignore")
shown.insert(2, "n_classes", models["class_names"].map(len))
st.dataframe(shown, hide_index=True, width="stretch")
st.subheader("Layers")
st.dataframe(layer_df, hide_index=True, width="stretch")
tables = {"models": shown, "layers": layer_df, "runs": runs}  # what the page shows: its download (at the end)
sae = per_version(aggregates.sae_metrics, db)
if not sae.empty:
    st.subheader("Sparse autoencoders")
    st.caption("Layers of kind sae hold the latents of a TopK sparse autoencoder trained on a layer's frame / patch "
               "vectors; they are dissected like neurons. FVE: fraction of variance explained on the training "
               "vectors (all; typical: less the outliers left out of training; held-out fold). L0: active latents "
               "per vector. Dead: never active; dense: active on over 10 % of the vectors. See docs/sae.md.")
    tables["sae_metrics"] = sae
    st.dataframe(sae.style.format({"fve": "{:.3f}", "fve_typical": "{:.3f}", "fve_heldout": "{:.3f}",
                                   "l0": "{:.1f}"}), hide_index=True, width="stretch")

# drawn only while open (a lazy expander): a fresh tab loads neither the JSON viewer nor these widgets
provenance = st.expander("Runs and provenance (every step's backends and parameters)", key="ov_provenance",
                         on_change="rerun")
if provenance.open:
    with provenance:
        st.dataframe(runs, hide_index=True, width="stretch")
        steps = per_version(queries.steps, db)
        stage = st.selectbox("step", steps["stage"] + " " + steps["scope"], key="prov_step")
        row = steps[(steps["stage"] + " " + steps["scope"]) == stage].iloc[0]
        st.caption(f"fingerprint `{row['fingerprint']}` · code `{row['code_version']}` · {row['n_rows']} rows "
                   f"· {row['seconds']} s")
        st.json(json.loads(row["params_json"]))

st.subheader("Last-layer accuracy (Table 2 / 7)")
acc = per_version(aggregates.lastlayer_accuracy, db)
if acc.empty:
    no_measure = per_version(availability.no_output_measure, db)
    st.info(missing("lastlayer", "last-layer accuracy",
                    no_measure and f"Last-layer accuracy is unavailable: {no_measure}."))
else:
    tables["lastlayer_accuracy"] = acc
    st.caption("top-1 / top-5 in % of the output neurons whose predicted concept is their class")
    st.dataframe(acc.style.format({"top1": "{:.1f}", "top5": "{:.1f}", "concept_cosine": "{:.2f}"}),
                 hide_index=True, width="stretch")

left, right = st.columns(2)
with left:
    tables["adjectives_per_layer"] = per_version(aggregates.adjective_stats, db)
    fig5 = charts.per_block_lines(tables["adjectives_per_layer"], "mean_adjectives",
                                  "adjectives per neuron per block (Figure 5)", "mean adjectives")
    st.image(fig5)
with right:
    taus = per_version(aggregates.taus, db)
    if taus:
        tau = st.select_slider("τ (top-K clips sharing a cluster)", taus, value=taus[0], key="tau")
        tables["uninterpretable_per_layer"] = per_version(aggregates.interpretability, db, tau).assign(tau=tau)
        fig6 = charts.per_block_lines(tables["uninterpretable_per_layer"], "pct_uninterpretable",
                                      f"% uninterpretable neurons per block, τ = {tau} (Figure 6)", "% uninterpretable")
        st.image(fig6)
    else:
        st.info(missing("interpretability", "interpretability analysis"))

st.subheader("Top-20 adjectives")
model = st.selectbox("model", models["model"].tolist(), key="top_adj_model")
top = per_version(aggregates.top_adjectives, db, model, n=20)
if top.empty:
    st.info(missing("adjectives", "adjectives for this model", "No adjectives for this model."))
else:
    tables["top_adjectives"] = top.assign(model=model)
    st.image(charts.word_bars(top, "adjective", "n_neurons", f"top-20 adjectives of {model}", width=900))

st.subheader("Explanation scores: how well each explanation predicts its neuron on other clips")
avail = per_version(scores.scorer_metrics, db)
if not avail:
    st.info("No explanation scores in this database (built without the scores stage).")
else:
    s1, s2, s3 = st.columns(3)
    sc_model = s1.selectbox("model", models["model"].tolist(), key="sc_model")
    sc_scorer = s2.selectbox("scorer", list(avail), key="sc_scorer")
    sc_metric = s3.selectbox("metric", avail[sc_scorer], format_func=lambda m: scores.METRIC_NAMES.get(m, m),
                             key=f"sc_metric_{sc_scorer}")
    st.caption(md(scores.HELP.get((sc_scorer, sc_metric), "")) + " The dotted 'shuffled' line is the chance control: "
               "each neuron scored with another neuron's S_h^c.")
    dist = per_version(scores.layer_distributions, db, sc_model, sc_scorer, sc_metric)
    if dist.empty:
        st.info("No scores of this kind for this model.")
    else:
        tables["score_distributions"] = dist.assign(model=sc_model, scorer=sc_scorer, metric=sc_metric)
        st.image(score_charts.score_lines(dist, sc_scorer, sc_metric))
        sc_layer = st.selectbox("layer", list(dict.fromkeys(dist["layer"])), key=f"sc_layer_{sc_model}")
        st.image(score_charts.score_boxes(dist[dist["layer"] == sc_layer], sc_scorer, sc_metric, sc_layer))
        options = per_version(scores.sort_options, db)
        pick = st.selectbox("neurons of this layer ranked by", list(options), key="sc_rank_by")
        best = st.radio("show", ["best explained", "worst explained"], horizontal=True, key="sc_best")
        ranked = per_version(scores.neurons_by_score, db, sc_model, sc_layer, *options[pick],
                         best_first=best == "best explained", limit=10)
        tables["neurons_by_score"] = ranked.assign(model=sc_model, layer=sc_layer, ranked_by=pick)
        for r in ranked.itertuples():
            neuron_link(sc_model, sc_layer, r.neuron, f"{sc_layer} / {r.neuron} · {r.score:.2f} · {r.explanation[:90]}")
    table = per_version(scores.method_table, db, sc_model)
    if not table.empty:
        st.markdown(f"**Which method explains best ({md(sc_model)})**: mean over its neurons, all layers")
        tips = scores.help_text(table.columns)
        config = {c: st.column_config.NumberColumn(c, help=h, format="%.2f") for c, h in tips.items()}
        st.dataframe(table, hide_index=True, width="stretch", column_config=config)
        tables["method_table"] = table.assign(model=sc_model)

st.subheader("Ground truth: do captions and explanations name the labelled sound source?")
hits, total = per_version(scores.caption_rate, db)
if unlabelled := per_version(availability.no_labels, db):
    st.info(md(f"Ground truth is unavailable: {unlabelled}."))
elif not total:
    st.info("No ground truth in this database (built without the scores stage).")
else:
    st.metric("captions that name their clip's label", f"{hits} / {total} = {hits / total:.0%}",
              help=scores.NAMES_HELP)
    gt_model = st.selectbox("model", models["model"].tolist(), key="gt_model")
    measures = {"names_majority": "explanation names the top-K majority label (% of neurons)",
                "names_majority_where_captions_do": "… where ≥ 4/5 top-K clips share the label and ≥ 3 captions name "
                                                    "it (% of those neurons)"}
    measure = st.radio("measure", list(measures), format_func=measures.get, key="gt_measure")
    truth = per_version(scores.truth_table, db, gt_model, measure)
    if truth.empty:
        st.info("No ground-truth rates for this model.")
    else:
        st.dataframe(truth.style.format(precision=0, na_rep="–"), hide_index=True, width="stretch")
        tables["ground_truth"] = truth.assign(model=gt_model, measure=measure)

download("Download this overview", "overview", lambda _db: tables, key="ov_download")
