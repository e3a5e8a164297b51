"""Related neurons: Pearson correlation of neurons' activations over the probing set, across layers and models.

``related_neurons(layers, top_n)``: ``layers`` = {(model, layer): (n_clips, n_neurons) activations on the same
clips} -> two DataFrames:

* ``related_neurons`` rows: for every neuron its ``top_n`` most correlated neurons in the same layer, in the
  model's other layers and in the other models (``schema.RELATIONS``), rank 1 = the highest correlation;
* ``neuron_partners`` rows: for every neuron and every layer of every *other* model, its best partner there
  (the highest correlation), what the compare page counts against a threshold (convergent-learning style
  matching: Li et al., 2016).

A neuron constant over the probing set has no correlation: it is neither a source nor a partner. The
correlation matrix is computed in row blocks (``block_cells`` floats at most), so memory stays bounded at
paper scale (55k neurons).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from and_engine.analyses.common import AnalysisInputError
from and_engine.store.schema import FIRST_RANK, RELATIONS

RELATED_COLUMNS = ["model", "layer", "neuron", "relation", "rank", "other_model", "other_layer", "other_neuron",
                   "correlation"]
PARTNER_COLUMNS = ["model", "layer", "neuron", "other_model", "other_layer", "other_neuron", "correlation"]
SAME_LAYER, OTHER_LAYER, OTHER_MODEL = RELATIONS


def standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_clips, n) activations -> (z (n_clips, n) float32 with z_a . z_b = Pearson r, (n,) bool: not constant)."""
    x = np.asarray(values, dtype=np.float64)
    x = x - x.mean(axis=0)
    norm = np.sqrt((x * x).sum(axis=0))
    ok = norm > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    z = np.where(ok, x / np.where(ok, norm, 1.0), 0.0)
    return z.astype(np.float32), ok


def _top(corr, offset: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, m) correlations (a torch view of source neurons x neurons ``offset``..) -> (rows, k) best neuron
    ids and values, best first (k = min(n, m); -inf marks an invalid partner)."""
    import torch

    k = min(n, corr.shape[1])
    vals, idx = torch.topk(corr, k, dim=1) if k else (torch.zeros(corr.shape[0], 0),) * 2
    return idx.numpy().astype(np.int64) + offset, vals.numpy()


def related_neurons(layers: Mapping[tuple[str, str], np.ndarray], top_n: int = 5, block_cells: int = 1 << 24
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """{(model, layer): (n_clips, n_neurons)} -> (related_neurons rows, neuron_partners rows); see the module."""
    import torch  # lazy: topk and the block products

    if top_n < 1:
        raise AnalysisInputError(f"top_n must be >= 1, got {top_n}")
    keys = sorted(layers, key=lambda k: k[0])  # each model's layers contiguous, in the given order
    if not keys:
        raise AnalysisInputError("related neurons: no layer activations")
    shapes = {k: np.asarray(v).shape for k, v in layers.items()}
    if len({s[0] for s in shapes.values()}) != 1 or any(len(s) != 2 for s in shapes.values()):
        raise AnalysisInputError(f"related neurons: every layer needs (n_clips, n_neurons) on the same clips, got "
                                 f"{shapes}")
    parts = [standardise(layers[k]) for k in keys]
    z = torch.from_numpy(np.concatenate([p[0] for p in parts], axis=1))  # (n_clips, N)
    valid = np.concatenate([p[1] for p in parts])
    invalid = torch.from_numpy(~valid)[None, :]
    start = np.concatenate([[0], np.cumsum([p[0].shape[1] for p in parts])]).astype(int)
    owner = np.repeat(np.arange(len(keys)), np.diff(start))  # neuron -> index into keys
    unit = np.arange(len(owner)) - start[owner]  # neuron -> its index in its layer
    span = {m: (int(start[[i for i, k in enumerate(keys) if k[0] == m][0]]),
                int(start[[i for i, k in enumerate(keys) if k[0] == m][-1] + 1])) for m, _ in keys}
    related, partners = [], []  # (source neurons, relation code, ranks, partner neurons, correlations) arrays
    rows = max(1, block_cells // max(1, len(owner)))  # source neurons per block
    for li, (model, _layer) in enumerate(keys):
        (s0, s1), (m0, m1) = (int(start[li]), int(start[li + 1])), span[model]
        for a in range(s0, s1, rows):
            src = np.arange(a, min(a + rows, s1))
            src = src[valid[src]]
            if not len(src):
                continue
            corr = z[:, src].T @ z  # (block, all neurons)
            corr.masked_fill_(invalid, -np.inf)
            corr[np.arange(len(src)), src] = -np.inf  # not its own partner
            found = [_top(corr[:, s0:s1], s0, top_n)]
            corr[:, s0:s1] = -np.inf
            found.append(_top(corr[:, m0:m1], m0, top_n))
            for lj in range(len(keys)):
                if not m0 <= start[lj] < m1:
                    vals, best = corr[:, start[lj]:start[lj + 1]].max(dim=1)
                    partners.append((src, best.numpy() + start[lj], vals.numpy()))
            corr[:, m0:m1] = -np.inf
            found.append(_top(corr, 0, top_n))
            for code, (ids, vals) in enumerate(found):
                ranks = np.broadcast_to(np.arange(FIRST_RANK, FIRST_RANK + ids.shape[1]), ids.shape)
                related.append((np.repeat(src, ids.shape[1]), code, ranks.ravel(), ids.ravel(), vals.ravel()))
    return _related_frame(keys, owner, unit, related), _partner_frame(keys, owner, unit, partners)


def _pairs(keys, owner, unit, src: np.ndarray, other: np.ndarray, corr: np.ndarray) -> dict:
    """Neuron ids (into the concatenation of ``keys``' layers) of sources and partners -> named columns."""
    ok = np.isfinite(corr)
    src, other = src[ok], other[ok]
    names = pd.Categorical.from_codes
    models = sorted({m for m, _ in keys})
    layer_names = sorted({layer for _, layer in keys})
    m_code = np.array([models.index(m) for m, _ in keys])
    l_code = np.array([layer_names.index(la) for _, la in keys])
    return {"model": names(m_code[owner[src]], models), "layer": names(l_code[owner[src]], layer_names),
            "neuron": unit[src].astype(np.int32), "other_model": names(m_code[owner[other]], models),
            "other_layer": names(l_code[owner[other]], layer_names), "other_neuron": unit[other].astype(np.int32),
            "correlation": corr[ok].astype(np.float64), "_ok": ok}


def _related_frame(keys, owner, unit, parts: list) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=RELATED_COLUMNS)
    src, code, rank, other, corr = (np.concatenate([np.broadcast_to(p[i], p[0].shape) for p in parts])
                                    for i in range(5))
    cols = _pairs(keys, owner, unit, src, other, corr)
    ok = cols.pop("_ok")
    cols["relation"] = pd.Categorical.from_codes(code[ok], list(RELATIONS))
    cols["rank"] = rank[ok].astype(np.int32)
    return pd.DataFrame(cols)[RELATED_COLUMNS]


def _partner_frame(keys, owner, unit, parts: list) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=PARTNER_COLUMNS)
    src, other, corr = (np.concatenate([p[i] for p in parts]) for i in range(3))
    cols = _pairs(keys, owner, unit, src, other, corr)
    cols.pop("_ok")
    return pd.DataFrame(cols)[PARTNER_COLUMNS]
