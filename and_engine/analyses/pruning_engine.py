"""The pruning engine: a TargetModel's logits on fixed clips under many pruning selections.

``PruningEngine(model, waveforms, ...)`` is built once per (model, held-out clips); ``logits(selections)``
evaluates any number of selections ``{layer: [neuron ids]}`` at once:

* the clips' front-end features (``model.inputs``) are computed once, in chunks of ``batch_size`` clips;
* masks are applied in the forward pass (``models.base.masked``), never to the shared model's weights, so
  sessions and threads sharing the model never see each other's pruning;
* for a model with ``stages``, selections are sorted by the first stage they prune and each chunk's
  unpruned activations are carried forward stage by stage: the stages before a selection's first pruned
  layer run once per chunk, not once per selection;
* the unpruned inputs of the deepest stages that fit in ``cache_mb`` are kept from the unpruned pass, so a
  later call (a live view: one neuron, one concept) starts at its first pruned stage from stored
  activations instead of rerunning the stages below it (``cached_stages``);
* when the clips are fewer than ``batch_size``, ``batch_size // n_clips`` consecutive selections share one
  forward pass (replicas of the clips, one mask each; the pass starts at the first stage any of them
  prunes), so a GPU batch stays full;
* ``workers`` threads evaluate different chunks at once (torch runs each op on the calling thread when
  it uses one thread, and releases the GIL inside ops, so two threads keep two CPU cores busy); ``threads``
  (> 0) sets torch's CPU threads in each worker for the duration of a call (the app's server keeps torch's
  default, one per core, which on a loaded machine is several times slower than one thread per worker).

Each selection sees exactly the forward pass it would see alone (same chunks of clips, same precision);
only the replicas of a shared pass can differ in the last float bits from a pass of their own.

``edited_logits(edits)`` does the same for any change of layer outputs, ``{layer: fn(output) -> output}``
(``models.base.edited``: e.g. ablating a sparse-autoencoder latent), one pass per edit set, front end and
unpruned prefix shared. Building on it (one unit's effect on the outputs, SAE latents): docs/analyses.md.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from and_engine.analyses.common import AnalysisInputError
from and_engine.models.base import (
    Edit,
    TargetModel,
    check_edits,
    edited,
    install_unit_masks,
    keep_masks,
    masked,
)

PRECISIONS = ("float32", "bfloat16")
Selection = Mapping[str, Sequence[int]]


def auto_workers(device: torch.device | str = "cpu", threads: int = 0) -> int:
    """Threads that pay off: one per CPU core this process may use, divided by the torch threads each uses
    (``threads``, 0 = torch's current setting); 1 on a GPU."""
    if torch.device(device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, threads or torch.get_num_threads()))


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's CPU threads set to ``n`` (0 = unchanged) in the block, the previous setting restored after."""
    prev = torch.get_num_threads()
    if n <= 0 or n == prev:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


