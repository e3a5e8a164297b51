"""The paper's analyses as pure functions: Table 2, Figure 4 selection, Figure 5, Algorithm 1, Appendix C."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _analyses_fixtures import CLASSES, expected_logits, open_concepts, pos_counts, tiny_inputs, tiny_model
from fakes import WordVectorEncoder

from and_engine.analyses import adjectives, clusters
from and_engine.analyses.acoustic_check import acoustic_check
from and_engine.analyses.common import AnalysisInputError
from and_engine.analyses.feature_importance import criteria, feature_importance, rank_pool, select_by_criterion
from and_engine.analyses.lastlayer import best_similarity, lastlayer_accuracy

# ---------- Table 2 ----------


def _head_concepts() -> pd.DataFrame:
    """Classifier concepts: DB/cos3 right for all 3 classes; DB/cos right at rank 2 for neuron 1 only."""
    rows = []
    for n, truth in enumerate(CLASSES):
        others = [c for c in CLASSES if c != truth]
        for r, c in enumerate([truth, *others], start=1):
            rows.append((n, "DB", "cos3", r, c))
        cos_rank = [others[0], truth, others[1]] if n == 1 else [others[0], others[1]]
        rows += [(n, "DB", "cos", r, c) for r, c in enumerate(cos_rank, start=1)]
    rows.append((0, "ICL", "llm", 1, "dog"))
    rows += [(1, "ICL", "llm", 1, "rain"), (2, "ICL", "llm", 1, "rain")]
    return pd.DataFrame(rows, columns=["neuron", "method", "similarity", "rank", "concept"])


def test_lastlayer_accuracy_top1_top5_and_cosine():
    out = lastlayer_accuracy(_head_concepts(), CLASSES, [*CLASSES, "cat"], WordVectorEncoder(), "tiny").set_index(
        ["method", "similarity"])
    assert out.loc[("DB", "cos3"), "top1"] == 100 and out.loc[("DB", "cos3"), "concept_cosine"] == pytest.approx(1.0)
    assert out.loc[("DB", "cos"), "top1"] == 0 and out.loc[("DB", "cos"), "top5"] == pytest.approx(100 / 3)
    assert out.loc[("ICL", "llm"), "top1"] == pytest.approx(200 / 3)
    assert out.loc[("DB", "cos"), "concept_cosine"] < 1 and (out["n_neurons"] == 3).all()
    assert best_similarity(out.reset_index(), "DB") == "cos3" and best_similarity(out.reset_index(), "TAB") is None


def test_lastlayer_accuracy_rejects_gaps():
    with pytest.raises(AnalysisInputError, match="not in the concept set"):
        lastlayer_accuracy(_head_concepts(), CLASSES, ["dog"], WordVectorEncoder(), "tiny")
    with pytest.raises(AnalysisInputError, match="not one of 3 classes"):
        lastlayer_accuracy(_head_concepts().assign(neuron=5), CLASSES, CLASSES, WordVectorEncoder(), "tiny")


def test_lastlayer_neuron_without_a_concept_is_a_miss():
    partial = _head_concepts()[lambda d: ~((d["method"] == "DB") & (d["similarity"] == "cos3") & (d["neuron"] == 2))]
    out = lastlayer_accuracy(partial, CLASSES, CLASSES, WordVectorEncoder(), "tiny").set_index(["method", "similarity"])
    row = out.loc[("DB", "cos3")]
    assert row["top1"] == pytest.approx(200 / 3) and row["top5"] == pytest.approx(200 / 3)
    assert row["concept_cosine"] == pytest.approx(2 / 3) and row["n_neurons"] == 3


# ---------- Figure 4 ----------


def test_feature_importance_ranking_ties_and_seeds():
    pool, oc = rank_pool(pos_counts(), {"fc1": 4}), open_concepts()
    for seed in range(5):  # nouns 2, 2, 1, 0: the top two are always 0 and 1
        assert select_by_criterion("nouns", 50, seed, pool, oc) == {"fc1": [0, 1]}
    verbs = {tuple(select_by_criterion("verbs", 50, s, pool, oc)["fc1"]) for s in range(12)}
    assert all(1 in v for v in verbs) and len(verbs) > 1  # unit 1 first, the tie among 0/2/3 drawn per seed
    assert select_by_criterion("verbs", 50, 7, pool, oc) == select_by_criterion("verbs", 50, 7, pool, oc)
    assert select_by_criterion("summary_length", 25, 0, pool, oc) == {"fc1": [1]}
    assert select_by_criterion("high_level_adjectives", 25, 0, pool, oc) == {"fc1": [1]}  # 3 - 1 = 2 is max


def test_single_adjective_is_random_among_holders():
    pool, oc = rank_pool(pos_counts(), {"fc1": 4}), open_concepts()
    picks = {tuple(select_by_criterion("adjective:loud", 25, s, pool, oc)["fc1"]) for s in range(10)}
    assert picks == {(0,), (2,)}
    assert select_by_criterion("adjective:loud", 100, 0, pool, oc) == {"fc1": [0, 2]}  # fewer than r %: all
    assert select_by_criterion("adjective:high-quality", 50, 0, pool, oc) == {}
    with pytest.raises(AnalysisInputError, match="criterion"):
        select_by_criterion("colours", 50, 0, pool, oc)
    with pytest.raises(AnalysisInputError, match="percent"):
        select_by_criterion("nouns", 0, 0, pool, oc)


def test_feature_importance_end_to_end_accuracy():
    model, (x, y) = tiny_model(), tiny_inputs()
    df = feature_importance(model, x, y, pos_counts(), open_concepts(), {"fc1": 4}, "tiny", [50.0], [0, 1],
                            ["loud", "clear"], batch_size=4)
    assert len(df) == len(criteria(["loud", "clear"])) * 2 + 2
    nouns = df[(df["criterion"] == "nouns")]
    want = 100 * np.mean(expected_logits(x, [0, 1]).argmax(1) == y)
    assert nouns["accuracy"].tolist() == pytest.approx([want, want]) and (nouns["n_pruned"] == 2).all()
    assert df[df["criterion"] == "none"]["accuracy"].iloc[0] == pytest.approx(
        100 * np.mean(expected_logits(x, []).argmax(1) == y))


# ---------- Figure 5 / top adjectives ----------


def test_adjective_stats_and_top_adjectives():
    layers = pd.DataFrame({"layer": ["fc1", "classifier"], "block": [0, 1]})
    stats = adjectives.adjective_stats(open_concepts(), pos_counts(), layers, "tiny")
    # fc1 adjectives (JJ): unit0 loud, unit1 high-pitched, unit2 rainy+loud, unit3 chirping+clear -> 6 / 4
    assert stats.to_dict("records") == [
        {"model": "tiny", "layer": "fc1", "block": 0, "mean_adjectives": 1.5, "n_neurons": 4}]
    top = adjectives.top_adjectives(open_concepts(), "tiny", top_n=2)
    assert top["adjective"].tolist() == ["loud", "chirping"] and top["n_neurons"].tolist() == [2, 1]
    assert top["rank"].tolist() == [1, 2]
    with pytest.raises(AnalysisInputError, match="not in the layers table"):
        adjectives.adjective_stats(open_concepts(), pos_counts(), layers.iloc[1:], "tiny")


# ---------- Algorithm 1 ----------


def test_split_sentences_and_caption_rows():
    assert clusters.split_sentences("A dog barks. It is loud!\nBirds sing") == [
        "A dog barks.", "It is loud!", "Birds sing"]
    rows = clusters.caption_sentences(pd.DataFrame({"clip_id": [0, 1], "caption": ["One. Two.", "Three."]}))
    assert rows[["clip_id", "sentence_index"]].values.tolist() == [[0, 0], [0, 1], [1, 0]]


def test_interpretability_tau_on_a_hand_made_case():
    # 6 clips, 3 clusters: clips 0-2 hold cluster 0, clips 2-4 hold cluster 1, clip 5 only cluster 2
    sents = pd.DataFrame({"clip_id": [0, 1, 2, 2, 3, 4, 5], "cluster": [0, 0, 0, 1, 1, 1, 2]})
    m = clusters.clip_cluster_matrix(sents, 6)
    topk = np.array([[0, 1, 2], [2, 3, 4], [0, 3, 5], [0, 1, 5]])
    assert clusters.interpretable(topk, m, 3).tolist() == [True, True, False, False]
    assert clusters.interpretable(topk, m, 2).tolist() == [True, True, False, True]
    assert clusters.interpretable(topk, m, 1).tolist() == [True] * 4
    extremes = pd.DataFrame({"layer": ["fc1"] * 4, "neuron": range(4), "topk_clip_ids": list(topk)})
    out = clusters.interpretability(extremes, pd.DataFrame({"layer": ["fc1"], "block": [0]}), m, [2, 3], "tiny")
    assert out["pct_uninterpretable"].tolist() == [25.0, 50.0] and out["n_neurons"].tolist() == [4, 4]
    with pytest.raises(AnalysisInputError, match="clip_id outside"):
        clusters.clip_cluster_matrix(sents, 3)


def test_kmeans_elbow_and_cluster_words_are_seeded():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 0.05, (10, 4)) + 1, rng.normal(0, 0.05, (10, 4)) - 1]
    labels, elbow = clusters.kmeans_clusters(x, 2, seed=0, elbow_max_k=5)
    assert len(set(labels[:10])) == 1 and labels[0] != labels[10]
    assert elbow["k"].tolist() == [2, 3, 4, 5] and elbow["inertia"].is_monotonic_decreasing
    again, _ = clusters.kmeans_clusters(x, 2, seed=0, elbow_max_k=2)
    assert (again == labels).all()
    capped, _ = clusters.kmeans_clusters(np.ones((5, 3)), 4, seed=0, elbow_max_k=4)  # one distinct point
    assert set(capped) == {0}
    words = clusters.cluster_words(
        pd.DataFrame({"sentence": ["The dog barks loudly.", "A dog howls."], "cluster": [0, 0]}))
    assert words.iloc[0][["word", "weight", "n_sentences"]].tolist() == ["dog", 1.0, 2]
    assert "the" not in set(words["word"])


# ---------- Appendix C ----------


def test_acoustic_check_groups_neurons_by_adjective():
    extremes = pd.DataFrame({"layer": "fc1", "neuron": range(4), "topk_clip_ids": [[0, 1], [2, 3], [0, 2], [1, 3]]})
    feats = pd.DataFrame({"clip_id": range(4), "mean_abs_amplitude": [0.4, 0.2, 0.1, 0.3],
                          "median_frequency_hz": [100.0, 300.0, 500.0, 700.0]})
    out = acoustic_check(open_concepts(), pos_counts(), extremes, feats, "tiny", ["loud"]).set_index("has_adjective")
    # loud: units 0 (clips 0,1 -> 0.3, 200 Hz) and 2 (clips 0,2 -> 0.25, 300 Hz)
    assert out.loc[True, "n_neurons"] == 2 and out.loc[True, "mean_amplitude"] == pytest.approx(0.275)
    assert out.loc[True, "mean_median_frequency_hz"] == pytest.approx(250.0)
    assert out.loc[False, "mean_amplitude"] == pytest.approx((0.2 + 0.25) / 2)  # units 1 and 3
    with pytest.raises(AnalysisInputError, match="acoustic_features lack"):
        acoustic_check(open_concepts(), pos_counts(), extremes, feats.iloc[:2], "tiny")
