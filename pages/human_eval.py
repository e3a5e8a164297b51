"""Human evaluation (Table 3): rate blind descriptions of a neuron's top-K clips; results and CSV export.

A submission is saved by the form's callback, before this page opens the results database: what it needs
(the neuron, its descriptions, the steps that wrote them, the ratings database) was kept when the neuron was
shown, so a build holding the results database cannot drop it. It is one transaction, or nothing.
"""

import streamlit as st

from and_engine.explorer import availability, humaneval, queries
from and_engine.explorer import scores as explanation_scores
from and_engine.explorer.text_similarity import TextSimilarity
from and_engine.store.ratings import RatedDescription, RatingError, RatingsLockedError
from pages._shared import (
    clip_media,
    main_content_sent,
    md,
    per_version,
    ratings_path,
    ratings_store,
    run_config,
    store,
)

QUESTION = "Does the given description accurately describe most of these audio clips?"
SHOWN, OUTCOME = "he_shown", "he_outcome"  # the neuron on screen (kept for the save) / the last save's result
BUSY = "The ratings database is held by another process"


def _answer_keys(n: int) -> list[str]:
    return [*(f"he_score_{i}" for i in range(n)), "he_own"]


def _save() -> None:
    """The form's callback: store the shown neuron's ratings (+ written summary) in one transaction."""
    shown = st.session_state.get(SHOWN)
    if shown is None:
        return
    scores = [st.session_state.get(k) for k in _answer_keys(len(shown["order"]))[:-1]]
    missing = [i + 1 for i, s in enumerate(scores) if s is None]
    if missing:
        st.session_state[OUTCOME] = ("warning", f"Please rate description(s) {missing} before saving.")
        return
    rated = [RatedDescription(m, shown["descriptions"][m], int(s), i, shown["steps"].get(m, ""))
             for i, (m, s) in enumerate(zip(shown["order"], scores))]
    try:
        ratings_store(shown["ratings_path"]).add_submission(
            shown["rater"], *shown["neuron"], rated, text=st.session_state.get("he_own") or "",
            results_run_id=shown["run_id"])
    except (RatingError, RatingsLockedError) as exc:
        st.session_state[OUTCOME] = ("error", f"Not saved, nothing of this neuron was stored: {md(exc)}. Your "
                                              "answers are still in the form: press Save ratings again.")
        return
    st.session_state[OUTCOME] = ("success", "Saved. Here is the next neuron.")
    st.session_state[f"he_neuron_{shown['rater']}"] = None
    for k in _answer_keys(len(shown["order"])):
        st.session_state.pop(k, None)


st.title("Human evaluation")
if OUTCOME in st.session_state:  # shown before the results database is opened (a build may hold it)
    kind, text = st.session_state.pop(OUTCOME)
    getattr(st, kind)(text)
db = store()
cfg = run_config(db)
try:
    ratings = ratings_store(cfg)
except RatingsLockedError as exc:
    st.error(f"{BUSY}: {md(exc)}. Reload the page in a moment.")
    st.stop()
rate_tab, results_tab = st.tabs(["Rate a neuron", "Results (Table 3)"])


@st.cache_resource(show_spinner="Loading the sentence encoder…")
def _similarity() -> TextSimilarity:
    return TextSimilarity("minilm")


def _next_neuron(rater: str, skipped: set) -> tuple[str, str, int] | None:
    rated = ratings.rated_neurons(rater, humaneval.current_description_steps(db))
    return humaneval.sample_neuron(db, rater, rated | skipped)


