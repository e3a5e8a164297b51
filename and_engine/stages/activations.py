"""Activations stage (SPEC section 3): batched forward passes with hooks that pool inside the hook.

``record_activations`` fills one preallocated float32 (n_clips, n_neurons) array per layer (or an
``np.memmap`` the caller passes), so no token output outlives its batch. ``record_maps`` is the second
pass over only the union of the top-K clips that keeps each neuron's per-position (freq x time) map.
Both run one batch loop (``_run``), eagerly with hooks or, with ``compiled=True``, through ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import torch

from and_engine.models.base import LayerSpec, TargetModel

POOLS = ("cls", "mean", "max")
PRECISIONS = ("float32", "bfloat16")  # bfloat16 = torch.autocast on the model's device


class ActivationsError(ValueError):
    """Bad input to the activations stage (unknown pool, wrong array shape, non-finite values...)."""


def pool_rows(output: torch.Tensor, spec: LayerSpec, pool: str) -> torch.Tensor:
    """A hooked output (rows, ...) -> (rows, n_neurons) float32; rows = clips x windows.

    conv (rows, C, T, F): mean over time x frequency; tokens (rows, S, D): ``cls`` = token 0, ``mean`` /
    ``max`` over all tokens; (rows, D) as is. Reduces first, casts after: no float32 copy of a bf16 output.
    SAE latents come channel-last ((rows, T, F, L) or (rows, S, L); ``models.sae``), pooled the same way.
    """
    if pool not in POOLS:
        raise ActivationsError(f"pool must be one of {POOLS}, got {pool!r}")
    out, f32 = _unit_axis_1(output.detach(), spec), torch.float32
    if out.ndim == 4:
        out = out.mean(dim=(2, 3), dtype=f32)
    elif out.ndim == 3:
        out = (out[:, 0].to(f32) if pool == "cls" else out.mean(dim=1, dtype=f32) if pool == "mean"
               else out.amax(dim=1).to(f32))
    elif out.ndim == 2:
        out = out.to(f32)
    else:
        raise ActivationsError(f"layer {spec.name!r}: cannot pool an output of shape {tuple(output.shape)}")
    if out.shape[-1] != spec.n_neurons:
        raise ActivationsError(f"layer {spec.name!r}: {out.shape[-1]} units, LayerSpec says {spec.n_neurons}")
    return out


def _unit_axis_1(output: torch.Tensor, spec: LayerSpec) -> torch.Tensor:
    """An SAE layer's channel-last (rows, T, F, L) codes viewed as a conv output (rows, L, T, F); else as is."""
    return output.movedim(-1, 1) if spec.kind == "sae" and output.ndim == 4 else output


def pool_output(output: torch.Tensor, spec: LayerSpec, n_clips: int, pool: str) -> torch.Tensor:
    """A hooked module's output for ``n_clips`` clips -> (n_clips, n_neurons) scalars (``pool_rows``, then
    window models (W > 1 windows per clip) average over windows)."""
    return pool_rows(output, spec, pool).reshape(n_clips, -1, spec.n_neurons).mean(dim=1)


def position_maps(output: torch.Tensor, spec: LayerSpec, n_clips: int, token_prefix: int) -> torch.Tensor:
    """A hooked output -> (n_clips, n_neurons, map_freq, map_time) per-position maps.

    conv (n*W, C, T, F): windows concatenated along time; tokens (n, S, D): patch p = token
    ``token_prefix + p`` at row ``p // map_time``, column ``p % map_time``.
    """
    f, t = spec.map_freq, spec.map_time
    if f <= 0 or t <= 0:
        raise ActivationsError(f"layer {spec.name!r} has no per-position map")
    out = _unit_axis_1(output.detach(), spec).float()
    if out.ndim == 4:
        w = out.shape[0] // n_clips
        x = out.reshape(n_clips, w, out.shape[1], out.shape[2], out.shape[3])  # (n, W, C, T, F)
        x = x.permute(0, 2, 4, 1, 3).reshape(n_clips, out.shape[1], out.shape[3], w * out.shape[2])
    elif out.ndim == 3:
        patches = out[:, token_prefix : token_prefix + f * t]  # (n, P, D)
        x = patches.permute(0, 2, 1).reshape(n_clips, out.shape[2], f, t)
    else:
        raise ActivationsError(f"layer {spec.name!r}: output {tuple(output.shape)} has no positions")
    if x.shape[2:] != (f, t):
        raise ActivationsError(f"layer {spec.name!r}: map {tuple(x.shape[2:])} != LayerSpec grid {(f, t)}")
    return x


