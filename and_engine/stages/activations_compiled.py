"""The activations stage through ``torch.compile`` (inductor, weights frozen): same values, faster on CPU.

The hooks that pool each layer are registered inside the compiled function, so inductor fuses the pooling,
the padding and the ReLUs with the convolutions and prepacks the weights. Every batch has one static shape
(the last one is padded with copies of its last clip, whose rows are dropped), so it compiles once per call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from and_engine.models.base import LayerSpec, TargetModel
from and_engine.stages.activations import pool_rows


class PooledForward(torch.nn.Module):
    """inputs (rows, ...) -> {layer name: (rows, n_neurons) float32 ``pool_rows`` of that layer's output}."""

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
def run_compiled(model: TargetModel, arr: np.ndarray, layers: Sequence[LayerSpec], pool: str, batch_size: int,
                 arrays: dict[str, np.ndarray], progress=None, precision: str = "float32") -> None:
    """Fill ``arrays[layer][clip]`` (n_clips, n_neurons) for the (n_clips, samples) ``arr``, batch by batch."""
    from torch._inductor import config as inductor_config

    torch._dynamo.reset()  # frozen weights are baked into the graph: never reuse one compiled for other weights
    step = max(1, min(batch_size, len(arr)))
    fn = torch.compile(PooledForward(model, layers, pool), dynamic=False)
    model.module.eval()
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
    with inductor_config.patch(freezing=True), autocast:
        for start in range(0, len(arr), step):
            chunk = arr[start : start + step]
            n = len(chunk)
            if n < step:  # keep the compiled shape: pad with the last clip, drop its rows below
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
            rows = fn(model.inputs(chunk))
            for spec in layers:
                per_clip = rows[spec.name].reshape(step, -1, spec.n_neurons).mean(dim=1)
                arrays[spec.name][start : start + n] = per_clip[:n].cpu().numpy()
            if progress is not None:
                progress.update(n)
