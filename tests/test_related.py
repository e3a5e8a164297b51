"""Related neurons and cross-model partners (analyses/related.py) against a brute-force np.corrcoef."""

from __future__ import annotations

import numpy as np
import pytest

from and_engine.analyses.common import AnalysisInputError
from and_engine.analyses.related import related_neurons


def _layers(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(40, 6))
    def mix(n):  # neurons that share the base signals, so correlations are spread out
        return (base @ rng.normal(size=(6, n)) + 0.5 * rng.normal(size=(40, n))).astype(np.float32)
    layers = {("b", "l1"): mix(5), ("a", "l1"): mix(7), ("a", "l2"): mix(4), ("b", "l2"): mix(3)}
    layers[("a", "l1")][:, 2] = 1.5  # a constant neuron: no correlation, never a source or a partner
    return layers


def _brute(layers: dict) -> tuple[list, np.ndarray]:
    keys = list(layers)
    cols = [(m, la, j) for m, la in keys for j in range(layers[(m, la)].shape[1])]
    x = np.concatenate([layers[k] for k in keys], axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(x.T)
    return cols, r


def test_top_n_per_relation_equals_brute_force():
    layers = _layers()
    related, _ = related_neurons(layers, top_n=3, block_cells=9 * 4)  # a block of 1-2 sources at a time
    cols, r = _brute(layers)
    valid = ~np.isnan(np.diag(r))
    assert not (related["neuron"].eq(2) & related["layer"].eq("l1") & related["model"].eq("a")).any()
    assert not (related["other_neuron"].eq(2) & related["other_layer"].eq("l1") & related["other_model"].eq("a")).any()
    for i, (m, la, j) in enumerate(cols):
        if not valid[i]:
            continue
        for relation, keep in (("same_layer", lambda c, m=m, la=la: c[0] == m and c[1] == la),
                               ("other_layer", lambda c, m=m, la=la: c[0] == m and c[1] != la),
                               ("other_model", lambda c, m=m: c[0] != m)):
            cand = [(r[i, k], c) for k, c in enumerate(cols) if k != i and valid[k] and keep(c)]
            want = sorted(cand, key=lambda t: -t[0])[:3]
            got = related[(related["model"] == m) & (related["layer"] == la) & (related["neuron"] == j)
                          & (related["relation"] == relation)].sort_values("rank")
            assert got["rank"].tolist() == list(range(1, len(want) + 1))
            assert np.allclose(got["correlation"], [w[0] for w in want], atol=1e-5)
            assert list(zip(got["other_model"], got["other_layer"], got["other_neuron"])) == [w[1] for w in want]


def test_partners_are_the_best_neuron_of_every_layer_of_the_other_models():
    layers = _layers(1)
    _, partners = related_neurons(layers, top_n=2)
    cols, r = _brute(layers)
    idx = {c: k for k, c in enumerate(cols)}
    assert set(zip(partners["model"], partners["other_model"])) == {("a", "b"), ("b", "a")}
    assert len(partners) == (7 - 1 + 4) * 2 + (5 + 3) * 2  # every valid neuron x every layer of the other model
    for p in partners.itertuples():
        i = idx[(p.model, p.layer, p.neuron)]
        others = [k for k, c in enumerate(cols) if c[:2] == (p.other_model, p.other_layer) and c != ("a", "l1", 2)]
        best = max(others, key=lambda k: r[i, k])
        assert cols[best][2] == p.other_neuron and abs(r[i, best] - p.correlation) < 1e-5


def test_one_model_has_no_partners_and_the_store_accepts_the_rows(tmp_path):
    from and_engine.store.results import ResultsStore

    layers = {k: v for k, v in _layers().items() if k[0] == "a"}
    related, partners = related_neurons(layers, top_n=5)
    assert partners.empty and set(related["relation"]) == {"same_layer", "other_layer"}
    assert related.groupby(["layer", "neuron", "relation"])["rank"].max().max() == 5
    with ResultsStore(tmp_path / "r.duckdb") as store:
        store.commit_step("r", "related_neurons", {}, {}, "fp", {"related_neurons": related,
                                                                 "neuron_partners": partners}, None, "t")
        assert store.count("related_neurons") == len(related)


def test_bad_input_is_refused():
    with pytest.raises(AnalysisInputError, match="same clips"):
        related_neurons({("a", "x"): np.zeros((5, 2)), ("a", "y"): np.zeros((6, 2))})
    with pytest.raises(AnalysisInputError, match="top_n"):
        related_neurons({("a", "x"): np.zeros((5, 2))}, top_n=0)
