"""Sparse-autoencoder layers: a TopK SAE on one layer's frame / patch vectors, attached to a TargetModel as a
layer of kind ``sae`` whose units are the SAE's latents.

The SAE is eai-sparsify's ``SparseCoder`` (z = TopK(ReLU(W_enc (s x - b_dec) + b_enc)), x_hat = (W_dec^T z +
b_dec) / s, with s a fixed input scale). ``attach_sae(target, source, sae)`` hooks the source layer's module;
the SAE runs only when its latents are recorded (a hook on ``SaeTap.latents``) or ablated (a pruning mask on
them), otherwise the source layer is untouched. The latents module sees z per position, channel-last:
(rows, T, F, L) for a conv layer, (rows, S, L) for token layers, (rows, L) for a layer of vectors. Ablating
latents A replaces the source's output x by x - W_dec[A]^T z_A / s: their share of the reconstruction is
removed, the reconstruction error kept. Saved SAEs are folders (sparsify's ``sae.safetensors`` + ``cfg.json``,
our ``meta.json``), found in ``<run.cache_dir>/sae/`` by a key of their parameters and what they were trained
on (``load_or_train_sae``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from and_engine.cache_files import file_lock, temporary_sibling
from and_engine.config import sae_layer_name
from and_engine.models.base import LayerSpec, ModelError, TargetModel, mask_state

SAE_CHILD = "and_sae"  # an attached SaeTap is this child of its source layer's module (a leaf Conv2d / Linear)


def sparse_coder_class():
    """eai-sparsify's SparseCoder and its config class, imported on first use (the import is slow; its
    notice about Triton goes to stderr, not to the CLI's stdout)."""
    with contextlib.redirect_stdout(sys.stderr):
        from sparsify import SparseCoder, SparseCoderConfig
    return SparseCoder, SparseCoderConfig


def new_sparse_coder(d_in: int, n_latents: int, k: int) -> nn.Module:
    """An untrained TopK SparseCoder (d_in -> n_latents, k active), decoder rows of unit norm."""
    if not 1 <= k <= n_latents:
        raise ModelError(f"SAE: k must be in [1, {n_latents}] (the latents), got {k}")
    coder_cls, cfg_cls = sparse_coder_class()
    return coder_cls(d_in, cfg_cls(activation="topk", num_latents=n_latents, k=k, normalize_decoder=True))


