"""SAE stage: a TopK sparse autoencoder per chosen layer, trained on that layer's frame / patch vectors.

``layer_vectors`` collects the vectors (YAMNet: each 0.96 s window's time x frequency positions; AST: each
token) of the probing clips; ``fit_sae`` leaves out the outliers (``typical``), trains (``train_sae``:
eai-sparsify's ``SparseCoder``, Adam on the FVU loss plus the AuxK loss on dead latents, decoder rows kept at
unit norm; seeded, so the same vectors give the same weights) and measures (``sae_metrics``); ``sae_tables``
gives the step's ``sae_metrics`` and ``layers`` rows. The SAE's latents then go through every later stage as
a layer of kind ``sae`` (``models.sae.attach_sae``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from and_engine.models.base import LayerSpec, TargetModel
from and_engine.models.sae import Sae, new_sparse_coder, position_vectors
from and_engine.stages.activations import for_each_output

AUXK_ALPHA = 1 / 32  # weight of the AuxK loss (Gao et al. 2024; sparsify's default)
DENSE_FRACTION = 0.1  # a latent active on more than this share of the vectors counts as dense
RESAMPLE_UNTIL = 0.5  # dead latents are resampled after each epoch in the first half of training
# vectors farther from the median vector than this many times the median distance are left out of training (on
# the demo: windows of digital silence, whose log-mel floor drives YAMNet's block13 to ~150x the typical norm
# and would hold > 99 % of the variance; docs/sae.md)
OUTLIER_FACTOR = 10.0
METRIC_COLUMNS = ["model", "layer", "source_layer", "n_inputs", "n_latents", "k", "n_vectors", "n_outliers",
                  "n_heldout_vectors", "fve", "fve_typical", "fve_heldout", "l0", "n_dead", "n_dense",
                  "dense_fraction", "checkpoint"]


class SaeError(ValueError):
    """Bad input to the SAE stage (no vectors, k larger than the latents...)."""


def sae_clips(clips: pd.DataFrame, heldout_fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Probing clips (clip_id, fold) -> (clip ids an SAE trains on: those outside the held-out fold, or every
    clip when that leaves none; clip ids its held-out FVE is measured on: the held-out fold's)."""
    held = clips["fold"].to_numpy() == heldout_fold
    ids = clips["clip_id"].to_numpy(np.int64)
    train = ids[~held] if (~held).any() else ids
    return np.sort(train), np.sort(ids[held]) if (~held).any() else np.empty(0, np.int64)


