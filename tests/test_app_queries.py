"""Query layer, aggregates and human-evaluation helpers against the fixture database."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from _app_tiny_model import CLASSES

from and_engine.explorer import aggregates, humaneval, queries
from and_engine.explorer.text_similarity import TextSimilarity, greedy_match_f1
from and_engine.store.results import ResultsStore


@pytest.fixture(scope="module")
def store(app_db):
    with ResultsStore(app_db, read_only=True) as s:
        yield s


def test_neuron_reads(store):
    ext = queries.extremes(store, "tinynet", "classifier", 2)
    top = ext[ext["side"] == "top"]
    assert len(top) == 5 and (top["label"] == "cow").sum() >= 4  # classifier unit 2 prefers cow
    assert top["activation"].is_monotonic_decreasing and top["caption"].str.contains("cow").any()
    values = queries.activations(store, "tinynet", "classifier", 2)
    assert values.shape == (len(queries.clips(store)),) and np.isclose(values.max(), top["activation"].iloc[0])
    conv_maps = queries.activation_maps(store, "tinynet", "block1.conv", 0)
    conv_top = queries.extremes(store, "tinynet", "block1.conv", 0).query("side == 'top'")["clip_id"]
    assert set(conv_maps) == set(conv_top) and all(m.shape == (4, 10) for m in conv_maps.values())
    assert queries.activation_maps(store, "tinynet", "classifier", 2) == {}
    points, stored = queries.calibration(store, "tinynet", "block2.fc", 1)
    assert points["point_index"].tolist() == [0, 1, 2] and stored["threshold"] == 0.7
    assert set(queries.summaries(store, "tinynet", "block2.fc", 1)) == {"top", "bottom"}
    assert queries.run_config(store).models[0].name == "tinynet"


@pytest.mark.parametrize("layer, neuron, message", [("nope", 0, "no layer 'nope'"), ("classifier", 6, "out of range"),
                                                    ("classifier", -1, "out of range")])
def test_bad_neurons_raise_not_found(store, layer, neuron, message):
    with pytest.raises(queries.NotFoundError, match=message):
        queries.check_neuron(store, "tinynet", layer, neuron)
    with pytest.raises(queries.NotFoundError):
        queries.layers(store, "unknown-model")


def test_aggregates(store):
    assert aggregates.taus(store) == [3, 4, 5]
    assert len(aggregates.interpretability(store, 4)) == 4  # three layers of neurons and the SAE layer
    hist = aggregates.adjective_histogram(store, "tinynet", "classifier")
    rows = store.read("open_concepts", ["neuron", "word"], model="tinynet", layer="classifier", pos="ADJ")
    expected = rows.drop_duplicates().groupby("word").size().rename("n_neurons").reset_index()
    expected = expected.sort_values(["n_neurons", "word"], ascending=[False, True], ignore_index=True)
    assert hist.rename(columns={"adjective": "word"}).equals(expected)  # adjectives only, neurons counted once
    assert hist.iloc[0].tolist() == ["forceful", 2]  # the cow and the church bells units: "loud and forceful"
    hits = aggregates.search_neurons(store, "COW")
    assert {"open:noun", "closed:DB/cos"} <= set(hits["matched_by"])
    assert len(aggregates.search_neurons(store, "100%_")) == 0  # wildcards are escaped, not injected
    exact = aggregates.search_neurons(store, "church_bells")  # stored concept names contain "_"
    assert len(exact) and set(exact["match"].str.lower()) == {"church_bells"}
    assert len(aggregates.search_neurons(store, "church_bell")) == len(exact)
    assert (len(aggregates.search_neurons(store, "church%bells")) == 0
            and len(aggregates.search_neurons(store, "ch_rch")) == 0)
    with pytest.raises(ValueError, match="empty"):
        aggregates.search_neurons(store, "  ")
    words = aggregates.cluster_words(store, top=3)
    assert words.groupby("cluster").size().max() == 3
    draws = {aggregates.random_neuron(store, "tinynet", seed=s) for s in range(30)}
    sizes = {"block1.conv": 8, "block2.fc": 12, "classifier": 6, "block1.conv.sae": 16}  # SAE latents browse too
    assert len(draws) > 10 and all(0 <= n < sizes[layer] for layer, n in draws)
    assert aggregates.similarities(store, "tinynet", "DB") == ["cos", "cos3", "wpmi"]


def test_pruning_candidates_select_like_the_full_tables(store):
    from and_engine.analyses.pruning import select_neurons

    full_closed = store.read("closed_concepts", ["layer", "neuron", "method", "similarity", "rank", "concept"],
                             model="tinynet")
    full_open = store.read("open_concepts", ["layer", "neuron", "word", "pos"], model="tinynet")
    sizes = queries.layers(store, "tinynet").set_index("layer")["n_neurons"].to_dict()
    for concept in ("cow", "crackling_fire", "Church Bells"):
        closed, opened = aggregates.pruning_candidates(store, "tinynet", concept, top_n=2)
        assert len(closed) < len(full_closed) and len(opened) < len(full_open)
        for method, sim in (("OCP", None), ("DB", "cos3"), ("TAB", "cos"), ("random", None)):
            assert select_neurons(method, concept, closed, opened, sizes, top_n=2, similarity=sim) == \
                select_neurons(method, concept, full_closed, full_open, sizes, top_n=2, similarity=sim), \
                (concept, method)


def test_pruning_candidates_follow_the_engine_rules_on_odd_names(tmp_path):
    """Concept names with a non-ASCII space or a trailing '_' are the concept for DB / TAB, in the app too."""
    from datetime import datetime

    from and_engine.analyses.pruning import select_neurons

    names = ["church_bells", "church\u00a0bells", "church_bells_", "church", "bells"]
    closed = pd.DataFrame({"model": "m", "layer": "l", "neuron": range(5), "method": "DB", "similarity": "cos",
                           "rank": 1, "concept": names, "score": 1.0})
    opened = pd.DataFrame({"model": "m", "layer": "l", "neuron": [0, 1], "word": ["bells", "chimes"],
                           "pos": ["NOUN", "NOUN"], "count": 1})
    with ResultsStore(tmp_path / "r.duckdb") as db:
        db.commit_step("r", "x", {}, {}, "fp", {"closed_concepts": closed, "open_concepts": opened}, datetime.now(),
                       "t")
        got_closed, got_open = aggregates.pruning_candidates(db, "m", "Church Bells")
    assert sorted(got_closed["neuron"]) == [0, 1, 2] and got_open["word"].tolist() == ["bells"]
    for method in ("DB", "OCP"):
        assert select_neurons(method, "Church Bells", got_closed, got_open, {"l": 5}) == \
            select_neurons(method, "Church Bells", closed, opened, {"l": 5})


def test_prunable_models_have_heldout_clips_of_their_classes(store):
    assert aggregates.prunable_models(store) == ["tinynet"]


def test_human_eval_helpers(store):
    first = humaneval.sample_neuron(store, "ann", set())
    assert first == humaneval.sample_neuron(store, "ann", set())
    assert humaneval.sample_neuron(store, "ann", {first}) != first
    every = set()
    for layer, n in (("block1.conv", 8), ("block2.fc", 12), ("classifier", 6), ("block1.conv.sae", 16)):
        every |= {("tinynet", layer, i) for i in range(n)}
    assert humaneval.sample_neuron(store, "ann", every) is None
    closed = queries.closed_concepts(store, "tinynet", "classifier", 2)
    descs = humaneval.descriptions(closed, "Cows moo loudly.")
    assert descs["TAB"] in {c.replace("_", " ") for c in CLASSES} and descs["SUMMARY"] == "Cows moo loudly."
    order = humaneval.blind_order("ann", "tinynet", "classifier", 2, ["DB", "SUMMARY", "TAB"])
    assert sorted(order) == ["DB", "SUMMARY", "TAB"]
    assert order == humaneval.blind_order(" Ann ", "tinynet", "classifier", 2, ["DB", "SUMMARY", "TAB"])
    orders = {tuple(humaneval.blind_order("ann", "tinynet", "classifier", n, ["DB", "SUMMARY", "TAB"]))
              for n in range(6)}
    assert len(orders) > 1


def test_descriptions_name_the_steps_that_wrote_them(store):
    steps = humaneval.description_steps(store, "tinynet", "classifier", 2)
    stored = store.query_df('SELECT stage, step_id FROM "steps"').set_index("step_id")["stage"]
    assert {m: stored[s] for m, s in steps.items()} == {"DB": "module_a", "TAB": "module_a", "SUMMARY": "module_b"}
    current = humaneval.current_description_steps(store)
    assert set(steps.values()) <= current and current == set(stored.index)


def test_ratings_export_neutralises_spreadsheet_formulas():
    texts = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "fine - really"]
    ratings = pd.DataFrame({"rater": "=cmd", "model": "m", "layer": "l", "neuron": range(len(texts)), "method": "DB",
                            "description": texts, "rating": 3, "submission_id": [f"s{i}" for i in range(len(texts))]})
    written = pd.DataFrame({"rater": "=cmd", "model": "m", "layer": "l", "neuron": range(len(texts)),
                            "text": texts, "submission_id": [f"s{i}" for i in range(len(texts))]})
    out = pd.read_csv(io.BytesIO(humaneval.export_csv(ratings, written)), keep_default_na=False)
    assert out["description"].tolist() == out["text"].tolist() == [*("'" + t for t in texts[:-1]), texts[-1]]
    assert set(out["rater"]) == {"'=cmd"} and out["rating"].tolist() == [3] * len(texts)


def test_text_similarity_and_table3():
    sim = TextSimilarity("minilm")
    same = sim.bertscore_f1(["a dog barks loudly"], ["a dog barks loudly"])[0]
    other = sim.bertscore_f1(["a dog barks loudly"], ["quiet piano music in a hall"])[0]
    assert same == pytest.approx(1.0, abs=1e-5) and other < same
    assert sim.cosine(["a dog barks"], ["a dog is barking"])[0] > sim.cosine(["a dog barks"], ["violin"])[0]
    ratings = pd.DataFrame({"rater": ["a", "a", "b", "b"], "model": "m", "layer": "l", "neuron": 0,
                            "method": ["DB", "SUMMARY", "DB", "TAB"], "description": ["dog", "dogs bark", "dog", "x"],
                            "rating": [2, 5, 4, 1], "submission_id": ["s1", "s1", "s2", "s3"],
                            "description_step_id": ["A", "B", "A", "A-old"]})
    written = pd.DataFrame({"rater": ["a", "b"], "model": "m", "layer": "l", "neuron": 0,
                            "text": ["dogs bark", "cats"], "submission_id": ["s1", "s-other"]})
    t3 = humaneval.table3(ratings, written, sim).set_index("method")
    assert t3.loc["DB", "mean_rating"] == 3.0 and t3.loc["DB", "n_ratings"] == 2 and t3.loc["DB", "n_pairs"] == 1
    assert t3.loc["SUMMARY", "cosine"] == pytest.approx(1.0, abs=1e-5)
    assert t3.loc["TAB", "n_ratings"] == 1 and t3.loc["TAB", "n_pairs"] == 0  # b's summary is of another submission
    current = humaneval.table3(ratings, written, sim, current_steps={"A", "B"}).set_index("method")
    assert np.isnan(current.loc["TAB", "mean_rating"]) and current.loc["TAB", "n_ratings"] == 0  # rated a replaced text
    assert current.loc["DB", "n_ratings"] == 2 and humaneval.superseded(ratings, {"A", "B"}) == 1
    with pytest.raises(ValueError, match="one width"):
        greedy_match_f1(np.ones((2, 3)), np.ones((2, 4)))


def test_greedy_match_f1_on_known_vectors():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert greedy_match_f1(a, a) == pytest.approx(1.0)
    assert greedy_match_f1(a[:1], a) == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # P = 1, R = (1 + 0) / 2
    assert greedy_match_f1(a[:1], -a[:1]) == 0.0  # opposite tokens: P, R clipped at 0


def test_clip_media_reads_the_build_rows_and_tolerates_older_databases(store, app_db, tmp_path):
    import shutil

    import duckdb

    ids = queries.extremes(store, "tinynet", "block1.conv", 3)["clip_id"].tolist()
    got = queries.clip_media(store, 16000, ids)
    assert sorted(got) == sorted(set(ids)) and all(m.mime == "audio/mpeg" and m.audio for m in got.values())
    assert all(m.spectrogram.shape == (64, 501) for m in got.values())
    assert queries.clip_media(store, 22050, ids) == {} and queries.clip_media(store, 16000, []) == {}
    old = shutil.copyfile(app_db, tmp_path / "old.duckdb")  # a database built before the clip_media stage
    con = duckdb.connect(str(old))
    con.execute('DROP TABLE "clip_media"')
    con.close()
    with ResultsStore(old, read_only=True) as s:
        assert queries.clip_media(s, 16000, ids) == {}
