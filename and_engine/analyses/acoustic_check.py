"""Basic acoustic checks of open-set concepts (paper Appendix C, Figure 8).

For each checked adjective (default "loud", "high-pitched"): split the described neurons of a model
(``pos_counts`` rows) by whether their C_open holds the adjective (case-insensitive exact word), then
average over each group the mean waveform amplitude and the mean median frequency of each neuron's
top-K clips (``acoustic_features.mean_abs_amplitude`` / ``median_frequency_hz``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from and_engine.analyses.common import AnalysisInputError, require_columns

COLUMNS = ["model", "adjective", "has_adjective", "n_neurons", "mean_amplitude", "mean_median_frequency_hz"]


def topk_means(extremes: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, neuron): mean amplitude and mean median frequency over its top-K clips."""
    require_columns(extremes, ("layer", "neuron", "topk_clip_ids"), "extremes")
    require_columns(features, ("clip_id", "mean_abs_amplitude", "median_frequency_hz"), "acoustic_features")
    feat = features.set_index("clip_id")
    n_clips = int(feat.index.max()) + 1 if len(feat) else 0
    amp = np.full(n_clips, np.nan)
    mdf = np.full(n_clips, np.nan)
    amp[feat.index.to_numpy(np.int64)] = feat["mean_abs_amplitude"].to_numpy(np.float64)
    mdf[feat.index.to_numpy(np.int64)] = feat["median_frequency_hz"].to_numpy(np.float64)
    out = []
    for ids in extremes["topk_clip_ids"]:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0 or ids.max() >= n_clips or np.isnan(amp[ids]).any():
            raise AnalysisInputError(f"acoustic_features lack top-K clip(s) {ids.tolist()}")
        out.append((amp[ids].mean(), np.nanmean(mdf[ids]) if np.isfinite(mdf[ids]).any() else np.nan))
    arr = np.array(out, dtype=np.float64).reshape(-1, 2)
    return pd.DataFrame({"layer": extremes["layer"].to_numpy(), "neuron": extremes["neuron"].to_numpy(),
                         "amplitude": arr[:, 0], "median_frequency": arr[:, 1]})


def acoustic_check(open_concepts: pd.DataFrame, pos_counts: pd.DataFrame, extremes: pd.DataFrame,
                   acoustic_features: pd.DataFrame, model: str,
                   adjectives: Sequence[str] = ("loud", "high-pitched")) -> pd.DataFrame:
    """-> ``acoustic_check`` rows: for each adjective, one row for neurons with it and one without."""
    require_columns(open_concepts, ("layer", "neuron", "word"), "open_concepts")
    require_columns(pos_counts, ("layer", "neuron"), "pos_counts")
    described = pos_counts[["layer", "neuron"]].drop_duplicates()
    ext = extremes.merge(described, on=["layer", "neuron"])
    if ext.empty:
        raise AnalysisInputError(f"{model}: no described neuron has top-K clips in extremes")
    means = topk_means(ext, acoustic_features)
    words = open_concepts.assign(word=open_concepts["word"].astype(str).str.strip().str.lower())
    rows = []
    for adj in adjectives:
        has = words[words["word"] == adj.lower()][["layer", "neuron"]].drop_duplicates().assign(_has=True)
        flag = means.merge(has, on=["layer", "neuron"], how="left")["_has"].notna().to_numpy()
        for value in (True, False):
            grp = means[flag == value]
            rows.append((model, adj, value, len(grp),
                         float(grp["amplitude"].mean()) if len(grp) else float("nan"),
                         float(grp["median_frequency"].mean()) if len(grp) else float("nan")))
    return pd.DataFrame(rows, columns=COLUMNS)