def layer_vectors(model: TargetModel, waveforms: np.ndarray, spec: LayerSpec, clip_ids: Sequence[int],
                  max_vectors: int, seed: int, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The output vectors of layer ``spec`` at every frame / patch position of clips ``clip_ids`` (rows of
    ``waveforms``) -> (vectors (n, width) float32, clip id of each (n,)).

    Conv layers give each window's T x F positions, token layers every token. When the clips hold more
    than ``max_vectors`` vectors, each is kept with probability max_vectors / total (seeded).
    """
    ids = np.asarray(clip_ids, dtype=np.int64)
    if ids.size == 0:
        raise SaeError(f"layer {spec.name!r}: no clips to collect vectors from")
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    state: dict[str, float] = {}

    def keep(_spec: LayerSpec, output: torch.Tensor, start: int, n: int) -> None:
        x = position_vectors(output.detach()).float()
        per_clip = x.numel() // (n * x.shape[-1])  # windows x positions (or tokens) per clip
        vecs = x.reshape(n, per_clip, x.shape[-1]).cpu().numpy()
        p = state.setdefault("p", min(1.0, max_vectors / (len(ids) * per_clip)))
        take = rng.random((n, per_clip)) < p
        kept.append(vecs[take])
        owners.append(np.repeat(ids[start:start + n], take.sum(axis=1)))

    for_each_output(model, waveforms, [spec], batch_size, keep, rows=ids)
    return np.concatenate(kept), np.concatenate(owners)


def default_lr(n_latents: int) -> float:
    """Adam's learning rate when none is configured: 2e-4 / sqrt(latents / 2^14) (sparsify's rule)."""
    return 2e-4 / math.sqrt(n_latents / 2 ** 14)


def train_sae(vectors: np.ndarray, n_latents: int, k: int, epochs: int, lr: float, batch_size: int, seed: int,
              source: str, progress=None, device: str = "cpu") -> Sae:
    """(n, d) float32 vectors -> a trained TopK SAE with ``n_latents`` latents, ``k`` active.

    Inputs are scaled by s = sqrt(d / mean ||x - mean||^2) (the decoder bias starts at the scaled mean);
    each step minimises FVU + AUXK_ALPHA * AuxK (dead latents: not active over the last n vectors) with
    Adam (``lr``, 0 = ``default_lr``), removes the decoder gradient parallel to its rows and renormalises
    them; after each epoch of the first RESAMPLE_UNTIL of training, dead latents are resampled.
    Deterministic for a seed on the CPU with one thread. ``progress``: optional ``.update(steps)``;
    ``device``: where it trains (the SAE comes back on the CPU).
    """
    x = torch.as_tensor(np.ascontiguousarray(vectors, dtype=np.float32))
    if x.ndim != 2 or len(x) < 2 or not torch.isfinite(x).all():
        raise SaeError(f"SAE of {source!r}: need >= 2 finite (n, d) vectors, got {tuple(x.shape)}")
    n, d = x.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        coder = new_sparse_coder(d, n_latents, k)
    mean = x.mean(0)
    spread = float(((x - mean) ** 2).sum(1).mean())
    scale = math.sqrt(d / spread) if spread > 0 else 1.0
    with torch.no_grad():
        coder.b_dec.copy_(mean * scale)
    coder.to(device)
    x = x.to(device)
    opt = torch.optim.Adam(coder.parameters(), lr=lr or default_lr(n_latents))
    gen = torch.Generator().manual_seed(seed)
    idle = torch.zeros(n_latents, dtype=torch.long, device=device)  # vectors since each latent was last active
    coder.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, batch_size):
            xb = x[order[start:start + batch_size]] * scale
            if len(xb) < 2:
                continue  # the FVU of one vector is undefined
            out = coder(xb, dead_mask=idle > n)
            loss = out.fvu + AUXK_ALPHA * out.auxk_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            coder.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            coder.set_decoder_norm_to_unit_norm()
            idle += len(xb)
            idle[out.latent_indices[out.latent_acts > 0]] = 0
            if progress is not None:
                progress.update(1)
        if epoch < RESAMPLE_UNTIL * epochs:
            sample = x[torch.randperm(n, generator=gen)[:4096].to(device)] * scale
            idle[_resample(coder, opt, sample, idle > n, gen)] = 0
    return Sae(coder.eval().cpu(), scale, source)


@torch.no_grad()
def _resample(coder: torch.nn.Module, opt: torch.optim.Adam, xb: torch.Tensor, dead: torch.Tensor,
              gen: torch.Generator) -> torch.Tensor:
    """Point each dead latent at the residual of a vector of ``xb`` drawn with probability ~ its squared error
    (Bricken et al. 2023's resampling; sparsify's AuxK loss trains only the decoder of dead latents, so without
    this they stay dead): decoder row = that unit direction, encoder row = it times the live rows' mean norm,
    encoder bias 0, Adam's moments of those rows cleared -> the resampled latent indices."""
    idx = dead.nonzero().squeeze(1)
    if len(idx) == 0 or bool(dead.all()):
        return idx
    residual = xb - coder(xb).sae_out
    pick = torch.multinomial((residual ** 2).sum(1).cpu() + 1e-12, len(idx), replacement=True, generator=gen)
    directions = residual[pick.to(residual.device)]
    directions /= directions.norm(dim=1, keepdim=True).clamp_min(1e-8)
    coder.W_dec[idx] = directions
    coder.encoder.weight[idx] = directions * coder.encoder.weight[~dead].norm(dim=1).mean()
    coder.encoder.bias[idx] = 0.0
    for param in (coder.W_dec, coder.encoder.weight, coder.encoder.bias):
        for moment in opt.state.get(param, {}).values():
            if moment.ndim and moment.shape[0] == len(dead):
                moment[idx] = 0.0
    return idx


def training_steps(n_vectors: int, epochs: int, batch_size: int) -> int:
    """The optimiser steps ``train_sae`` takes (for a progress bar)."""
    full, rest = divmod(n_vectors, batch_size)
    return epochs * (full + (rest >= 2))


