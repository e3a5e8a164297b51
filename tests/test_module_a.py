"""Module A: DB concept matrix, closed-concept rows, ICL prompting / parsing / mapping, concept sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes import ScriptedLLM, WordVectorEncoder

from and_engine.stages.concept_sets import ESC50_CLASSES, ConceptSetError, load_concept_set
from and_engine.stages.module_a import (
    COLUMNS,
    ModuleAError,
    closed_concepts,
    db_concept_matrix,
    icl_answer_text,
    icl_closed_concepts,
)
from and_engine.text.prompts import parse_prompt
from and_engine.text.words import concept_text

CONCEPTS = ["dog", "rain", "crying_baby", "siren"]


def test_db_matrix_is_a_softmax_over_concepts_favouring_the_named_concept():
    caps = ["a dog barks", "heavy rain falls", "a crying baby wails", "a loud siren"]
    P = db_concept_matrix(caps, CONCEPTS, WordVectorEncoder())
    assert P.shape == (4, 4)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(P.argmax(axis=1), [0, 1, 2, 3])


def test_closed_concepts_rows_match_the_schema_and_rank_the_planted_concept_first():
    rng = np.random.default_rng(0)
    P = db_concept_matrix([f"{w} sound {i}" for i in range(60) for w in ["dog", "rain"]], CONCEPTS,
                          WordVectorEncoder())
    u = np.concatenate([P[:, [1, 0]], rng.standard_normal((120, 1))], axis=1)  # neuron 0 = rain, 1 = dog
    rows = closed_concepts(u, P, CONCEPTS, model="m", layer="l", method="DB", similarities=["cos", "wpmi"], top_n=3)
    assert list(rows.columns) == COLUMNS
    assert len(rows) == 3 * 3 * 2  # neurons x top_n x similarities
    first = rows[rows["rank"] == 1].set_index(["similarity", "neuron"])["concept"]
    assert first[("cos", 0)] == "rain" and first[("cos", 1)] == "dog" and first[("wpmi", 0)] == "rain"
    for _, g in rows.groupby(["similarity", "neuron"]):
        assert g["rank"].tolist() == [1, 2, 3] and g["score"].is_monotonic_decreasing


def test_closed_concepts_topk_scope_and_errors():
    P = np.random.default_rng(1).dirichlet(np.ones(4), size=30)
    u = np.random.default_rng(2).standard_normal((30, 5))
    topk = np.argsort(-u, axis=0, kind="stable")[:5].T
    rows = closed_concepts(u, P, CONCEPTS, model="m", layer="l", method="DB", similarities=["cos3"],
                           scope="topk", topk_ids=topk)
    assert len(rows) == 5 * 4  # top_n 5 capped at M = 4
    with pytest.raises(ModuleAError, match="topk_ids"):
        closed_concepts(u, P, CONCEPTS, model="m", layer="l", method="DB", similarities=["cos"], scope="topk")
    with pytest.raises(ModuleAError, match="db_scope"):
        closed_concepts(u, P, CONCEPTS, model="m", layer="l", method="DB", similarities=["cos"], scope="some")
    with pytest.raises(ModuleAError, match="concept columns"):
        closed_concepts(u, P, CONCEPTS[:3], model="m", layer="l", method="DB", similarities=["cos"])


@pytest.mark.parametrize("response, expected", [
    ("The clips are about a dog.\nAnswer: dog", "dog"),
    ("Response: Based on the description ... Answer: 'crying baby'. It is the best match.", "crying baby"),
    ("**Answer:** siren\n\nI hope this helps!", "siren"),
    ("Based on the description the class is rain, clearly.", "rain"),  # no "Answer:", one concept named
    ("It could be a dog or rain, hard to tell.", "It could be a dog or rain, hard to tell."),  # two named
    ("", ""),
    ("@@@ ### 123 ### @@@", ""),  # garbage
    ("No classname fits the description.\nAnswer: none", ""),  # names no class: no concept, never a guess
    ("Answer: 'unknown'", ""), ("Answer: N/A", ""), ("I don't know.", ""),
])
def test_icl_answer_parsing(response, expected):
    assert icl_answer_text(response, CONCEPTS) == expected


def test_icl_prompts_the_paper_template_and_maps_answers_to_the_nearest_concepts():
    def answer(prompt):
        desc = parse_prompt(prompt).description
        return {"dogs barking": "Response: clearly dogs.\nAnswer: dog",
                "babies": "The answer is about a crying baby"}.get(desc, "$$$ %%% $$$")

    llm = ScriptedLLM(answer)
    desc = pd.DataFrame({"neuron": [3, 5, 7, 9], "description": ["dogs barking", "babies", "noise", ""]})
    rows, missing = icl_closed_concepts(desc, CONCEPTS, llm, WordVectorEncoder(), model="m", layer="l", top_n=2)
    assert len(llm.prompts) == 3  # the empty description is not sent
    parsed = parse_prompt(llm.prompts[0])
    assert parsed.kind == "icl" and parsed.concepts == ("dog", "rain", "crying baby", "siren")
    assert "Example 2" in llm.prompts[0] and llm.prompts[0].rstrip().endswith("Response:")
    assert missing == 2  # garbage answer (neuron 7) + empty description (neuron 9)
    assert list(rows.columns) == COLUMNS and set(rows["method"]) == {"ICL"} and set(rows["similarity"]) == {"llm"}
    top = rows[rows["rank"] == 1].set_index("neuron")["concept"].to_dict()
    assert top == {3: "dog", 5: "crying_baby"}
    assert rows.loc[rows["neuron"] == 3, "score"].iloc[0] == pytest.approx(1.0, abs=1e-6)


def test_icl_answers_naming_no_class_store_no_concept():
    llm = ScriptedLLM(lambda p: "Answer: dog" if "dogs" in parse_prompt(p).description else "Answer: none")
    desc = pd.DataFrame({"neuron": [0, 1], "description": ["dogs barking", "something unclear"]})
    rows, missing = icl_closed_concepts(desc, CONCEPTS, llm, WordVectorEncoder(), model="m", layer="l")
    assert missing == 1 and set(rows["neuron"]) == {0}  # neuron 1 has no ICL rows: no concept, no score


SIMS = ["cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi"]


def test_a_neuron_that_does_not_vary_gets_no_concept():
    rng = np.random.default_rng(0)
    u = rng.random((40, 3))
    u[:, 1] = 0.0  # a dead neuron: any ranking of concepts would only reflect the clip order
    P = rng.random((40, len(CONCEPTS)))
    rows = closed_concepts(u, P, CONCEPTS, model="m", layer="l", method="DB", similarities=SIMS, top_n=3)
    for sim, grp in rows.groupby("similarity"):
        assert set(grp["neuron"]) == {0, 2}, sim
        assert (grp.groupby("neuron")["rank"].max() == 3).all()


def test_similarities_tying_across_all_concepts_give_no_concept():
    rng = np.random.default_rng(1)
    u = rng.random((40, 3))
    P = np.repeat(rng.random((40, 1)), len(CONCEPTS), axis=1)  # every concept scores every clip alike
    assert (closed_concepts(u, P, CONCEPTS, model="m", layer="l", method="DB", similarities=["rank_reorder"])
            .empty)  # rank_reorder scores every concept -0 here; the first concept must not win
    assert closed_concepts(u, P, CONCEPTS, model="m", layer="l", method="DB", similarities=SIMS).empty


def test_more_concepts_sharing_the_best_score_than_top_n_give_no_concept():
    from and_engine.stages.module_a import top_n_rows

    scores = np.array([[-0.0, -0.0, -0.0, -1.0],  # three share the best: a top-2 would be the first two listed
                       [-0.0, -0.0, -2.0, -1.0],  # two share it: both are the best, stored
                       [0.3, 0.1, 0.2, 0.0]])
    rows = top_n_rows(scores, CONCEPTS, 2)
    assert set(rows["neuron"]) == {1, 2} and rows[rows["neuron"] == 1]["concept"].tolist() == ["dog", "rain"]
    assert set(top_n_rows(scores, CONCEPTS, 3)["neuron"]) == {0, 1, 2}  # a top-3 holds all three


def test_concept_sets(tmp_path):
    assert load_concept_set("probing-labels", ["rain", "dog", "rain"]) == ["dog", "rain"]
    assert load_concept_set("esc50") == list(ESC50_CLASSES) and len(set(ESC50_CLASSES)) == 50
    f = tmp_path / "words.txt"
    f.write_text("# acoustic concepts\nbuzzing\n\nhissing\n")
    assert load_concept_set(f"file:{f}") == ["buzzing", "hissing"]
    assert load_concept_set("file:words.txt", root=tmp_path) == ["buzzing", "hissing"]
    f.write_text("buzzing\nbuzzing\n")
    with pytest.raises(ConceptSetError, match="twice"):
        load_concept_set(f"file:{f}")
    with pytest.raises(ConceptSetError, match="not found"):
        load_concept_set(f"file:{tmp_path / 'none.txt'}")
    with pytest.raises(ConceptSetError, match="labelled"):
        load_concept_set("probing-labels", [])
    with pytest.raises(ConceptSetError, match="unknown spec"):
        load_concept_set("imagenet")
    assert concept_text("dog, barking_loudly") == "dog barking loudly"  # safe inside the ICL prompt


def test_icl_without_any_usable_answer_gives_typed_empty_rows(tmp_path):
    from and_engine.store.results import ResultsStore

    desc = pd.DataFrame({"neuron": [0, 1], "description": ["dogs barking", ""]})
    rows, missing = icl_closed_concepts(desc, CONCEPTS, ScriptedLLM(lambda p: ""), WordVectorEncoder(),
                                        model="m", layer="l")
    assert missing == 2 and rows.empty and list(rows.columns) == COLUMNS
    assert rows["score"].dtype == np.float64 and rows["neuron"].dtype == np.int32
    with ResultsStore(tmp_path / "r.duckdb") as store:  # the store accepts the empty table
        store.commit_step("run", "module_a_icl", {"model": "m", "layer": "l"}, {}, "fp", {"closed_concepts": rows},
                          pd.Timestamp.now().to_pydatetime(), "test")
        assert store.count("closed_concepts") == 0
