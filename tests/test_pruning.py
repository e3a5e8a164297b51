"""Concept-specific pruning: neuron selection (OCP / DB / TAB / random), evaluation, Table 4 arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _analyses_fixtures import CLASSES, closed_concepts, expected_logits, open_concepts, tiny_inputs, tiny_model

from and_engine.analyses.common import AnalysisInputError
from and_engine.analyses.pruning import (
    PruningResult,
    concept_deltas,
    evaluate_pruning,
    matching_concepts,
    matching_words,
    select_neurons,
    table4,
)
from and_engine.analyses.unlearning import candidate_layers, heldout_labels, run_table4
from and_engine.models.base import pruned
from and_engine.probing import classes_are_labels, heldout_clips
from and_engine.text.concepts import content_stems

SIZES = {"fc1": 4}


def sel(method, concept, **kw):
    return select_neurons(method, concept, closed_concepts(), open_concepts(), SIZES, **kw)


def test_content_stems_match_multiword_concepts():
    assert content_stems("chirping_birds") == {"chirp", "bird"}
    assert content_stems("crackling fire") == content_stems("Crackle-fires")
    assert content_stems("sound of rain") == {"rain"}


def test_ocp_matches_nouns_and_adjectives_by_content_word_stem():
    assert sel("OCP", "chirping_birds") == {"fc1": [1, 3]}  # "birds" (noun) on 1, "chirping" (JJ) on 3
    assert sel("OCP", "dog") == {"fc1": [0]}  # classifier row is not a candidate layer
    assert sel("OCP", "rain") == {}  # "rainy" stems to "raini": derivational forms do not match
    assert sel("OCP", "loud")["fc1"] == [0, 2]


def test_ocp_ignores_other_layers_and_names_methods_exactly():
    oc = pd.DataFrame({"layer": ["fc1", "fc2", "fc1"], "neuron": [0, 1, 2], "word": ["barking", "dog", "dogs"],
                       "pos": ["ADJ", "NOUN", "NOUN"]})
    assert select_neurons("OCP", "dog", closed_concepts(), oc, {"fc1": 4, "other": 2}) == {"fc1": [2]}
    with pytest.raises(AnalysisInputError, match="unknown pruning method"):
        select_neurons("ocp", "dog", closed_concepts(), oc, SIZES)  # the contract's spelling only


def test_matching_rules_are_what_selection_uses():
    words = ["Dogs", "dog", "doggy", "barking", "sound of rain"]
    assert matching_words("dog", words) == ["Dogs", "dog"] and matching_words("sound", words) == []
    names = ["church_bells", "church-bells ", "church\u00a0bells", "church_bells_", "bells", "church_bells"]
    assert matching_concepts("Church Bells", names) == names[:4]  # non-ASCII spaces and a trailing "_" too


def test_db_and_tab_use_top_n_of_the_chosen_similarity():
    assert sel("DB", "rain", similarity="cos3", top_n=1) == {"fc1": [1, 2]}
    assert sel("DB", "rain", similarity="cos3", top_n=2) == {"fc1": [0, 1, 2]}
    assert sel("DB", "rain", similarity="cos3", top_n=3) == {"fc1": [0, 1, 2, 3]}
    assert sel("DB", "dog", similarity="cos", top_n=1) == {"fc1": [1]}  # cos ranking is reversed
    assert sel("TAB", "chirping birds", top_n=1) == {"fc1": [3]}  # one similarity stored: no need to name it


def test_closed_selection_errors_are_clear():
    with pytest.raises(AnalysisInputError, match="pass similarity"):
        sel("DB", "rain")
    with pytest.raises(AnalysisInputError, match="not in closed_concepts"):
        sel("DB", "rain", similarity="wpmi")
    with pytest.raises(AnalysisInputError, match="unknown pruning method"):
        sel("ICL", "rain")
    with pytest.raises(AnalysisInputError, match="out of range"):
        select_neurons("DB", "rain", closed_concepts(), open_concepts(), {"fc1": 2}, similarity="cos3")
    with pytest.raises(AnalysisInputError, match="open_concepts lacks"):
        select_neurons("OCP", "rain", closed_concepts(), open_concepts().drop(columns="word"), SIZES)


def test_random_matches_ocp_count_and_is_seeded():
    a = sel("random", "chirping_birds", seed=3)
    assert sum(map(len, a.values())) == 2 and a == sel("random", "chirping_birds", seed=3)
    big = select_neurons("random", "x", closed_concepts(), open_concepts(), {"a": 50, "b": 50}, n_random=30, seed=1)
    assert sum(map(len, big.values())) == 30 and set(big) <= {"a", "b"}
    assert big != select_neurons("random", "x", closed_concepts(), open_concepts(), {"a": 50, "b": 50},
                                 n_random=30, seed=2)
    with pytest.raises(AnalysisInputError, match="n_random"):
        sel("random", "dog", n_random=5)


def test_evaluate_pruning_gives_exact_logit_changes():
    model, (x, y) = tiny_model(), tiny_inputs()
    res = evaluate_pruning(model, x, y, {"fc1": [3]}, batch_size=4)
    before, after = expected_logits(x, []), expected_logits(x, [3])
    idx = np.arange(len(y))
    np.testing.assert_allclose(res.logit_before, before[idx, y], atol=1e-5)
    np.testing.assert_allclose(res.logit_after, after[idx, y], atol=1e-5)
    want = [(after - before)[idx, y][y == c].mean() for c in range(3)]
    np.testing.assert_allclose(res.per_class_delta, want, atol=1e-5)
    assert res.accuracy_before == pytest.approx(np.mean(before.argmax(1) == y))
    assert res.accuracy_after == pytest.approx(np.mean(after.argmax(1) == y))
    assert res.n_pruned == 1
    # weights are restored: a second unpruned pass gives the original logits
    np.testing.assert_allclose(model.logits(x), before, atol=1e-5)


def test_pruned_unit_outputs_zero_and_nothing_else_changes():
    model, (x, _) = tiny_model(), tiny_inputs()
    seen = []
    hook = model.module[0].register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    model.logits(x)
    with pruned(model, {"fc1": [1]}):
        model.logits(x)
    hook.remove()
    base, cut = seen
    assert torch.all(cut[:, 1] == 0)
    torch.testing.assert_close(cut[:, [0, 2, 3]], base[:, [0, 2, 3]])


def test_empty_selection_changes_nothing_without_a_forward_pass():
    model, (x, y) = tiny_model(), tiny_inputs()
    baseline = expected_logits(x, [])
    model.logits = None  # any forward pass would fail
    res = evaluate_pruning(model, x, y, {"fc1": []}, baseline_logits=baseline)
    assert res.n_pruned == 0 and (res.per_class_delta == 0).all() and res.accuracy_after == res.accuracy_before


def test_evaluate_pruning_rejects_bad_labels():
    model, (x, y) = tiny_model(), tiny_inputs()
    with pytest.raises(AnalysisInputError, match="labels"):
        evaluate_pruning(model, x, y[:3], {"fc1": [0]})
    with pytest.raises(AnalysisInputError, match="classes"):
        evaluate_pruning(model, x, y + 5, {"fc1": [0]})


def _result(deltas, n):
    z = np.zeros(1)
    return PruningResult(z, z, np.array(deltas, dtype=float), 1.0, 0.5, n)


def test_concept_deltas_ignore_classes_without_clips():
    d = concept_deltas(np.array([-3.0, np.nan, -1.0, 0.0]), 0)
    assert (d.delta_a, d.delta_r, d.delta_a_minus_r) == (-3.0, -0.5, 2.5)
    alone = concept_deltas(np.array([np.nan, -2.0, np.nan]), 1)
    assert alone.delta_a == -2.0 and np.isnan(alone.delta_r) and np.isnan(alone.delta_a_minus_r)


def test_table4_arithmetic_and_paper_sign():
    results = {"dog": _result([-3, -1, -2], 2), "rain": _result([0, -1, -4], 4)}
    summary, per_class = table4(results, CLASSES, "tiny", "OCP")
    row = summary.iloc[0]
    assert row["delta_a"] == pytest.approx(-3.5)  # mean of -3 and -4
    assert row["delta_r"] == pytest.approx(-1.0)  # mean of -1.5 and -0.5
    assert row["delta_a_minus_r"] == pytest.approx(2.5)  # ΔR − ΔA: the target drops 2.5 more
    assert row["mean_pruned"] == 3 and row["n_concepts"] == 2
    assert len(per_class) == 6 and set(per_class["n_pruned"]) == {2, 4}
    got = per_class.set_index(["target_concept", "class_name"])["delta_logit"]
    assert got[("rain", "rain")] == -4


def test_table4_skips_classes_without_clips_and_rejects_unknown_targets():
    summary, per_class = table4({"dog": _result([-2, np.nan, 0], 1)}, CLASSES, "tiny", "DB")
    assert summary["delta_r"].iloc[0] == 0 and len(per_class) == 2
    with pytest.raises(AnalysisInputError, match="not one of the model's classes"):
        table4({"cat": _result([0, 0, 0], 1)}, CLASSES, "tiny", "DB")
    with pytest.raises(AnalysisInputError, match="no held-out clip"):
        table4({"rain": _result([0, 0, np.nan], 1)}, CLASSES, "tiny", "DB")


def test_run_table4_end_to_end():
    model, (x, y) = tiny_model(), tiny_inputs()
    summary, per_class = run_table4(model, x, y, CLASSES, closed_concepts(), open_concepts(), SIZES,
                                    {"DB": "cos3", "TAB": None}, "tiny", top_n=1)
    assert list(summary["method"]) == ["OCP", "DB", "TAB", "random"]
    # OCP on "dog" prunes fc1 unit 0 only: the dog clips' true logit drops by 2 * x0 on average
    dog = per_class[(per_class["method"] == "OCP") & (per_class["target_concept"] == "dog")]
    assert dog.set_index("class_name")["delta_logit"]["dog"] == pytest.approx(-(2 * 2 + 2 * 1) / 2)
    assert len(per_class) == 4 * 3 * 3


def test_heldout_labels_and_candidate_layers():
    clips = pd.DataFrame({"clip_id": [3, 0, 1, 2, 4], "label": ["dog", "rain", "dog", "Chirping Birds", "cat"],
                          "fold": [2, 1, 1, 1, 1]})
    ids, labels = heldout_labels(clips, CLASSES, 1)
    assert ids.tolist() == [0, 1, 2] and labels.tolist() == [2, 0, 1]  # "cat" is no class of the model
    assert classes_are_labels(["Dog", "rain", "Chirping Birds"], clips["label"].iloc[:4].tolist())
    assert not classes_are_labels([*CLASSES, "cat"], CLASSES) and not classes_are_labels([], [])
    held = heldout_clips(clips, CLASSES, 1)
    assert held["clip_id"].tolist() == [0, 1, 2] and held.index.tolist() == [1, 2, 3]  # rows of ``clips``
    with pytest.raises(AnalysisInputError, match="held-out fold 3"):
        heldout_labels(clips, CLASSES, 3)
    with pytest.raises(AnalysisInputError, match="held-out fold 1"):
        heldout_labels(clips.assign(label="cat"), CLASSES, 1)
    layers = pd.DataFrame({"layer": ["fc1", "classifier"], "kind": ["linear", "classifier"], "n_neurons": [4, 3]})
    assert candidate_layers(layers) == {"fc1": 4}
    assert candidate_layers(layers, include_classifier=True) == {"fc1": 4, "classifier": 3}
