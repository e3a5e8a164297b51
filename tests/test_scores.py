"""Scores: scoring sets, AUC / Pearson, explanations, and the sanity checks every scorer must pass (a planted
neuron scores high, an explanation taken from another neuron scores at chance)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes import LabelAudioText, ScriptedLLM, WordVectorEncoder
from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score

from and_engine.backends.registry import make
from and_engine.stages.explanations import collect_explanations, shuffled
from and_engine.stages.llm_scores import LLMScoreError, judge_scores, sample_neurons
from and_engine.stages.scores import (
    auc,
    pearson,
    score_on_clips,
    separation,
    similarity_at_sets,
    summarise,
    text_vectors,
)
from and_engine.stages.scoring_sets import (
    QUANTILE_BINS,
    ScoringSetError,
    ScoringSets,
    draw_scoring_sets,
    set_size,
)
from and_engine.text.prompts import parse_number_list

LABELS = ["dog", "rain", "siren", "cow", "bell", "engine"]


def _ranks(u: np.ndarray) -> np.ndarray:
    """(N, n) -> each clip's rank per neuron (0 = highest activation, ties by clip id)."""
    return np.argsort(np.argsort(-u, axis=0, kind="stable"), axis=0, kind="stable")


def test_scoring_sets_never_hold_the_top_or_bottom_k_and_sample_every_quantile():
    u = np.random.default_rng(0).normal(size=(251, 40))
    sets = draw_scoring_sets(u, top_k=5, n_activating=20, n_non_activating=20, activating_fraction=0.2,
                             rng=np.random.default_rng(1))
    ranks = _ranks(u)
    for j in range(u.shape[1]):
        ids, act = sets.clip_ids[j][sets.valid[j]], sets.activating[j][sets.valid[j]]
        r = ranks[ids, j]
        assert len(set(ids)) == len(ids) == 40 and act.sum() == 20
        assert r.min() >= 5 and r.max() < 251 - 5  # neither top-K nor bottom-K
        assert (r[act] < 51).all() and (r[~act] >= 125).all()  # top 20 % / bottom half
        bins = np.minimum((r[act] - 5) * QUANTILE_BINS // 46, QUANTILE_BINS - 1)
        assert np.bincount(bins, minlength=QUANTILE_BINS).min() >= 4  # every quantile bin is sampled
    again = draw_scoring_sets(u, 5, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(again.clip_ids, sets.clip_ids)  # seeded
    frame = sets.frame("m", "l")
    back = ScoringSets.from_frame(frame, u.shape[1])
    assert (back.valid.sum(axis=1) == 40).all() and (back.activating.sum(axis=1) == 20).all()
    np.testing.assert_array_equal(np.sort(back.clip_ids, axis=1), np.sort(sets.clip_ids, axis=1))


@pytest.mark.parametrize("n_clips, top_k, n_act, n_non, fraction", [
    (26, 5, 20, 20, 0.2), (251, 5, 20, 20, 0.2), (2000, 5, 20, 20, 0.2), (40, 5, 3, 4, 0.5), (12, 5, 20, 20, 0.2)])
def test_set_size_is_the_largest_scoring_set_drawn(n_clips, top_k, n_act, n_non, fraction):
    """``plan`` sizes the LLM scorers' prompts by ``set_size``: it must equal what the draws can fill."""
    u = np.random.default_rng(1).normal(size=(n_clips, 30))  # continuous: every neuron's pools are full
    sets = draw_scoring_sets(u, top_k, n_act, n_non, fraction, np.random.default_rng(0))
    assert sets.valid.sum(axis=1).max() == set_size(n_clips, top_k, n_act, n_non, fraction)


def test_a_sparse_neuron_has_no_activating_clip_at_its_median():
    u = np.zeros((100, 2))
    u[:8, 0] = np.arange(8, 0, -1)  # 8 clips fire: top-5 + 3 left over
    sets = draw_scoring_sets(u, top_k=5, rng=np.random.default_rng(0))
    assert sets.activating[0].sum() == 3  # the three firing clips beyond the top-K, never a zero
    assert set(sets.clip_ids[0][sets.activating[0]]) == {5, 6, 7}
    assert sets.activating[1].sum() == 0  # a dead neuron: nothing activates, it cannot be scored
    with pytest.raises(ScoringSetError, match="activating_fraction"):
        draw_scoring_sets(u, 5, activating_fraction=0.8)


def test_auc_and_pearson_equal_the_reference_implementations_with_ties():
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 4, size=(30, 12)).astype(float), rng.integers(0, 4, size=(30, 9)).astype(float)
    pos_ok, neg_ok = rng.random((30, 12)) > 0.2, rng.random((30, 9)) > 0.2
    got = auc(pos, pos_ok, neg, neg_ok)
    for i in range(30):
        y = np.r_[np.ones(pos_ok[i].sum()), np.zeros(neg_ok[i].sum())]
        assert got[i] == pytest.approx(roc_auc_score(y, np.r_[pos[i][pos_ok[i]], neg[i][neg_ok[i]]]))
    assert np.isnan(auc(pos[:1], np.zeros((1, 12), bool), neg[:1], neg_ok[:1]))[0]
    x, y, ok = rng.normal(size=(20, 15)), rng.normal(size=(20, 15)), rng.random((20, 15)) > 0.3
    r = pearson(x, y, ok)
    for i in range(20):
        assert r[i] == pytest.approx(pearsonr(x[i][ok[i]], y[i][ok[i]])[0])
    assert np.isnan(pearson(np.ones((1, 5)), y[:1, :5], np.ones((1, 5), bool)))[0]  # a constant score


def test_text_vectors_average_the_points_of_a_summary_and_embed_each_point_once():
    enc = WordVectorEncoder()
    seen = []

    def embed(texts):
        seen.extend(texts)
        return enc.encode(texts)
    summary = "1. All five clips feature a dog barking loudly.\n2. Three of the five clips are very loud indeed."
    vecs = text_vectors([summary, "dog", summary], embed)
    points = ["All five clips feature a dog barking loudly.", "Three of the five clips are very loud indeed."]
    np.testing.assert_allclose(vecs[0], enc.encode(points).mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(vecs[1], enc.encode(["dog"])[0], atol=1e-6)
    assert sorted(seen) == sorted([*points, "dog"])


def _world(n_clips_per_label: int = 40, n_neurons: int = 60, seed: int = 0):
    """Clips of LABELS with label captions; neuron j tuned to label j % 6 (activation = label indicator + noise)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(LABELS, n_clips_per_label)
    captions = [f"the sound of a {lab} is heard" for lab in labels]
    tuned = np.arange(n_neurons) % len(LABELS)
    u = (labels[:, None] == np.asarray(LABELS)[tuned][None, :]) + 0.3 * rng.normal(size=(len(labels), n_neurons))
    return labels, captions, u, tuned


def _embedding_scores(texts, rows, captions, u, sets):
    enc = WordVectorEncoder()
    sim = similarity_at_sets(text_vectors(texts, enc.encode), np.arange(len(texts)), rows, enc.encode(captions),
                             sets)
    return separation(sim, rows, sets, u)


def test_sanity_planted_neurons_score_high_and_explanations_of_other_neurons_at_chance():
    labels, captions, u, tuned = _world()  # 240 clips, 1/6 of a label: its clips fill the top 15 %
    sets = draw_scoring_sets(u, 5, 8, 8, 0.15, np.random.default_rng(0))
    rows = np.arange(u.shape[1])
    own = [LABELS[t] for t in tuned]
    other = [LABELS[(t + 1 + r) % 6] for t, r in zip(tuned, np.random.default_rng(1).integers(0, 5, len(tuned)))]
    for texts, lo, hi in ((own, 0.95, 1.0), (other, 0.3, 0.7)):
        a, r = _embedding_scores(texts, rows, captions, u, sets)
        assert lo <= np.nanmean(a) <= hi, (texts[:3], np.nanmean(a))
    # the audio-text scorer against the clip "audio" (a fake model that knows each clip's label)
    model = LabelAudioText(labels)
    clips = model.audio_embeddings(np.zeros((len(labels), 4)))
    for texts, lo, hi in ((own, 0.95, 1.0), (other, 0.3, 0.7)):
        sim = similarity_at_sets(model.text_embeddings(texts), np.arange(len(texts)), rows, clips, sets)
        a, r = separation(sim, rows, sets, u)
        assert lo <= np.nanmean(a) <= hi
    a_own, r_own = separation(similarity_at_sets(model.text_embeddings(own), rows, rows, clips, sets), rows, sets, u)
    assert np.nanmean(r_own) > 0.7


def test_score_on_clips_scores_one_neuron_on_the_spot_as_the_layer_does():
    """The single-neuron entry (a new explanation scored live) equals the layer's vectorised scores."""
    labels, captions, u, tuned = _world()
    sets = draw_scoring_sets(u, 5, 8, 8, 0.15, np.random.default_rng(0))
    rows = np.arange(u.shape[1])
    texts = [LABELS[t] for t in tuned]
    layer_auc, layer_r = _embedding_scores(texts, rows, captions, u, sets)
    enc = WordVectorEncoder()
    for neuron in (0, 7):
        ids = sets.clip_ids[neuron][sets.valid[neuron]]
        a, r = score_on_clips([texts[neuron], LABELS[(tuned[neuron] + 1) % 6]], enc.encode,
                              enc.encode([captions[i] for i in ids]), sets.activating[neuron][sets.valid[neuron]],
                              u[ids, neuron])
        assert a[0] == pytest.approx(layer_auc[neuron]) and r[0] == pytest.approx(layer_r[neuron])
        assert a[0] > max(0.8, a[1])  # its own label beats another label


def test_sanity_with_the_rule_llm_judges_and_malformed_answers_are_counted():
    labels, captions, u, tuned = _world(n_neurons=24)
    sets = draw_scoring_sets(u, 5, 8, 8, 0.15, np.random.default_rng(0))
    rng = np.random.default_rng(2)
    own = pd.DataFrame({"model": "m", "layer": "l", "neuron": np.arange(24), "source": "S_h",
                        "explanation": [f"All five clips feature {LABELS[t]} prominently." for t in tuned]})
    other = own.assign(source="shuffled", explanation=[f"All five clips feature {LABELS[(t + 2) % 6]} prominently."
                                                       for t in tuned])
    rule = make("llm", "rule")
    for expl, lo, hi in ((own, 0.9, 1.0), (other, 0.35, 0.65)):
        det = judge_scores("detection", expl, sets, captions, u, rule, 5, rng)
        sim = judge_scores("simulation", expl, sets, captions, u, rule, 5, rng)
        assert lo <= det["balanced_accuracy"].mean() <= hi and lo <= sim["auc"].mean() <= hi
        assert (det["n_malformed"] == 0).all() and (det["n_clips"] == 16).all()
    assert judge_scores("simulation", own, sets, captions, u, rule, 5, rng)["pearson_r"].mean() > 0.7
    garbled = ScriptedLLM(["I cannot tell.", "Answer: [1, 0, 1, 0]"])  # every other answer is malformed
    out = judge_scores("detection", own.head(3), sets, captions, u, garbled, 4, rng)
    assert (out["n_malformed"] == 2).all() and (out["n_clips"] == 8).all()  # 4 prompts of 4 clips, 2 malformed
    with pytest.raises(LLMScoreError, match="unknown scorer"):
        judge_scores("vibes", own, sets, captions, u, rule, 5, rng)
    assert list(sample_neurons(10, 0, rng)) == list(range(10)) and len(sample_neurons(10, 3, rng)) == 3


def test_parse_number_list_reads_lists_clip_lines_and_bare_numbers_and_refuses_the_rest():
    assert parse_number_list("Sure.\nAnswer: [1, 0, 1]", 3, 0, 1) == [1, 0, 1]
    assert parse_number_list("Clip 1: 7\nClip 2: 0", 2, 0, 10) == [7, 0]
    assert parse_number_list("3 9", 2, 0, 10) == [3, 9]
    assert parse_number_list("[1, 0]", 3, 0, 1) is None  # wrong length
    assert parse_number_list("Answer: [4, 12]", 2, 0, 10) is None  # out of range
    assert parse_number_list("", 1, 0, 1) is None


def test_explanations_collect_every_source_and_a_shuffled_control_with_another_text():
    summaries = pd.DataFrame({"neuron": [0, 1, 2], "summary": ["1. Dogs bark loudly in all five clips.", "",
                                                               "1. Rain falls steadily in all clips here."],
                              "status": ["ok", "empty", "ok"]})
    calibrated = pd.DataFrame({"neuron": [0, 1, 2], "calibrated_summary": ["Dogs bark loudly in all five clips.",
                                                                           "", "Rain falls steadily here."]})
    closed = pd.DataFrame({"neuron": [0, 0, 2], "method": ["DB", "DB", "ICL"], "similarity": ["cos", "cos", "llm"],
                           "rank": [1, 2, 1], "concept": ["crying_baby", "dog", "rain"]})
    opened = pd.DataFrame({"neuron": [0, 0, 2], "word": ["loud", "sharp", "steady"], "pos": ["ADJ", "ADJ", "NOUN"],
                           "count": [1, 2, 1]})
    out = collect_explanations(summaries, calibrated, closed, opened, model="m", layer="l",
                               rng=np.random.default_rng(0))
    got = {(r.neuron, r.source): r.explanation for r in out.itertuples()}
    assert got[(0, "DB/cos")] == "crying baby" and got[(2, "ICL")] == "rain"
    assert got[(0, "adjectives")] == "sharp, loud" and (2, "adjectives") not in got
    assert (1, "S_h") not in got and (1, "S_h^c") not in got  # no usable text: no explanation
    assert got[(0, "shuffled")] == got[(2, "S_h^c")] and got[(2, "shuffled")] == got[(0, "S_h^c")]
    same = pd.DataFrame({"neuron": [0, 1, 2], "explanation": ["a", "a", "b"]})
    pairs = shuffled(same, np.random.default_rng(0))
    assert (pairs["explanation"].to_numpy() != same.set_index("neuron").loc[pairs["neuron"], "explanation"]).all()


def test_summarise_gives_quantiles_per_source_scorer_and_metric():
    scores = pd.DataFrame({"model": "m", "layer": "l", "neuron": range(10), "source": "S_h", "scorer": "embedding",
                           "auc": np.linspace(0, 1, 10), "pearson_r": [np.nan] * 10, "balanced_accuracy": np.nan,
                           "n_clips": 40, "n_malformed": 0})
    out = summarise(scores)
    assert list(out["metric"]) == ["auc"]  # a metric without values has no row
    row = out.iloc[0]
    assert row["n_neurons"] == 10 and row["median"] == pytest.approx(0.5) and row["q10"] == pytest.approx(0.1)


@pytest.mark.slow
def test_sanity_with_the_real_models_on_demo_clips():
    """Real MiniLM on real ``features`` captions and real YAMNet-labels on the audio: a neuron planted on a class
    (activation = the class indicator + noise) is explained by the class name far better than by another's."""
    from and_engine.backends.registry import CAPTION_SAMPLE_RATE, CaptionContext
    from and_engine.config import PROJECT_ROOT, ProbingSetConfig
    from and_engine.probing import open_probing_set

    classes = ["cow", "rain", "hand_saw", "keyboard_typing", "sheep"]
    root = PROJECT_ROOT / "data" / "demo"
    ps = open_probing_set(ProbingSetConfig(kind="demo", path=str(root)), root)
    clips = ps.clips[ps.clips["label"].isin(classes)].reset_index(drop=True)
    waves = ps.load_waveforms(CAPTION_SAMPLE_RATE, 5.0, clip_ids=clips["clip_id"])
    captions = make("captioner", "features").caption(waves, CAPTION_SAMPLE_RATE,
                                                     CaptionContext(clip_ids=np.arange(len(clips)))).captions
    labels = clips["label"].to_numpy()
    u = (labels[:, None] == np.asarray(classes)[None, :]) + 0.1 * np.random.default_rng(0).normal(size=(len(labels), 5))
    sets = draw_scoring_sets(u, 2, 8, 8, 0.2, np.random.default_rng(0))
    rows = np.arange(5)
    encoder = make("text_encoder", "minilm")
    audio = make("audio_text", "yamnet-labels", {"text_encoder": encoder})
    own = [c.replace("_", " ") for c in classes]
    other = own[1:] + own[:1]
    result = {}
    for scorer, clip_emb, embed in (("embedding", encoder.encode(captions), encoder.encode),
                                    ("audio-text", audio.audio_embeddings(waves), audio.text_embeddings)):
        for name, texts in (("own", own), ("other", other)):
            sim = similarity_at_sets(text_vectors(texts, embed), rows, rows, clip_emb, sets)
            result[(scorer, name)] = np.nanmean(separation(sim, rows, sets, u)[0])
    # measured: embedding 0.81 vs 0.40, audio-text 0.98 vs 0.33 (docs/scores.md); captions miss some sources
    assert result[("embedding", "own")] >= 0.75 and result[("audio-text", "own")] >= 0.9, result
    assert result[("embedding", "other")] <= 0.6 and result[("audio-text", "other")] <= 0.6, result
