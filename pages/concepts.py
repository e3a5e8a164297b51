"""Concepts: adjective histograms, neuron search by concept / adjective, interpretability clusters."""

import streamlit as st

from and_engine.explorer import aggregates, availability, charts, queries, scores
from pages._shared import (
    download,
    layers_or_stop,
    main_content_sent,
    md,
    missing,
    neuron_link,
    per_version,
    run_config,
    store,
)


@st.cache_data(show_spinner=False, max_entries=64)
def _cloud(words: tuple[tuple[str, float], ...]):
    return charts.word_cloud(dict(words))


st.title("Concepts")
db = store()
models = per_version(queries.models, db)["model"].tolist()
if not models:
    st.warning("This results database holds no target model yet.")
    st.stop()

st.subheader("Adjectives in calibrated summaries")
c1, c2, c3 = st.columns(3)
scope = c1.radio("scope", ["all neurons", "one model", "one layer"], key="cc_scope", horizontal=True)
model = layer = None
if scope != "all neurons":
    model = c2.selectbox("model", models, key="cc_model")
if scope == "one layer":
    layer = c3.selectbox("layer", layers_or_stop(db, model)["layer"].tolist(), key=f"cc_layer_{model}")
hist = per_version(aggregates.adjective_histogram, db, model, layer, n=30)
tables = {"adjective_histogram": hist.assign(model=model, layer=layer)}  # what the page shows: its download
if hist.empty:
    st.info("No adjectives for this selection.")
else:
    where = " / ".join(x for x in (model, layer) if x) or "all models"
    n_adjectives, n_neurons = per_version(aggregates.adjective_totals, db, model, layer)
    top = hist.head(3)
    st.markdown(f"**{n_adjectives:,} distinct adjectives** in the calibrated summaries of **{n_neurons:,} neurons** "
                f"({md(where)}); the most frequent: " + ", ".join(f"{md(r.adjective)} ({r.n_neurons:,} neurons)"
                                                                  for r in top.itertuples()))
    main_content_sent("concepts")
    st.image(charts.word_bars(hist, "adjective", "n_neurons", f"adjectives ({where})", width=900))

st.subheader("Find neurons by concept or adjective")
if one_concept := per_version(availability.no_closed_concepts, db, run_config(db).module_a.concept_set):
    st.warning(md(f"A search by closed-set concept finds every neuron or none: {one_concept}."))
s1, s2, s3 = st.columns([3, 1, 2])
term = s1.text_input("concept or adjective (e.g. loud, cow)", key="cc_term")
only = s2.selectbox("model", ["all", *models], key="cc_search_model")
sort_by = per_version(scores.sort_options, db)
order = s3.selectbox("sort by", ["model / layer / neuron", *sort_by], key="cc_sort",
                     help="Sort the neurons found by how well an explanation predicts them on other clips "
                          "(AUC: 0.5 = chance, 1 = perfect; r: 0 = chance).")
if term.strip():
    hits = aggregates.search_neurons(db, term, None if only == "all" else only, limit=200)
    if order in sort_by:
        hits = scores.with_scores(db, hits, *sort_by[order], column=order)
    st.caption(f"{len(hits)} match(es)" + (" (first 200)" if len(hits) == 200 else ""))
    if not hits.empty:
        st.dataframe(hits, hide_index=True, width="stretch", height=220)
        tables["search"] = hits.assign(term=term)
        for h in hits.drop_duplicates(["model", "layer", "neuron"]).head(25).itertuples():
            neuron_link(h.model, h.layer, h.neuron, f"{h.model} / {h.layer} / {h.neuron} — {h.matched_by}: {h.match}")

st.subheader("Interpretability clusters (Algorithm 1)")
words = per_version(aggregates.cluster_words, db, top=60)
if words.empty:
    st.info(missing("clusters", "clusters"))
else:
    tables["cluster_words"] = words
    clusters = sorted(words["cluster"].unique())
    cols = st.columns(3)
    for i, c in enumerate(clusters):
        w = words[words["cluster"] == c]
        with cols[i % 3]:
            st.markdown(f"**cluster {c}** · {int(w['n_sentences'].iloc[0])} sentences")
            st.image(_cloud(tuple(zip(w["word"], w["weight"]))), width="stretch")
elbow = per_version(aggregates.cluster_elbow, db)
if not elbow.empty:
    st.image(charts.elbow(elbow, run_config(db).analyses.n_clusters, width=900))
    tables["cluster_elbow"] = elbow
download("Download this view", "concepts", lambda _db: tables, key="cc_download")
