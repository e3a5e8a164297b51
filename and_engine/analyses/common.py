"""Shared helpers of the analyses: the input error, neuron pools, per-block means.

Concept-word matching (``normalise_name``, ``content_stems``) lives in ``and_engine.text.concepts``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from and_engine.config import SAE_SUFFIX


class AnalysisInputError(ValueError):
    """An analysis received input it cannot use; the message names the offending table / column / value."""


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise AnalysisInputError naming ``what`` when ``df`` lacks any of ``columns``."""
    if not isinstance(df, pd.DataFrame):
        raise AnalysisInputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisInputError(f"{what} lacks column(s) {missing}; has {list(df.columns)}")


def neuron_pool(layer_sizes: dict[str, int]) -> pd.DataFrame:
    """Every (layer, neuron) of the candidate layers, in layer order then neuron order."""
    if not layer_sizes:
        raise AnalysisInputError("layer_sizes is empty: no candidate layers to select neurons from")
    frames = []
    for layer, size in layer_sizes.items():
        if int(size) <= 0:
            raise AnalysisInputError(f"layer_sizes[{layer!r}] = {size}: a layer needs at least one neuron")
        frames.append(pd.DataFrame({"layer": layer, "neuron": np.arange(int(size), dtype=np.int64)}))
    return pd.concat(frames, ignore_index=True)


def check_neurons_in_layers(df: pd.DataFrame, layer_sizes: dict[str, int], what: str) -> pd.DataFrame:
    """Keep the rows of ``df`` in the candidate layers; a neuron index past its layer's size is an error."""
    sub = df[df["layer"].isin(list(layer_sizes))]
    if len(sub):
        limit = sub["layer"].map(layer_sizes).astype(np.int64)
        bad = sub[(sub["neuron"] < 0) | (sub["neuron"] >= limit)]
        if len(bad):
            row = bad.iloc[0]
            raise AnalysisInputError(
                f"{what}: neuron {row['neuron']} out of range for layer {row['layer']!r} "
                f"({layer_sizes[row['layer']]} neurons)"
            )
    return sub


def to_selection(pairs: pd.DataFrame) -> dict[str, list[int]]:
    """(layer, neuron) rows -> {layer: sorted unique neuron indices}; layers with no neuron are left out."""
    out: dict[str, list[int]] = {}
    for layer, grp in pairs.groupby("layer", sort=False):
        out[str(layer)] = sorted({int(n) for n in grp["neuron"]})
    return out


def selection_size(selection: dict[str, list[int]]) -> int:
    """Number of neurons in a {layer: [neuron, ...]} selection."""
    return sum(len(v) for v in selection.values())


def varying_units(extremes: pd.DataFrame) -> pd.DataFrame:
    """``extremes`` rows (with ``topk_values``, ``bottomk_values``) of the units whose activation is not constant
    over the clips: a constant unit (an SAE latent never active) has no top-K clips to speak of."""
    require_columns(extremes, ("topk_values", "bottomk_values"), "extremes")
    top = np.array([np.max(v) if len(v) else np.nan for v in extremes["topk_values"]], dtype=np.float64)
    bottom = np.array([np.min(v) if len(v) else np.nan for v in extremes["bottomk_values"]], dtype=np.float64)
    return extremes[top > bottom]


def sae_series(model: str) -> str:
    """The name under which a model's SAE layers appear beside its neurons in per-block figures."""
    return f"{model} (SAE)"


def per_block_means(per_layer: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per-layer rows (model, block, ``value``, n_neurons) -> one row per (model, block) with the mean of
    ``value`` over the block's neurons (layers weighted by their neuron counts), as Figures 5 / 6 plot it;
    blocks without neurons are left out. SAE layers (rows with a ``layer`` of kind sae) are never mixed with
    the neurons: they form their own series, model ``sae_series(model)``. The report and the app's charts
    both use it."""
    require_columns(per_layer, ("model", "block", value, "n_neurons"), "per-layer rows")
    if "layer" in per_layer and len(per_layer):
        sae = per_layer["layer"].astype(str).str.endswith(SAE_SUFFIX)
        per_layer = per_layer.assign(model=per_layer["model"].where(~sae, per_layer["model"].map(sae_series)))
    out = (per_layer.assign(_sum=per_layer[value] * per_layer["n_neurons"])
           .groupby(["model", "block"], as_index=False)[["_sum", "n_neurons"]].sum())
    out = out[out["n_neurons"] > 0]
    return out.assign(**{value: out["_sum"] / out["n_neurons"]})[["model", "block", value, "n_neurons"]]
