"""A neuron's activation distribution beyond its extremes: density, dead / always-on flags, quantile clips, and
where a new clip's activation falls in the probing set's distribution (percentiles, for query by sound).

Inputs are activations as stored (``queries.activations``: one neuron over every clip; ``read_activations``:
a layer); outputs are small dataclasses / DataFrames the pages show as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from and_engine.store.results import ResultsStore

# a clip counts as one the neuron fires on when its activation exceeds this (the stored activations are a
# layer's pooled outputs, pre-activation for conv / linear layers: about half the clips are above 0 for most)
DENSITY_THRESHOLD = 0.0


@dataclass(frozen=True)
class Density:
    """Share of the probing set's clips on which a neuron's activation exceeds ``threshold``."""

    threshold: float
    share_above: float  # in [0, 1]
    n_clips: int

    @property
    def dead(self) -> bool:
        """Never above the threshold on any probing clip."""
        return self.share_above == 0.0

    @property
    def always_on(self) -> bool:
        """Above the threshold on every probing clip."""
        return self.share_above == 1.0


def activation_summary(values: np.ndarray, threshold: float = DENSITY_THRESHOLD) -> pd.DataFrame:
    """(n_clips, n_neurons) activations of a layer -> per neuron: neuron, mean, std, min, max, share_above (share
    of clips whose activation exceeds ``threshold``), dead (never), always_on (on every clip)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or not v.shape[0]:
        raise ValueError(f"an activation summary needs a non-empty (n_clips, n_neurons) array, got shape {v.shape}")
    share = np.mean(v > threshold, axis=0)
    return pd.DataFrame({"neuron": np.arange(v.shape[1]), "mean": v.mean(axis=0), "std": v.std(axis=0),
                         "min": v.min(axis=0), "max": v.max(axis=0), "share_above": share, "dead": share == 0.0,
                         "always_on": share == 1.0})


def density(values: np.ndarray, threshold: float = DENSITY_THRESHOLD) -> Density:
    """(n_clips,) activations of one neuron -> its Density at ``threshold`` (``activation_summary``'s rule)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or not len(v):
        raise ValueError(f"density needs a non-empty (n_clips,) array, got shape {v.shape}")
    return Density(float(threshold), float(activation_summary(v[:, None], threshold)["share_above"].iloc[0]), len(v))


def layer_density(store: ResultsStore, model: str, layer: str, threshold: float = DENSITY_THRESHOLD) -> dict:
    """-> {n_neurons, dead, always_on}: how many neurons of a layer never / always exceed ``threshold``."""
    summary = activation_summary(store.read_activations(model, layer), threshold)
    return {"n_neurons": len(summary), "dead": int(summary["dead"].sum()), "always_on": int(summary["always_on"].sum())}


def quantile_clips(values: np.ndarray, n_bins: int = 5, per_bin: int = 2, seed: int = 0) -> pd.DataFrame:
    """(n_clips,) activations -> clips sampled from each activation quantile: bin (0 = lowest), the bin's range
    in percent of the clips (pct_from, pct_to), clip_id, activation; ``per_bin`` clips per bin drawn with ``seed``,
    highest activation first within a bin. Bins hold equal numbers of clips (ties broken by clip id)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or not len(v) or n_bins < 1 or per_bin < 1:
        raise ValueError(f"quantile clips need a non-empty (n_clips,) array and n_bins, per_bin >= 1, got {v.shape}, "
                         f"{n_bins}, {per_bin}")
    order = np.lexsort((np.arange(len(v)), v))  # ascending activation, ties by clip id
    rng = np.random.default_rng(seed)
    rows = []
    for b, ids in enumerate(np.array_split(order, min(n_bins, len(v)))):
        pick = rng.choice(ids, size=min(per_bin, len(ids)), replace=False)
        pick = pick[np.argsort(-v[pick], kind="stable")]
        lo, hi = 100.0 * b / min(n_bins, len(v)), 100.0 * (b + 1) / min(n_bins, len(v))
        rows += [{"bin": b, "pct_from": lo, "pct_to": hi, "clip_id": int(c), "activation": float(v[c])} for c in pick]
    return pd.DataFrame(rows)


def percentiles(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(n_clips, n_neurons) probing-set activations + (n_neurons,) a new clip's -> (n_neurons,) percentile of the
    new clip in each neuron's distribution: 100 x (clips below + half the clips equal) / n_clips."""
    ref = np.asarray(reference, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if ref.ndim != 2 or not len(ref) or v.shape != (ref.shape[1],):
        raise ValueError(f"percentiles need (n_clips, n) and (n,), got {ref.shape} and {v.shape}")
    below = (ref < v[None, :]).sum(axis=0)
    equal = (ref == v[None, :]).sum(axis=0)
    return 100.0 * (below + 0.5 * equal) / len(ref)


def standard_scores(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(n_clips, n_neurons) + (n_neurons,) -> (n_neurons,) (value - mean) / std over the probing set (0 where the
    neuron is constant): how far above its usual range a clip drives each neuron, to order ties at 100 %."""
    ref = np.asarray(reference, dtype=np.float64)
    std = ref.std(axis=0)
    return np.where(std > 0, (np.asarray(values, dtype=np.float64) - ref.mean(axis=0)) / np.where(std > 0, std, 1), 0.0)