@dataclass
class Sae:
    """A trained SAE of one source layer: ``coder`` (SparseCoder) on inputs multiplied by ``scale``."""

    coder: nn.Module
    scale: float
    source: str  # the layer it was trained on

    @property
    def n_latents(self) -> int:
        return int(self.coder.num_latents)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, d) -> (top values (N, k), their latent indices (N, k))."""
        values, indices, _ = self.coder.encode(x * self.scale)
        return values, indices

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) -> (N, n_latents) codes, zero outside each row's top k."""
        values, indices = self.encode(x)
        return values.new_zeros(len(x), self.n_latents).scatter_(1, indices, values)

    def decode(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Top values / indices (N, k) -> (N, d) reconstruction in the source's scale."""
        return self.coder.decode(values, indices) / self.scale

    def contribution(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """(N, k) values / indices -> (N, d) W_dec^T z / s without the decoder bias (what those latents add)."""
        w = self.coder.W_dec
        return nn.functional.embedding_bag(indices, w, per_sample_weights=values.to(w.dtype), mode="sum") / self.scale


def sae_layer_spec(source: LayerSpec, n_latents: int) -> LayerSpec:
    """The LayerSpec of an SAE on ``source``: its latents, same block and map grid, kind ``sae``."""
    if source.kind not in ("conv", "linear"):
        raise ModelError(f"layer {source.name!r} ({source.kind}) has no frame / patch vectors to train an SAE on")
    return LayerSpec(sae_layer_name(source.name), f"{source.module_path}.{SAE_CHILD}.latents", "sae",
                     source.block, n_latents, source.map_freq, source.map_time)


def position_vectors(output: torch.Tensor) -> torch.Tensor:
    """A hooked output -> its vectors, channel-last: conv (rows, C, T, F) -> (rows, T, F, C); tokens (rows,
    S, D) and vectors (rows, D) as they are."""
    if output.ndim == 4:
        return output.movedim(1, -1)
    if output.ndim in (2, 3):
        return output
    raise ModelError(f"an output of shape {tuple(output.shape)} has no frame / patch vectors")


class SaeTap(nn.Module):
    """The SAE of one source layer inside the target module; ``latents`` is the SAE layer's hook point."""

    def __init__(self, sae: Sae):
        super().__init__()
        self.coder = sae.coder
        self.sae = sae
        self.latents = nn.Identity()

    def engaged(self) -> bool:
        """Whether a forward pass needs the latents: recorded by a hook, or ablated by a pruning mask / edit."""
        mask_hook, touched = mask_state(self.latents)
        return touched or any(i != mask_hook for i in self.latents._forward_hooks)  # torch's hook registry

    def source_hook(self, _module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor | None:
        """The source's forward hook: codes through ``latents``; the output less any ablated latents' share."""
        if not self.engaged():
            return None
        x = position_vectors(output)
        flat = x.reshape(-1, x.shape[-1])
        values, indices = self.sae.encode(flat)
        dense = values.new_zeros(len(flat), self.sae.n_latents).scatter_(1, indices, values)
        codes = dense.view(*x.shape[:-1], -1)
        kept = self.latents(codes)
        if kept is codes:
            return None  # recorded, nothing ablated: the source's output stands
        removed = values - kept.reshape(len(flat), -1).gather(1, indices)
        delta = self.sae.contribution(removed, indices).to(output.dtype).view(x.shape)
        return output - (delta.movedim(-1, 1) if output.ndim == 4 else delta)


def attach_sae(target: TargetModel, source: str, sae: Sae) -> LayerSpec:
    """Put ``sae`` (trained on layer ``source``) into ``target`` as layer ``<source>.sae`` (idempotent: a second
    call replaces the SAE) -> its LayerSpec, appended to ``target.layer_specs``. The SaeTap becomes a child of the
    source's module (``<source module path>.and_sae``), so it moves with the model between devices."""
    src = target.layer(source)
    spec = sae_layer_spec(src, sae.n_latents)
    module = target.submodule(src)  # a leaf: its forward never calls its children
    old = getattr(module, SAE_CHILD, None)
    if old is not None:
        old.handle.remove()
    tap = SaeTap(sae).to(target.device)
    tap.handle = module.register_forward_hook(tap.source_hook)
    module.add_module(SAE_CHILD, tap)
    target.layer_specs = [s for s in target.layer_specs if s.name != spec.name] + [spec]
    if target.stages and source in target.stage_layers:  # pruning starts where the source layer is computed
        target.stage_layers[spec.name] = target.stage_layers[source]
    return spec


def attached_sae(target: TargetModel, source: str) -> Sae:
    """The SAE attached to layer ``source`` of ``target`` (ModelError when there is none)."""
    tap = getattr(target.submodule(target.layer(source)), SAE_CHILD, None)
    if tap is None:
        raise ModelError(f"layer {source!r} of {target.name!r} has no SAE attached")
    return tap.sae


def reconstruction(sae: Sae, output: torch.Tensor) -> torch.Tensor:
    """A source layer's output -> the SAE's reconstruction of it, same shape and layout (an edit for
    ``models.base.edited``: the network run on the SAE's reconstruction)."""
    x = position_vectors(output)
    flat = x.reshape(-1, x.shape[-1])
    rec = sae.decode(*sae.encode(flat)).to(output.dtype).view(x.shape)
    return rec.movedim(-1, 1) if output.ndim == 4 else rec


def save_sae(path: Path, sae: Sae, meta: dict[str, Any]) -> None:
    """Write ``sae`` into folder ``path``: sparsify's files + meta.json (scale, source and ``meta``)."""
    sae.coder.save_to_disk(path)
    (path / "meta.json").write_text(json.dumps({**meta, "scale": sae.scale, "source": sae.source}, indent=1))


def load_sae(path: Path) -> tuple[Sae, dict[str, Any]]:
    """A folder written by ``save_sae`` -> (Sae on the CPU, its meta)."""
    if not (path / "meta.json").is_file():
        raise ModelError(f"no SAE at {path} (run the build first: the app never trains an SAE)")
    meta = json.loads((path / "meta.json").read_text())
    coder_cls, _ = sparse_coder_class()
    coder = coder_cls.load_from_disk(path, device="cpu").eval()
    return Sae(coder, float(meta["scale"]), meta["source"]), meta


def load_or_train_sae(path: Path, train: Callable[[], tuple[Sae, dict[str, Any]]],
                      on_wait: Callable[[str], None] | None = None) -> tuple[Sae, dict[str, Any]]:
    """The SAE cached at ``path``, else ``train()`` -> (Sae, meta) published there (under a unique temporary
    name, then renamed: it appears complete or not at all; one build trains, another waits and loads)."""
    if not (path / "meta.json").is_file():
        with file_lock(path.with_name(path.name + ".lock"), on_wait=on_wait):
            if not (path / "meta.json").is_file():
                sae, meta = train()
                tmp = temporary_sibling(path)
                try:
                    tmp.mkdir(parents=True)
                    save_sae(tmp, sae, meta)
                    shutil.rmtree(path, ignore_errors=True)  # an incomplete folder of an older version
                    tmp.rename(path)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
    return load_sae(path)