def _check(model: TargetModel, waveforms: np.ndarray, layers: Sequence[LayerSpec], precision: str) -> np.ndarray:
    if precision not in PRECISIONS:
        raise ActivationsError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    arr = model.check_waveforms(waveforms)
    if not layers:
        raise ActivationsError(f"no layers to record for model {model.name!r}")
    for spec in layers:
        model.layer(spec.name)  # raises for a layer the model does not have
    return arr


class PooledForward(torch.nn.Module):
    """inputs (rows, ...) -> {layer name: (rows, n_neurons) float32 ``pool_rows`` of that layer's output}.

    The hooks are registered inside ``forward``, so under ``torch.compile`` inductor fuses the pooling with
    the convolutions (and, with frozen weights, prepacks them).
    """

    def __init__(self, model: TargetModel, layers: Sequence[LayerSpec], pool: str):
        super().__init__()
        self.net = model.module
        self.taps = [(spec, model.submodule(spec)) for spec in layers]  # a plain list: not re-registered
        self.pool = pool

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        rows: dict[str, torch.Tensor] = {}
        hooks = [module.register_forward_hook(
            lambda _m, _i, out, spec=spec: rows.__setitem__(spec.name, pool_rows(out, spec, self.pool)))
            for spec, module in self.taps]
        try:
            self.net(inputs)
        finally:
            for h in hooks:
                h.remove()
        return rows


@torch.inference_mode()
def _run(model: TargetModel, arr: np.ndarray, batch_size: int, forward: Callable[[torch.Tensor, int, int], None],
         progress=None, precision: str = "float32", rows: np.ndarray | None = None, static: bool = False) -> None:
    """The batch loop: ``forward(inputs, start, n)`` for each batch of ``arr`` (or only its ``rows``), ``start``
    = the batch's offset in that sequence, ``n`` its clips. ``static``: every batch has ``batch_size`` clips
    (the last one padded with copies of its last clip; ``n`` counts the real ones)."""
    rows = np.arange(len(arr)) if rows is None else rows
    step = max(1, batch_size)
    model.module.eval()
    # one autocast region for all batches: its cache casts each weight to bf16 once per call, not per batch
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
    with autocast:
        for start in range(0, len(rows), step):
            chunk = arr[rows[start : start + step]]
            n = len(chunk)
            if static and n < step:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
            forward(model.inputs(chunk), start, n)
            if progress is not None:
                progress.update(n)


def _run_hooked(model: TargetModel, arr: np.ndarray, layers: Sequence[LayerSpec], batch_size: int,
                on_output: Callable[[LayerSpec, torch.Tensor, int, int], None], progress=None,
                precision: str = "float32", rows: np.ndarray | None = None) -> None:
    """``_run`` eagerly with a hook per layer: ``on_output(spec, output, start, n)`` inside each hook."""
    where = {"start": 0, "n": 0}
    hooks = [model.submodule(spec).register_forward_hook(
        lambda _m, _i, out, spec=spec: on_output(spec, out, where["start"], where["n"])) for spec in layers]

    def forward(inputs: torch.Tensor, start: int, n: int) -> None:
        where.update(start=start, n=n)
        model.module(inputs)

    try:
        _run(model, arr, batch_size, forward, progress, precision, rows)
    finally:
        for h in hooks:
            h.remove()


