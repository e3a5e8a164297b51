"""Module A similarity functions: hand-computed cases, invariants, the paper-code defects, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import softmax

from and_engine.stages.similarity import (
    SIMILARITIES,
    SimilarityError,
    cos,
    cos3,
    neuron_order,
    rank_reorder,
    score_all,
    similarity_scores,
    soft_wpmi,
    wpmi,
)
from benchmarks._similarity_reference import LOOPS, per_call_loop


def db_like(n_clips: int, n_concepts: int, seed: int = 0) -> np.ndarray:
    """A DB-style concept matrix: softmax over concepts of 100 x cosines of random unit vectors."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((n_clips, 16))
    c = rng.standard_normal((n_concepts, 16))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return softmax(100 * d @ c.T, axis=1)


# cos / cos3 multiply in float32 by default: scores within FLOAT32_ATOL of float64 (observed <= 1e-7 on
# the benchmark layer, docs/dissection.md); the other functions, and exact=True, agree to 1e-9
FLOAT32_ATOL = 1e-6


def tol(name: str) -> dict:
    return {"rtol": 0, "atol": FLOAT32_ATOL} if name in ("cos", "cos3") else {"rtol": 1e-9, "atol": 1e-9}


def test_cos_hand_computed():
    u = np.array([[1.0], [2.0], [3.0]])
    P = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    np.testing.assert_allclose(cos(u, P), [[1.0, 10.0 / 14.0]])


def test_cos3_hand_computed_and_norm_floor():
    u = np.array([[1.0], [2.0], [3.0]])
    P = np.array([[3.0, 1.0, 5.0], [2.0, 2.0, 5.0], [1.0, 3.0, 5.0]])  # reversed, same, constant
    # centred and cubed: u -> [-1, 0, 1]; reversed -> [1, 0, -1]; constant -> 0 (norm floored, score 0)
    np.testing.assert_allclose(cos3(u, P), [[-1.0, 1.0, 0.0]], atol=1e-12)


def test_wpmi_hand_computed():
    u = np.array([[2.0, 0.0], [1.0, 5.0]])  # neuron 0's top clip is 0, neuron 1's is 1
    P = np.array([[1.0, 0.0], [0.0, 1.0]])
    e = math.exp(2.0)
    big, small = math.log(e / (e + 1) + 1e-7), math.log(1 / (e + 1) + 1e-7)
    L = np.array([[big, small], [small, big]])
    norm = np.log(np.exp(L).sum(0)) - math.log(2)
    np.testing.assert_allclose(wpmi(u, P, top_k=1), L - 0.6 * norm)


def test_rank_reorder_hand_computed_two_top_clips():
    # 40 clips -> top 5 % = 2 clips: clip 0 (u=10) and clip 1 (u=8)
    u = np.zeros((40, 1))
    u[0, 0], u[1, 0] = 10.0, 8.0
    P = np.full((40, 2), 0.5)
    P[0], P[1] = [0.9, 0.1], [0.1, 0.9]  # concept 0 orders the two clips like u, concept 1 reverses them
    s = rank_reorder(u, P)
    # concept 0: error 0; concept 1: error 8 (|10-8|^3), random-permutation baseline mean over pairs = 4
    np.testing.assert_allclose(s, [[0.0, -2.0 / math.sqrt(0.5)]])


def test_neuron_order_breaks_ties_by_clip_id():
    u = np.array([[1.0, 0.0], [3.0, 0.0], [3.0, 0.0], [2.0, 0.0]])
    np.testing.assert_array_equal(neuron_order(u), [[1, 2, 3, 0], [0, 1, 2, 3]])
    subsets = np.array([[3, 2, 1], [2, 0, 1]])
    np.testing.assert_array_equal(neuron_order(u, subsets), [[1, 2, 3], [0, 1, 2]])


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_neuron_equal_to_a_concept_column_ranks_it_first(name):
    P = db_like(400, 12, seed=1)
    rng = np.random.default_rng(2)
    u = np.concatenate([P, rng.standard_normal((400, 20))], axis=1)  # neuron c == column c of P
    s = similarity_scores(name, u, P)
    assert s.shape == (32, 12)
    np.testing.assert_array_equal(np.argmax(s[:12], axis=1), np.arange(12))


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_vectorised_matches_the_per_neuron_loop(name):
    P = db_like(300, 7, seed=3)
    u = np.random.default_rng(4).standard_normal((300, 600))  # > one chunk of neurons
    np.testing.assert_allclose(similarity_scores(name, u, P), LOOPS[name](u, P), **tol(name))