@torch.inference_mode()
def sae_metrics(sae: Sae, vectors: np.ndarray, chunk: int = 4096) -> dict[str, float]:
    """An SAE on (n, d) vectors -> fve (1 - residual / total variance), l0 (mean active latents per vector),
    n_dead (latents never active), n_dense (active on > DENSE_FRACTION of the vectors)."""
    x = torch.as_tensor(np.ascontiguousarray(vectors, dtype=np.float32))
    if len(x) == 0:
        return {"fve": float("nan"), "l0": float("nan"), "n_dead": 0, "n_dense": 0}
    mean = x.mean(0)
    residual = total = 0.0
    active = torch.zeros(sae.n_latents, dtype=torch.long)
    n_active = 0
    for a in range(0, len(x), chunk):
        xb = x[a:a + chunk]
        values, indices = sae.encode(xb)
        residual += float(((xb - sae.decode(values, indices)) ** 2).sum())
        total += float(((xb - mean) ** 2).sum())
        on = indices[values > 0]
        n_active += len(on)
        active += torch.bincount(on, minlength=sae.n_latents)
    return {"fve": 1.0 - residual / total if total > 0 else float("nan"), "l0": n_active / len(x),
            "n_dead": int((active == 0).sum()), "n_dense": int((active > DENSE_FRACTION * len(x)).sum())}


def typical(vectors: np.ndarray) -> np.ndarray:
    """(n, d) -> (n,) bool: within OUTLIER_FACTOR x the median distance of the median vector (all, when that
    median distance is 0)."""
    dist = np.linalg.norm(vectors - np.median(vectors, axis=0), axis=1)
    bound = OUTLIER_FACTOR * np.median(dist)
    return dist <= bound if bound > 0 else np.ones(len(vectors), dtype=bool)


def fit_sae(vectors: np.ndarray, heldout: np.ndarray, n_latents: int, k: int, epochs: int, lr: float,
            batch_size: int, seed: int, source: str, progress=None, device: str = "cpu") -> tuple[Sae, dict]:
    """Train on the ``typical`` ``vectors`` and measure -> (Sae, meta: fve / l0 / dead / dense on all
    ``vectors``, ``fve_typical`` on those it was trained on, ``fve_heldout`` on the ``heldout`` vectors,
    counts, training seconds) (what ``models.sae.load_or_train_sae`` stores)."""
    if not 1 <= k <= n_latents:
        raise SaeError(f"SAE of {source!r}: k = {k} must be in [1, {n_latents}] (the latents)")
    t0 = time.perf_counter()
    keep = typical(vectors)
    sae = train_sae(vectors[keep], n_latents, k, epochs, lr, batch_size, seed, source, progress, device)
    meta = {**sae_metrics(sae, vectors), "fve_typical": sae_metrics(sae, vectors[keep])["fve"],
            "fve_heldout": sae_metrics(sae, heldout)["fve"], "n_vectors": int(len(vectors)),
            "n_outliers": int((~keep).sum()), "n_heldout_vectors": int(len(heldout)), "k": int(k),
            "train_seconds": round(time.perf_counter() - t0, 1)}
    return sae, meta


def sae_tables(model: str, source: LayerSpec, spec: LayerSpec, layer_index: int, meta: dict, checkpoint: str
               ) -> dict[str, pd.DataFrame]:
    """An SAE layer's step rows: ``sae_metrics`` (its measurements, from ``meta``) and its ``layers`` row (kind
    sae, the source layer's block, map grid and ``layer_index``)."""
    metrics = pd.DataFrame([{
        "model": model, "layer": spec.name, "source_layer": source.name, "n_inputs": source.n_neurons,
        "n_latents": spec.n_neurons, "k": meta["k"], "n_vectors": meta["n_vectors"], "n_outliers": meta["n_outliers"],
        "n_heldout_vectors": meta["n_heldout_vectors"], "fve": meta["fve"], "fve_typical": meta["fve_typical"],
        "fve_heldout": meta["fve_heldout"],
        "l0": meta["l0"], "n_dead": meta["n_dead"], "n_dense": meta["n_dense"], "dense_fraction": DENSE_FRACTION,
        "checkpoint": checkpoint}], columns=METRIC_COLUMNS)
    layers = pd.DataFrame([{"model": model, "layer": spec.name, "module_path": spec.module_path, "kind": spec.kind,
                            "block": spec.block, "layer_index": layer_index, "n_neurons": spec.n_neurons,
                            "map_freq": spec.map_freq, "map_time": spec.map_time}])
    return {"sae_metrics": metrics, "layers": layers}
