"""Human evaluation (Table 3): rate blind descriptions of a neuron's top-K clips; results and CSV export."""

import streamlit as st

from and_engine.explorer import humaneval, queries
from and_engine.explorer.text_similarity import TextSimilarity
from and_engine.store.ratings import RatingError, RatingsLockedError
from pages._shared import clip_media, md, ratings_store, run_config, store

QUESTION = "Does the given description accurately describe most of these audio clips?"
st.title("Human evaluation")
db = store()
cfg = run_config(db)
ratings = ratings_store(cfg)
rate_tab, results_tab = st.tabs(["Rate a neuron", "Results (Table 3)"])


@st.cache_resource(show_spinner="Loading the sentence encoder…")
def _similarity() -> TextSimilarity:
    return TextSimilarity("minilm")



with rate_tab:
    rater = st.text_input("Your rater name", key="he_rater").strip()
    if not rater:
        st.info("Enter a rater name to start; your ratings are saved under it.")
    else:
        key, skipped = f"he_neuron_{rater}", st.session_state.setdefault(f"he_skipped_{rater}", set())
        if st.session_state.get(key) is None:
            st.session_state[key] = humaneval.sample_neuron(db, rater, ratings.rated_neurons(rater) | skipped)
        current = st.session_state[key]
        if current is None:
            st.success("You have rated every neuron with a calibrated summary. Thank you!")
        else:
            model, layer, neuron = current
            closed = queries.closed_concepts(db, model, layer, neuron)
            _, stored = queries.calibration(db, model, layer, neuron)
            descs = humaneval.descriptions(closed, stored["calibrated_summary"] if stored else None)
            order = humaneval.blind_order(rater, model, layer, neuron, sorted(descs))
            st.caption(f"neuron {md(model)} / {md(layer)} / {neuron} · "
                       "listen to its top-K clips, then rate each description")
            sr = int(queries.models(db).set_index("model").loc[model, "sample_rate"])
            top = queries.extremes(db, model, layer, neuron).query("side == 'top'")
            for clip in clip_media(db, cfg, sr, top).values():
                if isinstance(clip, str):
                    st.warning(clip)
                else:
                    st.audio(clip.audio, format=clip.mime)
            with st.form(f"he_form_{model}_{layer}_{neuron}", clear_on_submit=True):
                st.markdown(f"**{QUESTION}** (1 = not at all, 5 = exactly)")
                scores = {}
                for i, method in enumerate(order):
                    st.markdown(f"**Description {i + 1}:** {md(descs[method])}")
                    scores[method] = st.radio(f"rating for description {i + 1}", [1, 2, 3, 4, 5], index=None,
                                              horizontal=True, key=f"he_score_{i}")
                own = st.text_area("In your own words: what do most of these clips have in common?", key="he_own")
                submitted = st.form_submit_button("Save ratings")
            if submitted:
                missing = [i + 1 for i, m in enumerate(order) if scores[m] is None]
                if missing:
                    st.warning(f"Please rate description(s) {missing} before saving.")
                else:
                    try:
                        run_id = str(queries.runs(db)["run_id"].iloc[0])  # the build the descriptions came from
                        for i, method in enumerate(order):
                            ratings.add_rating(rater, model, layer, neuron, method, descs[method], int(scores[method]),
                                               position=i, results_run_id=run_id)
                        if own.strip():
                            ratings.add_summary(rater, model, layer, neuron, own, results_run_id=run_id)
                    except (RatingError, RatingsLockedError) as exc:
                        st.error(f"Not saved: {md(exc)}")
                    else:
                        st.session_state[key] = None
                        st.success("Saved. Here is the next neuron.")
                        st.rerun()
            if st.button("Skip this neuron", key="he_skip"):
                skipped.add(current)
                st.session_state[key] = None
                st.rerun()

with results_tab:
    all_ratings, written = ratings.ratings(), ratings.summaries()
    if all_ratings.empty:
        st.info("No ratings yet.")
    else:
        st.caption(f"{all_ratings['rater'].nunique()} rater(s), {len(all_ratings)} rating(s), "
                   f"{len(written)} written summaries. Paper: TAB 2.73 / 0.24 / 0.42, DB 3.24 / 0.57 / 0.45, "
                   "SUM 3.49 / 0.72 / 0.46 (rating / cosine / BERTScore).")
        table = humaneval.table3(all_ratings, written, _similarity())
        st.dataframe(table.style.format({"mean_rating": "{:.2f}", "cosine": "{:.2f}", "bertscore_f1": "{:.2f}"}),
                     hide_index=True, width="stretch")
        export = all_ratings.merge(written[["rater", "model", "layer", "neuron", "text"]],
                                   on=["rater", "model", "layer", "neuron"], how="left")
        st.download_button("Download ratings (CSV)", export.to_csv(index=False).encode(), "ratings.csv",
                           "text/csv", key="he_csv")