@pytest.mark.parametrize("name", ["cos", "cos3"])
def test_exact_float64_products_match_the_loop_and_float32_keeps_the_top5(name):
    P = db_like(300, 40, seed=3)
    u = np.random.default_rng(4).standard_normal((300, 200))
    exact = SIMILARITIES[name](u, P, exact=True)
    np.testing.assert_allclose(exact, LOOPS[name](u, P), rtol=1e-9, atol=1e-9)
    fast = SIMILARITIES[name](u, P)
    assert fast.dtype == np.float64 and np.abs(fast - exact).max() > 0  # the float32 path really ran
    np.testing.assert_array_equal(np.argsort(-fast, axis=1, kind="stable")[:, :5],
                                  np.argsort(-exact, axis=1, kind="stable")[:, :5])


@pytest.mark.parametrize("name", ["cos", "cos3"])
@pytest.mark.parametrize("scale", [1e-20, 1e20, 1e-200])
def test_float32_products_fall_back_to_float64_outside_their_range(name, scale):
    P = db_like(100, 5, seed=5)
    u = np.random.default_rng(6).standard_normal((100, 8))
    u[:, 3] *= scale  # norm (of the column, or of its centred cubes) outside FLOAT32_NORMS
    exact = SIMILARITIES[name](u, P, exact=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / underflow warnings leak out
        fast = SIMILARITIES[name](u, P)
    np.testing.assert_allclose(fast[3], exact[3], rtol=1e-12, atol=1e-300)  # that column: float64
    np.testing.assert_allclose(fast, exact, rtol=0, atol=FLOAT32_ATOL)


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_vectorised_matches_the_per_call_loop_with_tied_activations(name):
    # the paper-code baseline of the benchmark: one call per neuron (normaliser over the layer after);
    # activations rounded to a few levels, so the top clips hold ties (broken by clip id) and some
    # neurons are dead (all zeros)
    P = db_like(400, 6, seed=13)
    u = np.round(np.random.default_rng(14).standard_normal((400, 70)) * 2)
    u[:, :5] = 0.0
    np.testing.assert_allclose(similarity_scores(name, u, P), per_call_loop(name, u, P), **tol(name))


@pytest.mark.parametrize("limit", [1, 5, 28, 100, 299, 300])
def test_neuron_order_equals_a_stable_sort(limit):
    rng = np.random.default_rng(15)
    u = rng.standard_normal((300, 40))
    u[:, :10] = np.round(u[:, :10])  # ties
    u[:, 10:12] = 0.0  # dead neurons
    u[:, 12] = np.repeat([3.0, 1.0, 2.0], 100)  # a tie across the top-k boundary
    u[::8, 13:20] += 10.0  # the clips the candidate threshold samples hold the top: too few candidates
    u[::2, 20], u[1::2, 20] = -0.0, 0.0  # equal values with different bits
    u[:, 21] *= 1e-30  # tiny values
    u[:, 22] = 5.0 + rng.permutation(300) * 1e-13  # distinct values float32 cannot tell apart
    expected = np.argsort(-u.T, axis=1, kind="stable")[:, :limit]
    np.testing.assert_array_equal(neuron_order(u, limit=limit), expected)


def test_score_all_equals_separate_calls_in_any_order_and_on_strided_views():
    P = db_like(500, 6, seed=18)
    u = np.random.default_rng(19).standard_normal((500, 40))
    alone = {name: similarity_scores(name, u, P) for name in SIMILARITIES}
    for names in (list(SIMILARITIES), list(SIMILARITIES)[::-1]):
        for name, s in score_all(names, u, P).items():
            np.testing.assert_array_equal(s, alone[name])
    flipped = similarity_scores("wpmi", u[::-1, ::-1], P[::-1])  # negative strides; same clips per neuron
    np.testing.assert_allclose(flipped, alone["wpmi"][::-1], rtol=1e-9, atol=1e-9)


def test_read_only_and_float32_inputs():
    P = db_like(200, 5, seed=16)
    u = np.random.default_rng(17).standard_normal((200, 12)).astype(np.float32)
    u.setflags(write=False)
    for name in SIMILARITIES:
        np.testing.assert_allclose(similarity_scores(name, u, P), LOOPS[name](u.astype(np.float64), P),
                                   **tol(name))


def test_soft_wpmi_is_not_identically_zero_and_uses_the_layer_normaliser():
    P = db_like(200, 9, seed=5)
    u = np.random.default_rng(6).standard_normal((200, 30))
    s = soft_wpmi(u, P)
    assert np.abs(s).max() > 1e-3
    assert len(set(np.argmax(s, axis=1))) > 1  # not "always concept 0"
    # one neuron at a time (the paper's code) the normaliser cancels L exactly:
    np.testing.assert_allclose(soft_wpmi(u[:, :1], P), 0.0, atol=1e-9)


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_topk_scope_with_k5_gives_finite_nonempty_scores(name):
    P = db_like(100, 6, seed=7)
    u = np.random.default_rng(8).standard_normal((100, 15))
    topk = neuron_order(u, limit=5)
    s = similarity_scores(name, u, P, subsets=topk)
    assert s.shape == (15, 6) and np.isfinite(s).all()
    if name in ("rank_reorder", "wpmi", "soft_wpmi"):
        assert np.ptp(s, axis=1).min() > 0  # concepts are told apart, not one tied (empty) score


def test_rank_reorder_with_k5_uses_one_clip_and_prefers_its_best_concept():
    P = db_like(100, 6, seed=9)
    u = np.random.default_rng(10).standard_normal((100, 8))
    topk = neuron_order(u, limit=5)
    s = rank_reorder(u, P, subsets=topk)
    np.testing.assert_array_equal(np.argmax(s, axis=1), np.argmax(P[topk[:, 0]], axis=1))


def test_topk_scope_equals_all_scope_on_the_subset():
    P = db_like(60, 5, seed=11)
    u = np.random.default_rng(12).standard_normal((60, 4))
    topk = neuron_order(u, limit=5)
    for j in range(4):
        ids = topk[j]
        np.testing.assert_allclose(cos(u, P, topk)[j], cos(u[ids, j:j + 1], P[ids], exact=True)[0])
        np.testing.assert_allclose(cos3(u, P, topk)[j], cos3(u[ids, j:j + 1], P[ids], exact=True)[0])


@pytest.mark.parametrize("bad", [
    (np.zeros((3, 2)), np.zeros((4, 2))),
    (np.full((3, 2), np.nan), np.zeros((3, 2))),
    (np.zeros(3), np.zeros((3, 2))),
    (np.zeros((3, 0)), np.zeros((3, 2))),
])
def test_bad_inputs_raise(bad):
    with pytest.raises(SimilarityError):
        cos(*bad)


def test_unknown_function_and_bad_subsets_raise():
    u, P = np.zeros((4, 2)), np.ones((4, 3))
    with pytest.raises(SimilarityError, match="unknown similarity"):
        similarity_scores("pearson", u, P)
    with pytest.raises(SimilarityError, match="outside"):
        wpmi(u, P, subsets=np.array([[0, 9], [1, 2]]))


def test_rank_reorder_ties_in_p_are_not_penalised_and_dead_neurons_rank_by_mean_p():
    u = np.zeros((40, 2))
    u[0, 0], u[1, 0] = 10.0, 8.0  # top 2 clips of neuron 0; neuron 1 is dead (all zeros)
    P = np.full((40, 2), 0.2)
    P[0], P[1] = [0.5, 0.9], [0.5, 0.1]  # concept 0 scores both top clips equally, concept 1 orders them
    s = rank_reorder(u, P)
    np.testing.assert_allclose(s[0], [0.0, 0.0])  # a tie is not an ordering error
    # dead neuron: every reordering has zero error and zero baseline -> ratio 1, score -1 / sqrt(mean P)
    np.testing.assert_allclose(s[1], -1.0 / np.sqrt(P[:2].mean(axis=0)))
    assert np.isfinite(s).all()
