"""The target-network interface: a ``torch.nn.Module`` plus what dissection needs to know about it.

A :class:`TargetModel` turns waveforms into the module's input (``preprocess``), runs it to logits, names
its classes and lists its dissectable layers (:class:`LayerSpec`, found by walking the module's
structure). :func:`pruned` temporarily zeroes units (weight row + bias) for the pruning analyses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

LAYER_KINDS = ("conv", "linear", "classifier")


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


@contextlib.contextmanager
def pruned(model: TargetModel, neurons: dict[str, Sequence[int]]) -> Iterator[None]:
    """Zero the weight rows and biases of ``{layer: [neuron ids]}`` inside the block; restore on exit.

    A pruned unit then outputs exactly 0 (its pre-activation), so ReLU/GELU pass 0 downstream.
    """
    saved: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    plan = []
    for layer, ids in neurons.items():
        weight, bias = unit_parameters(model, layer)
        idx = torch.as_tensor(sorted({int(i) for i in ids}), dtype=torch.long)
        if len(idx) and (idx.min() < 0 or idx.max() >= weight.shape[0]):
            raise ModelError(f"layer {layer!r}: neuron ids must be in [0, {weight.shape[0]}), got {list(ids)}")
        plan.append((weight, bias, idx))
    try:
        with torch.no_grad():
            for weight, bias, idx in plan:
                saved.append((weight, idx, weight[idx].clone()))
                weight[idx] = 0
                if bias is not None:
                    saved.append((bias, idx, bias[idx].clone()))
                    bias[idx] = 0
        yield
    finally:
        with torch.no_grad():
            for tensor, idx, values in reversed(saved):
                tensor[idx] = values