with rate_tab:
    if one_concept := per_version(availability.no_closed_concepts, db, cfg.module_a.concept_set):
        st.warning(md(f"The DB and TAB descriptions are one word for every neuron: {one_concept}."))
    rater = st.text_input("Your rater name", key="he_rater").strip()
    main_content_sent("human_eval")
    key, current = f"he_neuron_{rater}", None
    if not rater:
        st.info("Enter a rater name to start; your ratings are saved under it.")
    else:
        skipped = st.session_state.setdefault(f"he_skipped_{rater}", set())
        try:
            if st.session_state.get(key) is None:
                st.session_state[key] = _next_neuron(rater, skipped)
            current = st.session_state[key]
            if current is None:
                st.success("You have rated every neuron with a calibrated summary. Thank you!")
        except RatingsLockedError as exc:
            st.error(f"{BUSY}, so the next neuron cannot be chosen now: {md(exc)}. Reload in a moment.")
    if current is not None:
        model, layer, neuron = current
        closed = queries.closed_concepts(db, model, layer, neuron)
        _, stored = queries.calibration(db, model, layer, neuron)
        descs = humaneval.descriptions(closed, stored["calibrated_summary"] if stored else None)
        order = humaneval.blind_order(rater, model, layer, neuron, sorted(descs))
        st.session_state[SHOWN] = {
            "rater": rater, "neuron": current, "order": order, "descriptions": descs,
            "steps": humaneval.description_steps(db, model, layer, neuron), "ratings_path": ratings_path(cfg),
            "run_id": str((queries.last_finished_run(db) or {"run_id": ""})["run_id"])}  # the finished build shown
        st.caption(f"neuron {md(model)} / {md(layer)} / {neuron} · "
                   "listen to its top-K clips, then rate each description")
        sr = int(per_version(queries.models, db).set_index("model").loc[model, "sample_rate"])
        top = queries.extremes(db, model, layer, neuron).query("side == 'top'")
        for clip in clip_media(db, cfg, sr, top).values():
            if isinstance(clip, str):
                st.warning(clip)
            else:
                st.audio(clip.audio, format=clip.mime)
        with st.form(f"he_form_{model}_{layer}_{neuron}"):
            st.markdown(f"**{QUESTION}** (1 = not at all, 5 = exactly)")
            for i, method in enumerate(order):
                st.markdown(f"**Description {i + 1}:** {md(descs[method])}")
                st.radio(f"rating for description {i + 1}", [1, 2, 3, 4, 5], index=None, horizontal=True,
                         key=f"he_score_{i}")
            st.text_area("In your own words: what do most of these clips have in common?", key="he_own")
            st.form_submit_button("Save ratings", on_click=_save)
        if st.button("Skip this neuron", key="he_skip"):
            skipped.add(current)
            st.session_state[key] = None
            st.rerun()

with results_tab:
    try:
        all_ratings, written = ratings.ratings(), ratings.summaries()
    except RatingsLockedError as exc:
        st.error(f"{BUSY}, so the results cannot be read now: {md(exc)}. Reload in a moment.")
    else:
        if all_ratings.empty:
            st.info("No ratings yet.")
        else:
            current_steps = humaneval.current_description_steps(db)
            st.caption(f"{all_ratings['rater'].nunique()} rater(s), {len(all_ratings)} rating(s), "
                       f"{len(written)} written summaries. Paper: TAB 2.73 / 0.24 / 0.42, DB 3.24 / 0.57 / 0.45, "
                       "SUM 3.49 / 0.72 / 0.46 (rating / cosine / BERTScore).")
            replaced = humaneval.superseded(all_ratings, current_steps)
            if replaced:
                st.caption(f"{replaced} rating(s) of descriptions that a later build replaced are left out of "
                           "Table 3 (they stay in the CSV).")
            table = humaneval.table3(all_ratings, written, _similarity(), current_steps)
            st.dataframe(table.style.format({"mean_rating": "{:.2f}", "cosine": "{:.2f}", "bertscore_f1": "{:.2f}"}),
                         hide_index=True, width="stretch")
            corr = humaneval.score_correlations(all_ratings, explanation_scores.scores_for(db, all_ratings),
                                                current_steps)
            st.markdown("**Ratings vs automatic scores**: Spearman's rho between the ratings and the scores of the "
                        "rated explanations (over all ratings and per method)")
            if corr.empty:
                st.info("The rated explanations have no automatic scores in this results database.")
            else:
                st.dataframe(corr.style.format({"spearman_rho": "{:.2f}"}, na_rep="–"), hide_index=True,
                             width="stretch")
            st.download_button("Download ratings (CSV)", humaneval.export_csv(all_ratings, written), "ratings.csv",
                               "text/csv", key="he_csv")
