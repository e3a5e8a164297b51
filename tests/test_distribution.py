"""A neuron's distribution beyond its extremes: density, flags, quantile clips, percentiles (explorer/distribution)."""

from __future__ import annotations

import numpy as np
import pytest

from and_engine.explorer import distribution as dist


def test_density_and_the_dead_and_always_on_flags():
    d = dist.density(np.array([-1.0, 0.0, 0.5, 2.0]))
    assert d.share_above == 0.5 and not d.dead and not d.always_on and d.n_clips == 4  # 0.0 is not above 0
    assert dist.density(np.array([-1.0, 0.0]), 0.0).dead
    assert dist.density(np.array([0.2, 3.0]), 0.1).always_on
    assert not dist.density(np.array([0.2, 3.0]), 0.2).always_on  # strictly above the threshold
    with pytest.raises(ValueError):
        dist.density(np.zeros((2, 2)))


def test_layer_summary_matches_numpy_per_neuron():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(30, 4))
    acts[:, 1] = -1.0  # dead
    acts[:, 2] = np.abs(acts[:, 2]) + 0.1  # always on
    s = dist.activation_summary(acts, 0.0)
    assert s["dead"].tolist() == [False, True, False, False] and s["always_on"].tolist() == [False, False, True, False]
    assert np.allclose(s["mean"], acts.mean(0)) and np.allclose(s["std"], acts.std(0))
    assert np.allclose(s["share_above"], (acts > 0).mean(0))
    assert dist.density(acts[:, 3]).share_above == s["share_above"].iloc[3]


def test_quantile_clips_cover_every_bin_in_order():
    values = np.arange(100, dtype=float)[::-1]  # clip i has activation 99 - i
    q = dist.quantile_clips(values, n_bins=5, per_bin=3, seed=1)
    assert q.groupby("bin").size().tolist() == [3] * 5
    for b, g in q.groupby("bin"):
        assert ((g["activation"] >= 20 * b) & (g["activation"] < 20 * (b + 1))).all()  # bin b = its fifth
        assert g["activation"].is_monotonic_decreasing
        assert (g["pct_from"] == 20 * b).all() and (g["pct_to"] == 20 * (b + 1)).all()
    assert (q["activation"] == 99 - q["clip_id"]).all()
    assert q.equals(dist.quantile_clips(values, n_bins=5, per_bin=3, seed=1))  # seeded
    assert len(dist.quantile_clips(values[:3], n_bins=5, per_bin=2)) == 3  # fewer clips than bins


def test_percentiles_and_standard_scores_against_the_probing_set():
    ref = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    assert dist.percentiles(ref, np.array([10.0, 1.0])).tolist() == [100.0, 50.0]  # above all; all equal
    assert dist.percentiles(ref, np.array([1.0, 0.0])).tolist() == [37.5, 0.0]  # 1 below + half of 1 equal
    z = dist.standard_scores(ref, np.array([10.0, 5.0]))
    assert z[0] == pytest.approx((10 - 1.5) / np.std([0, 1, 2, 3])) and z[1] == 0.0  # constant neuron: 0