class PruningEngine:
    """Logits (n_clips, n_classes) float64 of ``model`` on fixed clips, unpruned (``baseline``) and pruned."""

    def __init__(self, model: TargetModel, waveforms: np.ndarray, batch_size: int = 16,
                 precision: str = "float32", workers: int = 1, threads: int = 0, cache_mb: float = 256):
        if precision not in PRECISIONS:
            raise AnalysisInputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if batch_size < 1 or workers < 1 or threads < 0 or cache_mb < 0:
            raise AnalysisInputError(f"batch_size and workers must be >= 1, threads and cache_mb >= 0, got "
                                     f"{batch_size}, {workers}, {threads}, {cache_mb}")
        arr = np.asarray(waveforms)
        if arr.ndim != 2 or len(arr) == 0:
            raise AnalysisInputError(f"waveforms must be a non-empty (n_clips, n_samples) array, got {arr.shape}")
        arr = model.check_waveforms(arr)
        self.model, self.precision, self.workers, self.threads = model, precision, workers, threads
        self.n_clips = len(arr)
        size = min(batch_size, self.n_clips)
        self.per_pass = max(1, batch_size // size)  # selections sharing one forward pass
        self.bounds = [(a, min(a + size, self.n_clips)) for a in range(0, self.n_clips, size)]
        install_unit_masks(model)  # before any thread runs the model
        model.module.eval()
        with torch.inference_mode(), torch_threads(threads):
            self.features = [model.inputs(arr[a:b]) for a, b in self.bounds]  # the front end, once
            self.cached_stages = self._stages_to_keep(cache_mb * 2**20)
        self._inputs: list[dict[int, torch.Tensor]] = [{0: f} for f in self.features]  # per chunk: stage -> input
        self._lock = threading.Lock()
        last = len(model.stages or [model.module]) - 1  # the unpruned pass, keeping the cached stages' inputs
        self.baseline = self._run_packs([(last, [0], contextlib.nullcontext)], 1)[0]

    def logits(self, selections: Sequence[Selection], progress: Callable[[int, int], None] | None = None
               ) -> list[np.ndarray]:
        """Each selection's (n_clips, n_classes) logits; an empty selection returns ``baseline`` without a pass.

        ``progress(done, total)`` is called after each chunk with clip evaluations done of ``total`` (the
        non-empty selections x n_clips).
        """
        todo = [i for i, s in enumerate(selections) if any(len(v) for v in s.values())]
        out = [self.baseline] * len(selections)
        for i, res in zip(todo, self._evaluate([selections[i] for i in todo], progress), strict=True):
            out[i] = res
        return out

    def edited_logits(self, edits: Sequence[Mapping[str, Edit]], progress: Callable[[int, int], None] | None = None
                      ) -> list[np.ndarray]:
        """Each edit set's (n_clips, n_classes) logits: the outputs of its layers replaced by ``fn(output)``
        (``models.base.edited``), one pass per set from the first edited stage; an empty set returns
        ``baseline``. ``progress`` as in ``logits``."""
        todo = [i for i, e in enumerate(edits) if e]
        model, out = self.model, [self.baseline] * len(edits)
        packs = []
        for i in todo:
            check_edits(model, edits[i])  # ModelError for an unknown layer or a non-function before any pass
            packs.append((min(model.stage_of(k) for k in edits[i]), [len(packs)],
                          lambda e=edits[i]: edited(model, e)))
        for i, res in zip(todo, self._run_packs(sorted(packs, key=lambda p: p[0]), len(todo), progress),
                          strict=True):
            out[i] = res
        return out

    def _evaluate(self, selections: Sequence[Selection], progress=None) -> list[np.ndarray]:
        """Every selection's logits: packs of ``per_pass`` selections sharing a first pruned stage, per chunk."""
        if not selections:
            return []
        model = self.model
        for s in selections:
            keep_masks(model, [s])  # ModelError for a bad layer / id before any pass
        starts = [min((model.stage_of(k) for k, v in s.items() if len(v)), default=0) for s in selections]
        order = sorted(range(len(selections)), key=starts.__getitem__)
        packs = []  # (first stage any member prunes, selection indices, their masks' context), in stage order
        for p in range(0, len(order), self.per_pass):
            idx = order[p : p + self.per_pass]
            masks = keep_masks(model, [selections[i] for i in idx])
            packs.append((starts[idx[0]], idx, lambda m=masks: masked(model, m)))
        return self._run_packs(packs, len(selections), progress)

    def _run_packs(self, packs: list, n: int, progress=None) -> list[np.ndarray]:
        """``n`` results from ``packs`` (first stage, result indices, context factory), sorted by first stage."""
        if not n:
            return []
        results = np.zeros((n, self.n_clips, len(self.model.class_names)))

        def run_chunk(c: int) -> int:
            with torch_threads(self.threads):
                self._chunk(c, packs, results)
            return (self.bounds[c][1] - self.bounds[c][0]) * n

        total, done = self.n_clips * n, 0
        workers = min(self.workers, len(self.bounds))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="prune") if workers > 1 else None
        with pool or contextlib.nullcontext():
            for clips_done in (pool.map if pool else map)(run_chunk, range(len(self.bounds))):
                done += clips_done
                if progress is not None:
                    progress(done, total)
        return list(results)

    def _stages_to_keep(self, budget: float) -> frozenset[int]:
        """The stages (> 0) whose unpruned inputs are kept: the deepest ones whose inputs for every clip fit in
        ``budget`` bytes (sizes from one row of the first chunk, a dry run of the stages)."""
        n_stages = len(self.model.stages or [])
        if n_stages < 2 or budget <= 0:
            return frozenset()
        rows = sum(len(f) for f in self.features)
        x, sizes = self.features[0][:1], {}
        with self._autocast():
            for k in range(n_stages - 1):
                x = self.model.run_stages(x, k, k + 1)
                sizes[k + 1] = x.numel() * x.element_size() * rows
        kept, total = set(), 0
        for k in sorted(sizes, reverse=True):
            if total + sizes[k] > budget:
                break
            kept.add(k)
            total += sizes[k]
        return frozenset(kept)

    def _prefix(self, c: int, start: int, at: int, x: torch.Tensor) -> torch.Tensor:
        """Chunk ``c``'s unpruned input of stage ``start`` from ``x``, its input of stage ``at`` <= ``start``, or
        from a stored deeper one; the inputs of ``cached_stages`` computed on the way are stored."""
        stored = self._inputs[c]
        best = max(k for k in list(stored) if k <= start)
        if best > at:
            at, x = best, stored[best]
        for k in range(at, start):
            x = self.model.run_stages(x, k, k + 1)
            if k + 1 in self.cached_stages:
                with self._lock:
                    stored.setdefault(k + 1, x)
        return x

    def _autocast(self):
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self.model.device.type, dtype=torch.bfloat16)

    def _chunk(self, c: int, packs: list, results: np.ndarray) -> None:
        """Every pack on chunk ``c``; the stages before a pack's first pruned stage run at most once, unpruned
        (not at all below a stored stage input)."""
        model, (a, b) = self.model, self.bounds[c]
        x, at = self.features[c], 0
        with torch.inference_mode(), self._autocast():
            for start, idx, context in packs:
                if start > at:
                    x, at = self._prefix(c, start, at, x), start
                xx = x if len(idx) == 1 else torch.cat([x] * len(idx))  # one replica of the chunk per mask
                with context():
                    raw = model.run_stages(xx, start)
                per_clip = raw.reshape(len(idx), b - a, -1, raw.shape[-1]).mean(dim=2)  # window mean per clip
                results[idx, a:b] = per_clip.float().cpu().numpy()
