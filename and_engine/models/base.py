"""The target-network interface: a ``torch.nn.Module`` plus what dissection needs to know about it.

A :class:`TargetModel` turns waveforms into the module's input (``preprocess``), runs it to logits, names
its classes and lists its dissectable layers (:class:`LayerSpec`, found by walking the module's
structure). :func:`pruned` / :func:`masked` zero units in the forward passes of the calling thread only (masks
applied by a hook on the layer's output; weights are never modified), for the pruning analyses;
:func:`edited` replaces a layer's output by any function of it the same way (e.g. an SAE latent ablation).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

LAYER_KINDS = ("conv", "linear", "classifier", "sae")  # sae: the latents of a sparse autoencoder (models/sae.py)


class ModelError(ValueError):
    """Bad input to a target model (unknown layer, wrong waveform shape, bad neuron id...)."""


@dataclass(frozen=True)
class LayerSpec:
    """One hookable layer. ``map_freq`` x ``map_time`` is its per-position map grid (0, 0 = no map)."""

    name: str  # the layer's name in the results database, e.g. "block3.pointwise", "block2.mlp.fc1"
    module_path: str  # dotted path of the nn.Linear / nn.Conv2d inside TargetModel.module
    kind: str  # conv | linear | classifier
    block: int  # block index for per-block figures; the classifier gets the last block + 1
    n_neurons: int
    map_freq: int = 0
    map_time: int = 0

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ModelError(f"layer {self.name!r}: kind must be one of {LAYER_KINDS}, got {self.kind!r}")


@dataclass
class TargetModel:
    """A target network F: ``module(preprocess(waveforms)) -> logits``.

    ``preprocess`` maps float32 waveforms (n, samples) at ``sample_rate`` to the module's input tensor
    whose first dimension is ``n * windows`` (windows = fixed patches per clip, 1 for whole-clip models);
    the module returns logits (n * windows, n_classes), averaged over windows per clip. ``token_prefix``
    is the number of non-patch tokens before the patch grid in token layers (AST: CLS + distillation = 2).
    """

    name: str
    kind: str
    sample_rate: int
    class_names: list[str]
    module: torch.nn.Module
    layer_specs: list[LayerSpec]
    preprocess: Callable[[np.ndarray], torch.Tensor]
    token_prefix: int = 0
    description: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    preprocess_on_device: bool = False  # preprocess(waveforms, device) computes the input there (AST's front end)
    # optional: the forward pass as consecutive steps (``module(x)`` == the steps applied in order) and the
    # step that computes each layer, so pruning can start from stored activations before the first pruned layer
    stages: list[Callable[[torch.Tensor], torch.Tensor]] | None = None
    stage_layers: dict[str, int] = field(default_factory=dict)
    # optional: ``why_unchanged(layer, neuron, inputs)`` -> a sentence saying why zeroing that unit cannot change
    # the logits on ``inputs`` (module inputs, e.g. the pruning engine's features), or "" when nothing shows it
    why_unchanged: Callable[[str, int, Sequence[torch.Tensor]], str] | None = None

    def to(self, device: str | torch.device) -> TargetModel:
        """Move the module to ``device`` ("cuda", "auto" = CUDA when available); inputs follow it, outputs come
        back to the CPU."""
        from and_engine.devices import DeviceError, resolve_device

        try:
            dev = torch.device(resolve_device(str(device), f"model {self.name!r}: device"))
        except DeviceError as exc:
            raise ModelError(str(exc)) from exc
        self.module.to(dev)
        self.device = dev
        return self

    def inputs(self, waveforms: np.ndarray) -> torch.Tensor:
        """Waveforms (n, samples) -> the module's input tensor on ``device``."""
        if self.preprocess_on_device:
            return self.preprocess(waveforms, self.device)
        return self.preprocess(waveforms).to(self.device)

    def layers(self) -> list[LayerSpec]:
        """Every dissectable layer, in forward order."""
        return list(self.layer_specs)

    def layer(self, name: str) -> LayerSpec:
        for spec in self.layer_specs:
            if spec.name == name:
                return spec
        raise ModelError(f"model {self.name!r} has no layer {name!r}; layers: {[s.name for s in self.layer_specs]}")

    def submodule(self, spec: LayerSpec) -> torch.nn.Module:
        return self.module.get_submodule(spec.module_path)

    def check_waveforms(self, waveforms: np.ndarray) -> np.ndarray:
        arr = np.asarray(waveforms, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ModelError(f"model {self.name!r}: waveforms must be (n_clips, n_samples), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ModelError(f"model {self.name!r}: waveforms contain NaN or inf")
        return arr

    @torch.inference_mode()
    def logits(self, waveforms: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """(n, samples) float32 at ``sample_rate`` -> (n, n_classes) float32 logits (window mean)."""
        arr = self.check_waveforms(waveforms)
        self.module.eval()
        out = []
        for start in range(0, len(arr), max(1, batch_size)):
            chunk = arr[start : start + batch_size]
            out.append(self.forward_logits(self.inputs(chunk), len(chunk)).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def stage_of(self, layer: str) -> int:
        """Index of the step of ``stages`` that computes ``layer`` (0 for a model without stages)."""
        return self.stage_layers.get(layer, 0) if self.stages else 0

    def run_stages(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Steps ``start``..``stop`` (exclusive; None = to the logits rows) of the forward pass on ``x``
        (a model without ``stages`` has one step, the whole module)."""
        for step in (self.stages or [self.module])[start:stop]:
            x = step(x)
        return x

    def forward_logits(self, inputs: torch.Tensor, n_clips: int) -> torch.Tensor:
        """Module input for ``n_clips`` clips -> (n_clips, n_classes) logits averaged over windows."""
        raw = self.module(inputs)
        return raw.reshape(n_clips, -1, raw.shape[-1]).mean(dim=1)


def unit_parameters(model: TargetModel, layer: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of a layer's module; rows of ``weight`` are the layer's neurons."""
    module = model.submodule(model.layer(layer))
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ModelError(f"layer {layer!r} of {model.name!r} has no weight to prune")
    return weight, getattr(module, "bias", None)


# ---------- pruning by masks in the forward pass (nothing on the shared module changes) ----------
# {module: ((M, n_units) bool keep-mask, pruned ids when M == 1), or a function output -> output} of the
# current thread's pruning / edits; M = replicas of the batch.
_MASKS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("and_unit_masks", default=None)
_INSTALL = threading.Lock()
_HOOKED = "_and_unit_mask_hook"
Edit = Callable[[torch.Tensor], torch.Tensor]


def _mask_hook(unit_dim: int) -> Callable:
    """A forward hook that zeroes the masked units of the module's output (or applies the edit function) for
    the thread that set them."""

    def hook(module: torch.nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor | None:
        active = _MASKS.get()
        keep = active.get(module) if active else None
        if keep is None:
            return None
        if callable(keep):  # an edit function
            return keep(output)
        keep, pruned_ids = keep
        if pruned_ids is not None:  # one mask: zero the pruned units in place (as cheap as zeroed weight rows)
            return output.index_fill_(unit_dim, pruned_ids, 0)
        m, rows = keep.shape[0], output.shape[0]
        if rows % m:
            raise ModelError(f"a batch of {rows} rows cannot hold {m} replicas, one per pruning mask")
        grouped = (m, rows // m, *output.shape[1:])
        shape = [m] + [1] * output.ndim  # (M, 1, ..., n_units at the unit axis, ..., 1)
        shape[unit_dim + 1 if unit_dim >= 0 else output.ndim] = keep.shape[1]
        result = torch.empty_like(output)  # keeps the memory format (channels_last convs stay fast)
        zero = torch.zeros((), dtype=output.dtype, device=output.device)
        torch.where(keep.view(shape), output.view(grouped), zero, out=result.view(grouped))
        return result

    return hook


def unit_axis(spec: LayerSpec) -> int:
    """The axis of a layer's output that indexes its units: 1 for conv layers (rows, units, freq, time), the last
    for token (rows, tokens, units) and linear (rows, units) layers."""
    return 1 if spec.kind == "conv" else -1


def install_unit_masks(model: TargetModel) -> None:
    """Put the (idle) mask hook on every dissectable layer once; call before threads share the model."""
    with _INSTALL:
        for spec in model.layer_specs:
            module = model.submodule(spec)
            if not getattr(module, _HOOKED, None):
                hook = _mask_hook(unit_axis(spec))
                setattr(module, _HOOKED, module.register_forward_hook(hook, prepend=True))


def mask_state(module: torch.nn.Module) -> tuple[int | None, bool]:
    """(id of the mask hook ``install_unit_masks`` put on ``module``, or None; whether this thread's pruning /
    edits touch ``module`` now) (an SAE layer runs its encoder only when it is recorded or touched)."""
    handle = getattr(module, _HOOKED, None)
    active = _MASKS.get()
    return (handle.id if handle is not None else None), bool(active) and module in active


def keep_masks(model: TargetModel, selections: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
    """M selections ``{layer: [neuron ids]}`` -> {layer: (M, n_units) bool, False = pruned} for the layers any
    selection touches (on the model's device). ModelError for an unknown layer or a neuron id out of range."""
    out: dict[str, torch.Tensor] = {}
    for row, neurons in enumerate(selections):
        for layer, ids in neurons.items():
            n = model.layer(layer).n_neurons
            idx = sorted({int(i) for i in ids})
            if idx and (idx[0] < 0 or idx[-1] >= n):
                raise ModelError(f"layer {layer!r}: neuron ids must be in [0, {n}), got {list(ids)}")
            if layer not in out:
                out[layer] = torch.ones(len(selections), n, dtype=torch.bool)
            out[layer][row, idx] = False
    return {k: v.to(model.device) for k, v in out.items()}


@contextlib.contextmanager
def masked(model: TargetModel, keep: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Inside the block, forward passes *of this thread* zero the units whose ``keep`` entry is False.

    ``keep``: {layer: (M, n_units) bool} (``keep_masks``); a batch then holds M replicas of its rows, replica
    r pruned by row r of each mask. Other threads, and this thread after the block, see the unpruned model.
    """
    with _active(model, keep):
        yield


@contextlib.contextmanager
def edited(model: TargetModel, edits: Mapping[str, Edit]) -> Iterator[None]:
    """Inside the block, forward passes *of this thread* replace the output ``y`` of each layer in ``edits`` by
    ``edits[layer](y)`` (same shape and dtype; conv layers: (rows, units, freq, time), token layers: (rows,
    tokens, units), rows = clips x windows of the batch). Nothing on the shared model changes; ``fn`` may be
    called from several threads at once (the engine's workers), so it must not keep state between calls."""
    check_edits(model, edits)
    with _active(model, edits):
        yield


def check_edits(model: TargetModel, edits: Mapping[str, Edit]) -> None:
    """ModelError for an unknown layer or an edit that is not a function."""
    for name, fn in edits.items():
        model.layer(name)
        if not callable(fn):
            raise ModelError(f"layer {name!r}: an edit must be a function of the layer's output, got {fn!r}")


@contextlib.contextmanager
def _active(model: TargetModel, per_layer: Mapping[str, torch.Tensor | Edit]) -> Iterator[None]:
    """This thread's masks / edits for the block, over any set by an enclosing block (inner ones win)."""
    install_unit_masks(model)
    outer = _MASKS.get() or {}

    def entry(v: torch.Tensor | Edit):  # a mask -> (keep, pruned ids when there is one mask, else None)
        if callable(v):
            return v
        return v, (~v[0]).nonzero().flatten() if v.shape[0] == 1 else None

    token = _MASKS.set({**outer, **{model.submodule(model.layer(k)): entry(v) for k, v in per_layer.items()}})
    try:
        yield
    finally:
        _MASKS.reset(token)


@contextlib.contextmanager
def pruned(model: TargetModel, neurons: Mapping[str, Sequence[int]]) -> Iterator[None]:
    """Zero the outputs of ``{layer: [neuron ids]}`` in this thread's forward passes inside the block.

    A pruned unit outputs exactly 0 (its pre-activation), so ReLU/GELU pass 0 downstream; the model's
    weights are never touched, so sessions sharing the model never see each other's pruning.
    """
    with masked(model, keep_masks(model, [neurons])):
        yield