def for_each_output(model: TargetModel, waveforms: np.ndarray, layers: Sequence[LayerSpec], batch_size: int,
                    on_output: Callable[[LayerSpec, torch.Tensor, int, int], None], precision: str = "float32",
                    rows: np.ndarray | None = None) -> None:
    """Forward passes over ``waveforms`` (n_clips, samples) (or only its ``rows``) calling ``on_output(spec,
    output, start, n)`` inside each layer's hook (``start``: the batch's offset in ``rows``, ``n``: its clips)."""
    arr = _check(model, waveforms, layers, precision)
    _run_hooked(model, arr, layers, batch_size, on_output, precision=precision, rows=rows)


def _run_compiled(model: TargetModel, arr: np.ndarray, layers: Sequence[LayerSpec], pool: str, batch_size: int,
                  arrays: dict[str, np.ndarray], progress=None, precision: str = "float32") -> None:
    """``_run`` through ``torch.compile(PooledForward)`` (inductor, frozen weights), one static batch shape so
    it compiles once per call; fills ``arrays[layer][clip]``."""
    from torch._inductor import config as inductor_config

    torch._dynamo.reset()  # frozen weights are baked into the graph: never reuse one compiled for other weights
    size = max(1, min(batch_size, len(arr)))
    fn = torch.compile(PooledForward(model, layers, pool), dynamic=False)

    def forward(inputs: torch.Tensor, start: int, n: int) -> None:
        out = fn(inputs)
        for spec in layers:
            per_clip = out[spec.name].reshape(size, -1, spec.n_neurons).mean(dim=1)
            arrays[spec.name][start : start + n] = per_clip[:n].cpu().numpy()

    with inductor_config.patch(freezing=True):
        _run(model, arr, size, forward, progress, precision, static=True)


def record_activations(model: TargetModel, waveforms: np.ndarray, layers: Sequence[LayerSpec], pool: str = "cls",
                       batch_size: int = 16, out: dict[str, np.ndarray] | None = None,
                       progress=None, precision: str = "float32", compiled: bool = False) -> dict[str, np.ndarray]:
    """(n_clips, samples) -> {layer: (n_clips, n_neurons) float32}: u for every neuron and clip.

    ``out`` may hold preallocated arrays (e.g. np.memmap) to fill; ``progress`` gets ``.update(n)``;
    ``precision="bfloat16"`` runs the forward pass under autocast (faster on CPUs with AVX512-BF16);
    ``compiled=True`` runs it through ``torch.compile`` (same batch loop and pooling; a one-off compile of
    10-60 s, then up to ~1.3x faster on YAMNet, no faster on AST-base on CPU; docs/models.md, Benchmark).
    """
    if pool not in POOLS:
        raise ActivationsError(f"pool must be one of {POOLS}, got {pool!r}")
    arr = _check(model, waveforms, layers, precision)
    arrays = dict(out or {})
    for spec in layers:
        arrays.setdefault(spec.name, np.empty((len(arr), spec.n_neurons), dtype=np.float32))
        if arrays[spec.name].shape != (len(arr), spec.n_neurons):
            raise ActivationsError(f"out[{spec.name!r}] has shape {arrays[spec.name].shape}")

    def write(spec: LayerSpec, output: torch.Tensor, start: int, n: int) -> None:
        arrays[spec.name][start : start + n] = pool_output(output, spec, n, pool).cpu().numpy()

    if compiled:
        _run_compiled(model, arr, layers, pool, batch_size, arrays, progress, precision)
    else:
        _run_hooked(model, arr, layers, batch_size, write, progress, precision)
    for spec in layers:
        if not np.isfinite(arrays[spec.name]).all():
            raise ActivationsError(f"model {model.name!r} layer {spec.name!r}: non-finite activations")
    return arrays


