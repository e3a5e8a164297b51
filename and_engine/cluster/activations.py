"""Activations and activation maps on Ray: the local stage functions, per batch of clips, in actors.

Each actor gets the target model once (through the object store) and a clip source (``ClipFiles``: the
probing set's absolute paths, decoded by ``audio.load_clip`` as locally); each batch of clip ids ->
``stages.activations.record_activations`` (u) or ``maps_of_clips`` (the top-K maps of those clips). The
driver scatters the batches into its arrays by clip id, checking that every clip arrives exactly once,
and commits the steps as the local path does. Same inputs, same functions: the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from and_engine.audio import load_clip
from and_engine.config import ExecutionConfig, StageResources
from and_engine.models.base import LayerSpec, TargetModel
from and_engine.ray_runtime import map_stream
from and_engine.stages.activations import ActivationsError, maps_of_clips, record_activations


class ClipFiles:
    """Clips as the workers read them: ``paths[clip_id]`` decoded at ``sample_rate``, ``clip_seconds`` long
    (every worker node must see the same paths: a shared file system or the same copy on each)."""

    def __init__(self, paths: Sequence[str], sample_rate: int, clip_seconds: float):
        self.paths, self.sample_rate, self.clip_seconds = list(paths), int(sample_rate), float(clip_seconds)

    def load(self, clip_ids: np.ndarray) -> np.ndarray:
        """clip ids -> (n, samples) float32 waveforms."""
        n = int(round(self.sample_rate * self.clip_seconds))
        out = np.zeros((len(clip_ids), n), dtype=np.float32)
        for row, clip_id in enumerate(clip_ids):
            out[row] = load_clip(self.paths[int(clip_id)], self.sample_rate, self.clip_seconds)
        return out


def clip_files(probing_set, sample_rate: int, clip_seconds: float) -> ClipFiles:
    """A ProbingSet's clips (clip_id order) as workers read them."""
    from and_engine.probing import safe_join

    return ClipFiles([str(safe_join(probing_set.root, rel)) for rel in probing_set.clips["rel_path"]],
                     sample_rate, clip_seconds)


class ActivationsWorker:
    """One actor: the model (moved to ``device`` once), then per batch {clip_id} -> {clip_id, u_<j> per layer}."""

    def __init__(self, target: TargetModel, source, layers: list[LayerSpec], pool: str, batch_size: int,
                 precision: str, device: str):
        self.target, self.source, self.layers = target.to(device), source, layers
        self.pool, self.batch_size, self.precision = pool, batch_size, precision

    def __call__(self, batch: dict) -> dict:
        ids = np.asarray(batch["clip_id"], dtype=np.int64)
        values = record_activations(self.target, self.source.load(ids), self.layers, self.pool, self.batch_size,
                                    precision=self.precision)
        return {"clip_id": ids, **{f"u_{j}": values[s.name] for j, s in enumerate(self.layers)}}


class MapsWorker:
    """One actor: per batch {clip_id} -> one row per grid layer (layer index, neurons, ranks, maps)."""

    def __init__(self, target: TargetModel, source, layers: list[LayerSpec], topk_ids: dict[str, np.ndarray],
                 batch_size: int, precision: str, device: str):
        self.target, self.source, self.layers, self.topk_ids = target.to(device), source, layers, topk_ids
        self.batch_size, self.precision = batch_size, precision

    def __call__(self, batch: dict) -> dict:
        ids = np.asarray(batch["clip_id"], dtype=np.int64)
        got = maps_of_clips(self.target, self.source.load(ids), ids, self.layers, self.topk_ids, self.batch_size,
                            self.precision)
        parts = [got[s.name] for s in self.layers]
        column = lambda i: np.array([p[i] for p in parts] + [None], dtype=object)[:-1]  # noqa: E731 (ragged)
        return {"layer": np.arange(len(self.layers)), "neurons": column(0), "ranks": column(1), "maps": column(2)}


def record_activations_ray(execution: ExecutionConfig, resources: StageResources, target: TargetModel, source,
                           n_clips: int, layers: Sequence[LayerSpec], pool: str = "cls", batch_size: int = 16,
                           precision: str = "float32", device: str = "cpu", progress=None) -> dict[str, np.ndarray]:
    """``record_activations`` over clips 0..n_clips-1 of ``source`` in actors -> {layer: (n_clips, n_neurons)}."""
    layers = list(layers)
    arrays = {s.name: np.zeros((n_clips, s.n_neurons), dtype=np.float32) for s in layers}
    seen = np.zeros(n_clips, dtype=bool)
    worker_args = (target.to("cpu"), source, layers, pool, batch_size, precision, device)
    for out in map_stream(execution, resources, [{"clip_id": i} for i in range(n_clips)], ActivationsWorker,
                          worker_args, batch_size):
        ids = np.asarray(out["clip_id"], dtype=np.int64)
        if seen[ids].any() or len(np.unique(ids)) != len(ids):
            raise ActivationsError(f"model {target.name!r}: a worker returned clip(s) twice: {ids[seen[ids]][:5]}")
        seen[ids] = True
        for j, spec in enumerate(layers):
            arrays[spec.name][ids] = out[f"u_{j}"]
        if progress is not None:
            progress.update(len(ids))
    if not seen.all():
        raise ActivationsError(f"model {target.name!r}: {int((~seen).sum())} clip(s) came back from no worker")
    return arrays


def record_maps_ray(execution: ExecutionConfig, resources: StageResources, target: TargetModel, source,
                    layers: Sequence[LayerSpec], topk_ids: dict[str, np.ndarray], batch_size: int = 16,
                    precision: str = "float32", device: str = "cpu") -> dict[str, np.ndarray]:
    """``record_maps`` in actors: the union of top-K clips in batches -> {layer: (n_neurons, K, F, T)}."""
    layers = [s for s in layers if s.map_freq > 0 and s.map_time > 0]
    if not layers:
        return {}
    maps = {s.name: np.zeros((*np.asarray(topk_ids[s.name]).shape, s.map_freq, s.map_time), dtype=np.float32)
            for s in layers}
    filled = {s.name: np.zeros(np.asarray(topk_ids[s.name]).shape, dtype=bool) for s in layers}
    union = np.unique(np.concatenate([np.asarray(topk_ids[s.name]).ravel() for s in layers]))
    worker_args = (target.to("cpu"), source, layers, {s.name: topk_ids[s.name] for s in layers}, batch_size,
                   precision, device)
    for out in map_stream(execution, resources, [{"clip_id": int(i)} for i in union], MapsWorker, worker_args,
                          batch_size):
        for j, neurons, ranks, selected in zip(out["layer"], out["neurons"], out["ranks"], out["maps"]):
            name = layers[int(j)].name
            if filled[name][neurons, ranks].any():
                raise ActivationsError(f"layer {name!r}: a worker returned a top-K map twice")
            filled[name][neurons, ranks] = True
            maps[name][neurons, ranks] = selected
    for name, done in filled.items():
        if not done.all():
            raise ActivationsError(f"layer {name!r}: {int((~done).sum())} top-K map(s) came back from no worker")
    return maps