def record_maps(model: TargetModel, waveforms: np.ndarray, layers: Sequence[LayerSpec],
                topk_ids: dict[str, np.ndarray], batch_size: int = 16,
                precision: str = "float32") -> dict[str, np.ndarray]:
    """Second pass over the union of top-K clips -> {layer: (n_neurons, K, map_freq, map_time) float32}.

    ``topk_ids[layer]`` is (n_neurons, K) clip ids (rows of ``waveforms``); layers without a grid are skipped.
    """
    arr = _check(model, waveforms, layers, precision)
    layers = [s for s in layers if s.map_freq > 0 and s.map_time > 0]
    if not layers:
        return {}
    maps, where = {}, {}
    for spec in layers:
        if spec.name not in topk_ids:
            raise ActivationsError(f"topk_ids has no entry for layer {spec.name!r}")
        ids = np.asarray(topk_ids[spec.name])
        if ids.ndim != 2 or ids.shape[0] != spec.n_neurons or (ids.size and (ids.min() < 0 or ids.max() >= len(arr))):
            raise ActivationsError(f"topk_ids[{spec.name!r}] must be (n_neurons, K) clip ids, got {ids.shape}")
        maps[spec.name] = np.zeros((*ids.shape, spec.map_freq, spec.map_time), dtype=np.float32)
        where[spec.name] = ids
    union = np.unique(np.concatenate([ids.ravel() for ids in where.values()]))
    on_device = {name: torch.as_tensor(ids, device=model.device) for name, ids in where.items()}
    batch_clips = torch.as_tensor(union, device=model.device)

    def keep(spec: LayerSpec, output: torch.Tensor, start: int, n: int) -> None:
        """Select on the device the (neuron, rank) maps whose top-K clip is in this batch; only those go to the host."""
        hits = on_device[spec.name].unsqueeze(-1) == batch_clips[start : start + n]  # (n_neurons, K, n)
        neurons, ranks, b = torch.nonzero(hits, as_tuple=True)
        if len(neurons):
            selected = position_maps(output, spec, n, model.token_prefix)[b, neurons]  # (m, F, T)
            maps[spec.name][neurons.cpu().numpy(), ranks.cpu().numpy()] = selected.cpu().numpy()

    _run_hooked(model, arr, layers, batch_size, keep, precision=precision, rows=union)
    return maps


def activations_table(model_name: str, layer: str, values: np.ndarray) -> pa.Table:
    """(n_clips, n_neurons) -> 'activations' rows: one per neuron, FLOAT[] over clips in clip_id order."""
    vals = np.asarray(values, dtype=np.float32)
    if vals.ndim != 2:
        raise ActivationsError(f"activations of {layer!r} must be (n_clips, n_neurons), got {vals.shape}")
    n_clips, n_neurons = vals.shape
    flat = pa.array(np.ascontiguousarray(vals.T).ravel(), type=pa.float32())
    lists = pa.ListArray.from_arrays(pa.array(np.arange(n_neurons + 1, dtype=np.int32) * n_clips), flat)
    return pa.table({
        "model": pa.array([model_name] * n_neurons, pa.string()),
        "layer": pa.array([layer] * n_neurons, pa.string()),
        "neuron": pa.array(np.arange(n_neurons, dtype=np.int32)),
        "values": lists,
    })


def maps_table(model_name: str, layer: str, maps: np.ndarray, topk_ids: np.ndarray) -> pa.Table:
    """(n_neurons, K, F, T) maps + (n_neurons, K) clip ids -> 'activation_maps' rows (row-major F x T)."""
    n_neurons, k, f, t = maps.shape
    n = n_neurons * k
    flat = pa.array(np.ascontiguousarray(maps, dtype=np.float32).ravel(), type=pa.float32())
    lists = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * (f * t)), flat)
    return pa.table({
        "model": pa.array([model_name] * n, pa.string()),
        "layer": pa.array([layer] * n, pa.string()),
        "neuron": pa.array(np.repeat(np.arange(n_neurons, dtype=np.int32), k)),
        "clip_id": pa.array(np.asarray(topk_ids, dtype=np.int32).ravel()),
        "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n_neurons)),  # schema.FIRST_RANK
        "n_freq": pa.array(np.full(n, f, dtype=np.int32)),
        "n_time": pa.array(np.full(n, t, dtype=np.int32)),
        "map": lists,
    })
